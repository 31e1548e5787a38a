"""pylibbpf.perf_event on the real kernel: a program loaded with ``lowlevel.prog_load`` from
instructions encoded with ``pylibbpf.elf.insn``, attached to tracepoints, a software cpu-clock
event and (VM tier) kprobes, with exact counts, link vs ioctl attach, detach and ownership."""

from __future__ import annotations

import errno
import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

import pylibbpf
from pylibbpf import LinkType, MapType, ProgType, lowlevel, perf_event
from pylibbpf.elf import insn as I
from pylibbpf.elf.insn import Instruction

pytestmark = pytest.mark.kernel

HELPER_MAP_LOOKUP_ELEM = 1
HELPER_GET_CURRENT_PID_TGID = 14


def counter_program(map_fd: int, tgid: int | None) -> list[Instruction]:
    """``counts[0] += 1`` (atomically), only for process ``tgid`` when given."""
    alu64_k = I.ALU64 | I.SRC_K
    body: list[Instruction] = []
    if tgid is not None:
        body += [
            Instruction(I.JMP | I.JMP_CALL, imm=HELPER_GET_CURRENT_PID_TGID),
            Instruction(alu64_k | I.ALU_RSH, dst=0, imm=32),
            Instruction(I.JMP | I.SRC_K | I.JMP_JNE, dst=0, off=10, imm=tgid),  # -> r0 = 0
        ]
    body += [
        Instruction(alu64_k | I.ALU_MOV, dst=1, imm=0),
        Instruction(I.STX | I.SIZE_W | I.MODE_MEM, dst=10, src=1, off=-4),   # key = 0
        Instruction(I.ALU64 | I.SRC_X | I.ALU_MOV, dst=2, src=10),
        Instruction(alu64_k | I.ALU_ADD, dst=2, imm=-4),
        Instruction(I.LD_IMM64, dst=1, src=I.PSEUDO_MAP_FD, imm=map_fd),      # 2 slots
        Instruction(I.JMP | I.JMP_CALL, imm=HELPER_MAP_LOOKUP_ELEM),
        Instruction(I.JMP | I.SRC_K | I.JMP_JEQ, dst=0, off=2, imm=0),
        Instruction(alu64_k | I.ALU_MOV, dst=1, imm=1),
        Instruction(I.STX | I.SIZE_DW | I.MODE_ATOMIC, dst=0, src=1, imm=I.ALU_ADD),
        Instruction(alu64_k | I.ALU_MOV, dst=0, imm=0),
        Instruction(I.JMP | I.JMP_EXIT),
    ]
    return body


class Counter:
    """An ARRAY map with one u64 and a program that increments it."""

    def __init__(self, prog_type: ProgType, tgid: int | None) -> None:
        self.map_fd = lowlevel.map_create(MapType.ARRAY, 4, 8, 1, name="counts")
        try:
            self.prog_fd = lowlevel.prog_load(prog_type, counter_program(self.map_fd, tgid),
                                              license="GPL", name="count")
        except BaseException:
            os.close(self.map_fd)
            raise

    @property
    def value(self) -> int:
        return int.from_bytes(lowlevel.map_lookup_elem(self.map_fd, 0, 8), sys.byteorder)

    def close(self) -> None:
        os.close(self.prog_fd)
        os.close(self.map_fd)


