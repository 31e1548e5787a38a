"""Shared helpers of ``tests/test_attach_*.py`` and ``tests/test_links.py``.

Everything here sets up something real and takes it down again, even when the test fails: a
private network namespace for the packet tests (so nothing another process does on ``lo``
reaches the counters, and nothing we attach reaches it), a fresh cgroup v2 directory, a pin
folder in bpffs, and the helper binary uprobes and USDT probes fire in.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pylibbpf
from tests.support import features
from tests.support.bpfbuild import compile_bpf, compile_c

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
SO_ATTACH_BPF = 50
SO_DETACH_BPF = 27
BPFFS = Path("/sys/fs/bpf")


def perf_links() -> bool:
    """Whether perf-event attachments (tracepoint, kprobe, uprobe, perf_event) are BPF links.

    From Linux 5.15 they are (``BPF_LINK_TYPE_PERF_EVENT``: info, pin, detach says
    EOPNOTSUPP); before, the "link" libbpf returns wraps the perf event fd itself.
    """
    return features.kernel_version() >= (5, 15)


def my_attachments(prog_ids: set[int]) -> dict[int, pylibbpf.lowlevel.TaskFdInfo]:
    """This process's fds through which one of ``prog_ids`` is attached (perf events and raw
    tracepoints, found with ``task_fd_query`` over ``/proc/self/fd``), fd -> what it says."""
    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            info = pylibbpf.lowlevel.task_fd_query(os.getpid(), int(name))
        except pylibbpf.BpfError as exc:
            assert exc.errno == errno.EBADF  # the listing's own directory fd, closed since
            continue
        if info is not None and info.prog_id in prog_ids:
            found[int(name)] = info
    return found


def bpftool_perf(prog_ids: set[int]) -> dict[int, int]:
    """``bpftool perf show`` for this process and ``prog_ids``: fd -> program id."""
    out = subprocess.run(["bpftool", "-j", "perf", "show"], capture_output=True, text=True,
                         check=True).stdout
    return {e["fd"]: e["prog_id"] for e in json.loads(out or "[]")
            if e.get("pid") == os.getpid() and e.get("prog_id") in prog_ids}


def u64(raw: bytes) -> int:
    """A native-endian unsigned integer from map bytes."""
    return int.from_bytes(raw, sys.byteorder)


def count(bpf_map: pylibbpf.Map, key: int) -> int:
    """The u64 counter at ``key`` of an ARRAY map."""
    return u64(bpf_map[key])


def getpid_loop(n: int) -> None:
    """Make exactly ``n`` getpid() system calls (CPython does not cache the pid)."""
    getpid = os.getpid
    for _ in range(n):
        getpid()


def multiarch_include() -> list[str]:
    """``-I`` for the multiarch headers (``asm/errno.h``) that ``bpf/usdt.bpf.h`` pulls in."""
    try:
        triple = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        triple = ""
    if not triple:  # no gcc: the Debian folder named after this machine's architecture
        found = sorted(Path("/usr/include").glob(f"{platform.machine()}-*/asm/errno.h"))
        return [f"-I{found[0].parent.parent}"] if found else []
    return [f"-I/usr/include/{triple}"]


# The kernel feature (tests/features.py) each program of a test object needs, by program name
# (unique across the objects).
TRACE_NEEDS = {
    "tp_getpid": "tracepoint", "tp_explicit": "tracepoint",
    "raw_enter": "raw_tp", "raw_explicit": "raw_tp", "raw_other": "raw_tp",
    "raw_testrun": "raw_tp", "btf_enter": "tp_btf", "on_sample": "perf_event",
    "dump_task": "iter_task", "dump_elem": "iter_map_elem",
}
NET_NEEDS = {
    "xdp_count": "xdp", "xdp_count2": "xdp", "xdp_rewrite": "xdp", "tc_count": "tc",
    "cg_egress": "cgroup", "cg_egress2": "cgroup", "sock_filter": "socket_filter",
    "lookup_count": "sk_lookup",
}
COUNTERS_NEEDS = {
    "count_getpid": "tracepoint", "count_getppid": "tracepoint", "count_raw_enter": "raw_tp",
    "BPF_PROG_count_btf": "tp_btf",
}
PROGRAM_NEEDS = {**TRACE_NEEDS, **NET_NEEDS, **COUNTERS_NEEDS}
assert len(PROGRAM_NEEDS) == len(TRACE_NEEDS) + len(NET_NEEDS) + len(COUNTERS_NEEDS)


def object_path(src: str, cflags: tuple[str, ...] = ()) -> Path:
    """``tests/bpf/<src>`` compiled (cached) with the simulated refusals
    (``features.refusal_cflags``), so a simulated refusing kernel really rejects them."""
    return compile_bpf(src, cflags=(*cflags, *features.refusal_cflags()))


def check_needs(request: Any, programs: Sequence[str]) -> None:
    """Fail the test unless its ``needs`` marks name what ``programs`` need."""
    declared = {f for mark in request.node.iter_markers("needs") for f in mark.args}
    undeclared = {PROGRAM_NEEDS[p] for p in programs} - declared
    assert not undeclared, f"mark the test needs{tuple(sorted(undeclared))}"


def autoload_only(obj: pylibbpf.Object, programs: Sequence[str], request: Any = None) -> None:
    """Load only ``programs`` of ``obj`` (autoload off for the others), so that a program this
    kernel refuses fails only the tests that use it; with ``request``, check that the test's
    ``needs`` marks cover them."""
    unknown = set(programs) - set(obj.programs)
    assert not unknown, f"{obj.name} has no programs {sorted(unknown)}"
    if request is not None:
        check_needs(request, programs)
    for name, prog in obj.programs.items():
        prog.set_autoload(name in programs)


def open_object(src: str, cflags: tuple[str, ...] = (), *,
                programs: Sequence[str] | None = None, request: Any = None,
                **rodata: int) -> pylibbpf.Object:
    """Compile ``tests/bpf/<src>``, open it, set ``.rodata`` variables, load it.

    ``programs``: load only these (the others keep autoload off), so that a program this
    kernel refuses fails only the tests that use it; with the test's ``request``, its
    ``needs`` marks must cover them.  Simulated refusals (``features.refusal_cflags``) are
    compiled in.
    """
    obj = pylibbpf.Object.open_file(object_path(src, cflags))
    try:
        if programs is not None:
            autoload_only(obj, programs, request)
        for name, value in rodata.items():
            obj.rodata[name] = value
        obj.load()
    except BaseException:
        obj.close()
        raise
    return obj


def trace_loader(request: Any) -> tuple[Callable[..., pylibbpf.Object], Callable[[], None]]:
    """For a fixture: ``load("raw_enter", ...)`` opens ``attach_trace.bpf.c`` (``target_pid``
    ours) with only those programs, after checking that the test's ``needs`` markers name
    what they need; ``close_all()`` closes every object it opened."""
    opened: list[pylibbpf.Object] = []

    def load(*programs: str) -> pylibbpf.Object:
        obj = open_object("attach_trace.bpf.c", programs=programs, request=request,
                          target_pid=os.getpid())
        opened.append(obj)
        return obj

    def close_all() -> None:
        for obj in opened:
            obj.close()

    return load, close_all


# --------------------------------------------------------------------------------- namespaces

def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns(CLONE_NEWNET): {os.strerror(err)}")


@contextlib.contextmanager
def private_netns() -> Iterator[int]:
    """Move this thread into a new network namespace with ``lo`` up; yields its fd.

    The namespace disappears when the block ends (the fd is closed and the thread goes back),
    which also removes whatever XDP program, qdisc or netns link was attached in it.
    """
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
        ns = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            # a child forked from this thread starts in the new namespace
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
            yield ns
        finally:
            os.close(ns)
            _setns(home)
    finally:
        os.close(home)


def udp_pair() -> tuple[socket.socket, socket.socket, int]:
    """A receiving UDP socket bound on 127.0.0.1 (free port), a sender, and the port."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return rx, tx, rx.getsockname()[1]


