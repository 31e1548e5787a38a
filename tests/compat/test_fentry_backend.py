"""The fentry/fexit attach backend: legacy programs loaded as BPF_PROG_TYPE_TRACING on the
syscall handler a legacy target maps to, counting real syscalls (needs a kernel that allows BPF
trampolines: the 6.1 guest of ``python -m vmtest``), and the clear refusal where lockdown
forbids them (this project's hosts).  Timing and the context dump run on both backends in
``test_end_to_end.py``."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

import pytest

import compat
from compat import backends
from tests.support.legacy_maps import Maps, u64

pytestmark = pytest.mark.kernel

SYS = "<rcore::syscall::Syscall>"


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
