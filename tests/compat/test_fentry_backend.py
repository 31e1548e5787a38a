"""The fentry/fexit attach backend: legacy programs loaded as BPF_PROG_TYPE_TRACING on the
syscall handler a legacy target maps to, counting and timing real syscalls (needs a kernel
that allows BPF trampolines: the 6.1 guest of ``python -m vmtest``), and the clear refusal
where lockdown forbids them (this project's hosts)."""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable

import pytest

import compat
from compat import backends
from tests.support.legacy_maps import Maps, u64

pytestmark = pytest.mark.kernel

SYS = "<rcore::syscall::Syscall>"
SYS_GETPGID = 121
_libc = ctypes.CDLL(None, use_errno=True)


@pytest.mark.needs("fentry")
def test_map_sample_counts_getppid_exactly(legacy_object: Callable[..., bytes],
                                           maps: Maps) -> None:
    counter, config = maps.array(8, 1), maps.config()
    prog = compat.bpf_prog_load_ex(legacy_object("map.c"),
                                   [("map_fd", counter), ("config", config)])
    try:
        att = compat.bpf_prog_attach(f"kprobe:{SYS}::sys_getppid", prog, backend="fentry")
        assert att.backend is compat.Backend.FENTRY
        assert att.points and att.points[0].startswith("fentry ")
        for _ in range(37):
            os.getppid()
        assert u64(counter, 0) == 37
        with pytest.raises(compat.LegacyError) as exc:
            compat.bpf_prog_attach(f"kprobe:{SYS}::sys_getppid", prog, backend="fentry")
        assert exc.value.errno == errno.EAGAIN
        compat.bpf_prog_detach(prog, f"kprobe:{SYS}::sys_getppid")
        for _ in range(5):
            os.getppid()
        assert u64(counter, 0) == 37  # detached: nothing counts any more
    finally:
        compat.release_program(prog)


@pytest.mark.needs("fentry")
def test_two_programs_run_in_attach_order(legacy_object: Callable[..., bytes],
                                          maps: Maps) -> None:
    counter, config = maps.array(8, 1), maps.config()
    data = legacy_object("map.c")
    a = compat.bpf_prog_load_ex(data, [("map_fd", counter), ("config", config)])
    b = compat.bpf_prog_load_ex(data, [("map_fd", counter), ("config", config)])
    try:
        for fd in (a, b):
            compat.bpf_prog_attach(f"kprobe:{SYS}::sys_getppid", fd, backend="fentry")
        assert [att.prog_fd for att in compat.attachments()] == [a, b]
        for _ in range(10):
            os.getppid()
        assert u64(counter, 0) == 20  # both ran on every call, after the re-link
    finally:
        compat.release_program(a)
        compat.release_program(b)


@pytest.mark.needs("fentry")
def test_time_pair_with_fexit(legacy_object: Callable[..., bytes], maps: Maps) -> None:
    counters, records, config = maps.array(8, 64), maps.array(8, 512), maps.config()
    t1 = compat.bpf_prog_load_ex(legacy_object("time1.c", opt="-O1"),
                                 {"time_counters": counters, "config": config})
    t2 = compat.bpf_prog_load_ex(legacy_object("time2.c", opt="-O1"),
                                 {"time_counters": counters, "records": records,
                                  "config": config})
    try:
        a1 = compat.bpf_prog_attach(f"kretprobe@entry:{SYS}::sys_getppid", t1,
                                    backend="fentry")
        a2 = compat.bpf_prog_attach(f"kretprobe@exit:{SYS}::sys_getppid", t2,
                                    backend="fentry")
        assert a1.points[0].startswith("fentry ") and a2.points[0].startswith("fexit ")
        for _ in range(200):
            os.getppid()
    finally:
        compat.release_program(t1)
        compat.release_program(t2)
    count = u64(records, 0)
    samples = sorted(u64(records, k) for k in range(1, count + 1))
    assert count == 200
    assert all(0 < s < 1_000_000_000 for s in samples)  # a real duration: under 1 s (TCG, busy)
    print(f"fentry/fexit time pair: median getppid {samples[len(samples) // 2]} ns")


@pytest.mark.needs("fentry")
@pytest.mark.parametrize("by_index", [False, True])
def test_context_dump_reads_syscall_arguments(legacy_object: Callable[..., bytes], maps: Maps,
                                              by_index: bool) -> None:
    dump, config = maps.array(8, 10), maps.config()
    flags = ("-DBY_INDEX",) if by_index else ()
    prog = compat.bpf_prog_load_ex(legacy_object("context.c", *flags),
                                   [("dump", dump), ("config", config)])
    try:
        compat.bpf_prog_attach(f"kretprobe@entry:{SYS}::sys_getpgid", prog, backend="fentry")
        _libc.syscall(SYS_GETPGID, 987654321)  # ESRCH, but fentry saw the argument
    finally:
        compat.release_program(prog)
    values = [u64(dump, k) for k in range(10)]
    assert values[0] == 1                      # ptype: kretprobe@entry
    assert values[1] == SYS_GETPGID            # paddr: regs->orig_ax, the syscall number
    assert values[2] == 0                      # a0 was &self on the legacy kernel
    assert values[3] == 987654321              # a1: the first argument, read through regs
    assert values[9] == SYS_GETPGID            # a7: the syscall number, as on RISC-V


@pytest.mark.needs("fentry")
def test_fexit_context_holds_the_return_value(legacy_object: Callable[..., bytes],
                                              maps: Maps) -> None:
    dump, config = maps.array(8, 10), maps.config()
    prog = compat.bpf_prog_load_ex(legacy_object("context.c"),
                                   [("dump", dump), ("config", config)])
    try:
        compat.bpf_prog_attach(f"kretprobe@exit:{SYS}::sys_getppid", prog, backend="fentry")
        ppid = os.getppid()
    finally:
        compat.release_program(prog)
    assert u64(dump, 0) == 2 and u64(dump, 2) == ppid


def test_explicit_fentry_follows_the_kernel(legacy_object: Callable[..., bytes],
                                            maps: Maps) -> None:
    """Where the kernel refuses fentry (lockdown), ``backend="fentry"`` is a clear EPERM that
    leaves nothing behind and the automatic choice avoids it; where it allows fentry, the
    explicit choice attaches with it.  Never a skip: both kinds of kernel check something."""
    counter, config = maps.array(8, 1), maps.config()
    prog = compat.bpf_prog_load_ex(legacy_object("map.c"),
                                   [("map_fd", counter), ("config", config)])
    try:
        if backends.fentry_available():
            att = compat.bpf_prog_attach(f"kprobe:{SYS}::sys_getppid", prog, backend="fentry")
            assert att.backend is compat.Backend.FENTRY
            return
        before = {int(fd) for fd in os.listdir("/proc/self/fd")}
        with pytest.raises(OSError) as exc:
            compat.bpf_prog_attach(f"kprobe:{SYS}::sys_getppid", prog, backend="fentry")
        assert isinstance(exc.value, compat.LegacyError)
        assert exc.value.errno == errno.EPERM
        assert "lockdown" in str(exc.value)
        assert compat.attachments() == []
        assert {int(fd) for fd in os.listdir("/proc/self/fd")} == before
        # the automatic choice never picks fentry here
        att = compat.bpf_prog_attach(f"kprobe:{SYS}::sys_getppid", prog)
        assert att.backend is not compat.Backend.FENTRY
    finally:
        compat.release_program(prog)