def send_and_receive(rx: socket.socket, tx: socket.socket, port: int, n: int,
                     payload: bytes = b"pylibbpf") -> None:
    """Send ``n`` datagrams to ``port`` on 127.0.0.1 and receive all of them."""
    for _ in range(n):
        tx.sendto(payload, ("127.0.0.1", port))
    rx.settimeout(2.0)
    for _ in range(n):
        rx.recv(2048)


def drain(rx: socket.socket, wait: float = 0.1) -> list[bytes]:
    """Everything queued on ``rx`` (waiting ``wait`` s for the last datagram)."""
    got = []
    rx.settimeout(wait)
    with contextlib.suppress(TimeoutError, socket.timeout):
        while True:
            got.append(rx.recv(2048))
    return got


# --------------------------------------------------------------------------------- cgroups

def cgroup2_root() -> Path:
    """Where cgroup v2 is mounted (``/sys/fs/cgroup/unified`` on hybrid systems)."""
    for candidate in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")):
        if _is_cgroup2(candidate):
            return candidate
    raise FileNotFoundError("no cgroup v2 hierarchy mounted")


def _is_cgroup2(path: Path) -> bool:
    try:
        with open("/proc/self/mounts") as mounts:
            return any(line.split()[1] == str(path) and line.split()[2] == "cgroup2"
                       for line in mounts)
    except OSError:
        return False