def fd_table() -> dict[int, str]:
    """This process's open fds and what they point to.

    The garbage collector runs first: an object an earlier test left unreachable (a failed
    test's handles, say) would otherwise close its fds at an arbitrary moment inside the test
    that is counting, which then reports a "leak" that is someone else's.
    """
    gc.collect()
    table = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            table[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the listdir's own fd, closed by now
            continue
    return table


def fd_count() -> int:
    return len(fd_table())


def fd_changes(before: dict[int, str]) -> str:
    after = fd_table()
    opened = {fd: t for fd, t in after.items() if before.get(fd) != t}
    closed = {fd: t for fd, t in before.items() if after.get(fd) != t}
    return f"opened {opened}, closed {closed}" if opened or closed else ""


@pytest.fixture
def tp_counter() -> Iterator[Counter]:
    before = fd_table()
    counter = Counter(ProgType.TRACEPOINT, os.getpid())
    yield counter
    counter.close()
    changes = fd_changes(before)
    assert not changes, f"fds leaked: {changes}"


def getppid_loop(n: int) -> None:
    getppid = os.getppid
    for _ in range(n):
        getppid()


def bpftool_links() -> list[dict[str, object]]:
    out = subprocess.run(["bpftool", "-j", "link", "show"], check=True, capture_output=True,
                         text=True).stdout
    return list(json.loads(out or "[]"))


@pytest.mark.needs("perf_link")
def test_tracepoint_exact_count(tp_counter: Counter) -> None:
    link = perf_event.attach_tracepoint(tp_counter.prog_fd, "syscalls", "sys_enter_getppid")
    with link:
        assert link.link_fd is not None and link.fd == link.link_fd   # 6.18 has perf links
        info = link.info()
        assert info.type == LinkType.PERF_EVENT
        assert info.prog_id == pylibbpf.ProgramInfo.from_fd(tp_counter.prog_fd).id
        listed = {entry["id"]: entry for entry in bpftool_links()}
        assert listed[info.id]["type"] == "perf_event"
        getppid_loop(1000)
        assert tp_counter.value == 1000
        getppid_loop(234)
        assert tp_counter.value == 1234
        perf_fd = link.perf_fd
    assert link.closed
    # closing detached: both fds are gone, the link no longer exists, nothing counts
    with pytest.raises(OSError) as closed:
        os.fstat(perf_fd)
    assert closed.value.errno == errno.EBADF
    assert info.id not in {entry["id"] for entry in bpftool_links()}
    getppid_loop(100)
    assert tp_counter.value == 1234
    with pytest.raises(pylibbpf.ClosedError):
        link.fd  # noqa: B018


def test_ioctl_fallback_counts_the_same(tp_counter: Counter) -> None:
    perf_fd = perf_event.open_tracepoint("syscalls", "sys_enter_getppid")
    link = perf_event.attach(tp_counter.prog_fd, perf_fd, force_ioctl=True)
    try:
        assert link.link_fd is None and link.fd == perf_fd
        with pytest.raises(pylibbpf.NotSupportedError):
            link.info()
        getppid_loop(500)
        assert tp_counter.value == 500
    finally:
        link.detach()
    getppid_loop(50)
    assert tp_counter.value == 500


def test_two_programs_on_one_tracepoint(tp_counter: Counter) -> None:
    other = Counter(ProgType.TRACEPOINT, os.getpid())
    try:
        with perf_event.attach_tracepoint(tp_counter.prog_fd, "syscalls", "sys_enter_getppid"), \
                perf_event.attach_tracepoint(other.prog_fd, "syscalls", "sys_enter_getppid"):
            getppid_loop(300)
        assert (tp_counter.value, other.value) == (300, 300)
    finally:
        other.close()


@pytest.mark.needs("perf_link")
def test_cookie_reaches_the_link(tp_counter: Counter) -> None:
    # the cookie is stored on the perf event link; with no helper reading it here, check
    # that the kernel accepted it and the program still runs
    with perf_event.attach_tracepoint(tp_counter.prog_fd, "syscalls", "sys_enter_getppid",
                                      cookie=0xC0FFEE) as link:
        assert link.info().type == LinkType.PERF_EVENT
        getppid_loop(10)
    assert tp_counter.value == 10


def test_garbage_collected_link_warns(tp_counter: Counter) -> None:
    link = perf_event.attach_tracepoint(tp_counter.prog_fd, "syscalls", "sys_enter_getppid")
    perf_fd = link.perf_fd
    with pytest.warns(ResourceWarning, match="perf event attachment"):
        del link
        gc.collect()
    with pytest.raises(OSError):
        os.fstat(perf_fd)
    getppid_loop(20)
    assert tp_counter.value == 0


def test_errors_leak_nothing(tp_counter: Counter) -> None:
    before = fd_count()
    with pytest.raises(pylibbpf.BpfError) as missing:
        perf_event.attach_tracepoint(tp_counter.prog_fd, "syscalls", "sys_enter_no_such_call")
    assert missing.value.errno == errno.ENOENT
    for bad in ("../syscalls", "a/b", "", ".."):
        with pytest.raises(ValueError):
            perf_event.tracepoint_id(bad, "sys_enter_getppid")
    # a socket filter cannot run on a tracepoint: refused, and the perf fd is closed again
    sock = lowlevel.prog_load(ProgType.SOCKET_FILTER, counter_program(tp_counter.map_fd, None),
                              license="GPL")
    try:
        with pytest.raises(pylibbpf.BpfError) as wrong:
            perf_event.attach_tracepoint(sock, "syscalls", "sys_enter_getppid")
        assert wrong.value.errno == errno.EINVAL
        # attach() leaves a refused perf fd to its caller
        perf_fd = perf_event.open_tracepoint("syscalls", "sys_enter_getppid")
        with pytest.raises(pylibbpf.BpfError):
            perf_event.attach(sock, perf_fd)
        os.fstat(perf_fd)
        os.close(perf_fd)
    finally:
        os.close(sock)
    assert fd_count() == before
    assert perf_event.tracepoint_id("syscalls", "sys_enter_getppid") > 0


def _spin(seconds: float) -> None:
    end = os.times().elapsed + seconds
    while os.times().elapsed < end:
        pass


def test_cpu_clock_sampling() -> None:
    counter = Counter(ProgType.PERF_EVENT, os.getpid())
    affinity = os.sched_getaffinity(0)
    cpu = min(affinity)  # the first CPU this process may use (a cpuset may leave out CPU 0)
    os.sched_setaffinity(0, {cpu})
    try:
        with perf_event.attach_cpu_clock(counter.prog_fd, cpu, period_ns=100_000):
            _spin(0.1)
            first = counter.value
            _spin(0.1)
            second = counter.value
        # 100 µs period, 100 ms of CPU on that CPU: ~1000 samples each time (throttling allowed)
        assert 10 < first < second
        after = counter.value
        _spin(0.05)
        assert counter.value == after
        with pytest.raises(ValueError):
            perf_event.open_cpu_clock(0, period_ns=1000, frequency=10)
    finally:
        os.sched_setaffinity(0, affinity)
        counter.close()


@pytest.mark.needs("kprobe")
def test_kprobe_pmu_exact_count() -> None:
    counter = Counter(ProgType.KPROBE, os.getpid())
    try:
        assert perf_event.pmu_available("kprobe")
        with perf_event.attach_kprobe(counter.prog_fd, "__x64_sys_getppid"
                                      if os.uname().machine == "x86_64"
                                      else "__arm64_sys_getppid") as entry, \
                perf_event.attach_kprobe(counter.prog_fd, "__x64_sys_getppid"
                                         if os.uname().machine == "x86_64"
                                         else "__arm64_sys_getppid", retprobe=True):
            getppid_loop(200)
            assert entry.perf_fd >= 0
        assert counter.value == 400       # entry and return probe each count every call
        with pytest.raises(pylibbpf.BpfError):
            perf_event.attach_kprobe(counter.prog_fd, "no_such_kernel_function_xyz")
    finally:
        counter.close()


def test_kprobe_pmu_attach_follows_the_kernel() -> None:
    """Without a kprobe PMU the attach is NotSupportedError; with one it works.  Either way
    no fd is left behind."""
    counter = Counter(ProgType.KPROBE, os.getpid())
    try:
        before = fd_count()
        if perf_event.pmu_available("kprobe"):
            with perf_event.attach_kprobe(counter.prog_fd, "vfs_write") as link:
                assert link.fd >= 0
        else:
            with pytest.raises(pylibbpf.NotSupportedError):
                perf_event.attach_kprobe(counter.prog_fd, "vfs_write")
        assert fd_count() == before
    finally:
        counter.close()


def test_uprobe_on_libc_getppid() -> None:
    """A uprobe on libc's getppid counts each os.getppid() once."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    with open("/proc/self/maps") as maps:
        libc = next(line.split()[-1] for line in maps if "/libc.so" in line or "/libc-" in line)
    with open(libc, "rb") as f:
        elf = ELFFile(f)
        symbols = elf.get_section_by_name(".dynsym")
        assert isinstance(symbols, SymbolTableSection)
        address = next(s["st_value"] for s in symbols.iter_symbols()
                       if s.name == "getppid" and s["st_value"])
        offset = next(seg["p_offset"] + address - seg["p_vaddr"] for seg in elf.iter_segments()
                      if seg["p_type"] == "PT_LOAD" and seg["p_flags"] & 1
                      and seg["p_vaddr"] <= address < seg["p_vaddr"] + seg["p_memsz"])
    counter = Counter(ProgType.KPROBE, os.getpid())
    try:
        with perf_event.attach_uprobe(counter.prog_fd, libc, offset, pid=os.getpid()):
            getppid_loop(321)
        assert counter.value == 321
    finally:
        counter.close()
