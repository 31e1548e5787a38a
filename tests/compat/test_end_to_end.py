"""Legacy load -> attach -> trigger the syscall -> the maps hold the expected results, on this
host's kernel (syscall tracepoint backend), compared with equivalent modern libbpf programs.
The tests parametrized over ``BACKENDS`` run the same check on the fentry/fexit backend too
(``test_fentry_backend.py`` has what is particular to it)."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import compat
import pylibbpf
from tests.support.legacy_maps import Maps, u64

pytestmark = pytest.mark.kernel

SYS = "<rcore::syscall::Syscall>"
_libc = ctypes.CDLL(None, use_errno=True)
SYS_GETPGID = 121


# the automatic choice (the syscall tracepoint here, see test_map_sample_counts_forks) and
# fentry/fexit, where the kernel allows BPF trampolines
BACKENDS = [pytest.param(None, id="tracepoint"),
            pytest.param("fentry", id="fentry", marks=pytest.mark.needs("fentry"))]


def forks(n: int) -> None:
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)


def test_map_sample_counts_forks(legacy_object: Callable[..., bytes], maps: Maps) -> None:
    counter, config = maps.array(8, 1), maps.config()
    before = len(os.listdir("/proc/self/fd"))
    prog = compat.bpf_prog_load_ex(legacy_object("map.c"),
                                   [("map_fd", counter), ("config", config)])
    try:
        att = compat.bpf_prog_attach(f"kprobe:{SYS}::sys_fork", prog)
        assert att.backend is compat.Backend.TRACEPOINT
        assert "syscalls/sys_enter_clone" in att.points
        forks(25)
        assert u64(counter, 0) == 25
        compat.bpf_prog_detach(prog, f"kprobe:{SYS}::sys_fork")
        forks(5)
        assert u64(counter, 0) == 25  # detached: nothing counts any more
    finally:
        compat.release_program(prog)
    assert len(os.listdir("/proc/self/fd")) == before


def _time_pair(legacy_object: Callable[..., bytes], maps: Maps, calls: int,
               dialect: str = "rcore", backend: str | None = None) -> tuple[int, list[int]]:
    counters, records, config = maps.array(8, 64), maps.array(8, 512), maps.config()
    t1 = compat.bpf_prog_load_ex(legacy_object("time1.c", opt="-O1"),
                                 {"time_counters": counters, "config": config})
    t2 = compat.bpf_prog_load_ex(legacy_object("time2.c", opt="-O1"), [
        compat.BpfMapFdEntry("time_counters", counters), compat.BpfMapFdEntry("records", records),
        compat.BpfMapFdEntry("config", config)])
    try:
        if dialect == "rcore":
            a1 = compat.bpf_prog_attach(f"kretprobe@entry:{SYS}::sys_getppid", t1,
                                        backend=backend)
            a2 = compat.bpf_prog_attach(f"kretprobe@exit:{SYS}::sys_getppid", t2,
                                        backend=backend)
            if backend == "fentry":
                assert a1.points[0].startswith("fentry ") and a2.points[0].startswith("fexit ")
        else:
            for target, fd in ((b"kretprobe@entry$<linux_syscall::Syscall>::sys_getppid", t1),
                               (b"kretprobe@exit$<linux_syscall::Syscall>::sys_getppid", t2)):
                compat.bpf_prog_attach_zcore(target + b"garbage", len(target), fd)
        for _ in range(calls):
            os.getppid()
    finally:
        compat.release_program(t1)
        compat.release_program(t2)
    count = u64(records, 0)
    return count, [u64(records, k) for k in range(1, count + 1)]


@pytest.mark.parametrize("dialect, backend", [
    ("rcore", None), ("zcore", None),
    pytest.param("rcore", "fentry", marks=pytest.mark.needs("fentry")),
], ids=["tracepoint-rcore", "tracepoint-zcore", "fentry-rcore"])
def test_time_pair_measures_getppid(legacy_object: Callable[..., bytes], maps: Maps,
                                    dialect: str, backend: str | None) -> None:
    count, samples = _time_pair(legacy_object, maps, 200, dialect, backend)
    assert count == 200
    # each sample a real duration, not garbage: under 1 s (a getppid under emulation on a busy
    # host has taken over 10 ms)
    assert all(0 < s < 1_000_000_000 for s in samples)
    samples.sort()
    print(f"legacy time pair ({backend or 'tracepoint'}): median getppid "
          f"{samples[len(samples) // 2]} ns")


def test_modern_equivalent_gives_the_same_maps(legacy_object: Callable[..., bytes],
                                               modern_object: Callable[[str], Path],
                                               maps: Maps) -> None:
    legacy_count, legacy_samples = _time_pair(legacy_object, maps, 150)
    counter, config = maps.array(8, 1), maps.config()
    prog = compat.bpf_prog_load_ex(legacy_object("map.c"),
                                   [("map_fd", counter), ("config", config)])
    compat.bpf_prog_attach(f"kprobe:{SYS}::sys_clone", prog)
    try:
        with pylibbpf.Object.open_file(modern_object("modern_equiv.bpf.c")) as obj:
            obj.load()
            obj.maps["target_pid"].update(0, os.getpid().to_bytes(4, "little"))
            links = [p.attach() for p in obj.programs.values()]
            try:
                forks(20)
                for _ in range(150):
                    os.getppid()
            finally:
                for link in links:
                    link.destroy()
            modern_count = int.from_bytes(obj.maps["records"].lookup(0), "little")
            modern_samples = [int.from_bytes(obj.maps["records"].lookup(k), "little")
                              for k in range(1, modern_count + 1)]
            modern_forks = int.from_bytes(obj.maps["counts"].lookup(0), "little")
    finally:
        compat.release_program(prog)
    assert modern_forks == u64(counter, 0) == 20
    assert modern_count == legacy_count == 150
    legacy_median = sorted(legacy_samples)[75]
    modern_median = sorted(modern_samples)[75]
    assert all(s > 0 for s in modern_samples + legacy_samples)
    # the same work measured the same way: medians within a factor of 20 on a noisy VM
    assert legacy_median < 20 * modern_median and modern_median < 20 * legacy_median


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("by_index", [False, True])
def test_context_dump_reads_syscall_arguments(legacy_object: Callable[..., bytes], maps: Maps,
                                              by_index: bool, backend: str | None) -> None:
    dump, config = maps.array(8, 10), maps.config()
    flags = ("-DBY_INDEX",) if by_index else ()
    prog = compat.bpf_prog_load_ex(legacy_object("context.c", *flags),
                                   [("dump", dump), ("config", config)])
    try:
        compat.bpf_prog_attach(f"kretprobe@entry:{SYS}::sys_getpgid", prog, backend=backend)
        _libc.syscall(SYS_GETPGID, 987654321)  # ESRCH, but the program saw the argument
    finally:
        compat.release_program(prog)
    values = [u64(dump, k) for k in range(10)]
    assert values[0] == 1                      # ptype: kretprobe@entry
    assert values[1] == SYS_GETPGID            # paddr: the syscall number (fentry: orig_ax)
    assert values[2] == 0                      # a0 was &self on the legacy kernel
    assert values[3] == 987654321              # a1: the first argument
    assert values[9] == SYS_GETPGID            # a7: the syscall number, as on RISC-V


@pytest.mark.parametrize("backend", BACKENDS)
def test_context_at_exit_holds_the_return_value(legacy_object: Callable[..., bytes],
                                                maps: Maps, backend: str | None) -> None:
    dump, config = maps.array(8, 10), maps.config()
    prog = compat.bpf_prog_load_ex(legacy_object("context.c"),
                                   [("dump", dump), ("config", config)])
    try:
        compat.bpf_prog_attach(f"kretprobe@exit:{SYS}::sys_getppid", prog, backend=backend)
        ppid = os.getppid()
    finally:
        compat.release_program(prog)
    assert u64(dump, 0) == 2 and u64(dump, 2) == ppid


def test_attach_order_and_duplicates(legacy_object: Callable[..., bytes], maps: Maps) -> None:
    counter, config = maps.array(8, 1), maps.config()
    data = legacy_object("map.c")
    a = compat.bpf_prog_load_ex(data, [("map_fd", counter), ("config", config)])
    b = compat.bpf_prog_load_ex(data, [("map_fd", counter), ("config", config)])
    try:
        compat.bpf_prog_attach(f"kprobe:{SYS}::sys_fork", a)
        compat.bpf_prog_attach(f"kprobe:{SYS}::sys_fork", b)
        with pytest.raises(compat.LegacyError) as exc:
            compat.bpf_prog_attach(f"KPROBE:{SYS}::sys_fork", a)
        assert exc.value.errno == 11  # EAGAIN
        mangled = "_ZN32_$LT$rcore..syscall..Syscall$GT$8sys_fork17h0000000000000000E"
        with pytest.raises(compat.LegacyError):
            compat.bpf_prog_attach(f"kprobe:{mangled}", a)  # the same point, mangled
        assert [att.prog_fd for att in compat.attachments()] == [a, b]
        forks(10)
        assert u64(counter, 0) == 20   # both programs ran on every fork
    finally:
        compat.release_program(a)
        compat.release_program(b)


@pytest.mark.needs("kprobe")
def test_kprobe_backend(legacy_object: Callable[..., bytes], maps: Maps) -> None:
    counter, config = maps.array(8, 1), maps.config()
    prog = compat.bpf_prog_load_ex(legacy_object("map.c"),
                                   [("map_fd", counter), ("config", config)])
    try:
        att = compat.bpf_prog_attach("kprobe:kernel_clone", prog)
        assert att.backend is compat.Backend.KPROBE
        forks(7)
        assert u64(counter, 0) == 7
    finally:
        compat.release_program(prog)
