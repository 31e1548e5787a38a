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
from tests.support import bpftool
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


def test_traced_functions_are_read_from_the_kernel_btf(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fentry backend's vmlinux lookup (through pylibbpf.btf.KernelBtf) runs on every
    kernel with BTF, whether it allows fentry or not; compared with what bpftool dumps."""
    if not os.path.exists(bpftool.VMLINUX):
        pytest.skip("the kernel has no BTF (CONFIG_DEBUG_INFO_BTF)")
    monkeypatch.setattr(backends, "_FUNCTIONS", {})
    names = ["vfs_read", "do_nanosleep", "__x64_sys_getpid", "__do_sys_getpid", "no_such_fn_x"]
    found = backends.traced_functions(names)
    assert "no_such_fn_x" not in found and backends.traced_function("no_such_fn_x") is None
    dumped = bpftool.btf_functions()
    assert {n for n in names if n in dumped} == set(found)
    for name, function in found.items():
        assert (function.btf_id, function.nargs) == dumped[name]
    assert found["vfs_read"].nargs == 4 and not found["vfs_read"].syscall_regs
    # the getpid handler BTF knows takes the user's registers (`const struct pt_regs *`)
    handler = found.get("__x64_sys_getpid") or found["__do_sys_getpid"]
    assert handler.syscall_regs == (handler.nargs == 1)