@contextlib.contextmanager
def fresh_cgroup() -> Iterator[Path]:
    """A new, empty cgroup v2 directory, removed afterwards (its processes moved out first)."""
    root = cgroup2_root()
    path = root / f"pylibbpf-test-{os.getpid()}-{time.monotonic_ns()}"
    path.mkdir()
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            for pid in (path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (root / "cgroup.procs").write_text(pid)
        for _ in range(50):
            try:
                path.rmdir()
                break
            except OSError:
                time.sleep(0.02)


_SENDER = (
    "import socket, sys\n"
    "n, port = int(sys.argv[1]), int(sys.argv[2])\n"
    "sys.stdin.readline()\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "for _ in range(n):\n"
    "    s.sendto(b'cgroup', ('127.0.0.1', port))\n"
)


def send_from_cgroup(cgroup: Path, port: int, n: int) -> None:
    """Run a child process inside ``cgroup`` that sends ``n`` UDP datagrams to ``port``."""
    child = subprocess.Popen([sys.executable, "-c", _SENDER, str(n), str(port)],
                             stdin=subprocess.PIPE)
    try:
        (cgroup / "cgroup.procs").write_text(str(child.pid))
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.close()
        assert child.wait(timeout=60) == 0  # generous: a busy machine starts Python slowly
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# --------------------------------------------------------------------------------- bpffs

@contextlib.contextmanager
def pin_dir() -> Iterator[Path]:
    """A private folder in bpffs, removed with whatever is still pinned in it."""
    path = BPFFS / f"pylibbpf-test-{os.getpid()}-{time.monotonic_ns()}"
    path.mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------------- helper binary

def helper_binary() -> Path:
    """The uprobe/USDT target ``tests/helpers/uprobe_target.c``, built (cached)."""
    return compile_c("helpers/uprobe_target.c", cflags=("-O2", "-g"))


class Helper:
    """A running helper: started and waiting; :meth:`go` lets it call the probed code."""

    def __init__(self, binary: Path, calls: int) -> None:
        self.calls = calls
        self.proc = subprocess.Popen([str(binary), str(calls)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == b"ready\n"

    @property
    def pid(self) -> int:
        """The helper's process id."""
        return self.proc.pid

    def go(self) -> int:
        """Let it run; returns the sum of ``pylibbpf_target``'s return values it printed."""
        out, _ = self.proc.communicate(b"go\n", timeout=60)  # generous, as above
        assert self.proc.returncode == 0
        return int(out)

    def close(self) -> None:
        """Kill it if it still runs."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def symbol_file_offset(binary: Path, name: str) -> int:
    """The file offset of the function ``name`` in an ELF executable (for offset uprobes)."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    with open(binary, "rb") as f:
        elf = ELFFile(f)
        symtab = elf.get_section_by_name(".symtab")
        assert isinstance(symtab, SymbolTableSection), f"{binary} has no .symtab"
        syms = symtab.get_symbol_by_name(name)
        assert syms, f"no symbol {name} in {binary}"
        addr = syms[0]["st_value"]
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= addr < seg["p_vaddr"] + seg[
                    "p_memsz"]:
                return int(addr - seg["p_vaddr"] + seg["p_offset"])
    raise AssertionError(f"{name} is in no loadable segment of {binary}")
