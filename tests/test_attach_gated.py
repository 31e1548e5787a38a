"""kprobe, ksyscall, fentry/fexit and LSM: attach paths some kernels refuse.

Two kinds of tests.  ``test_*_refused_or_works`` run everywhere: where ``tests/support/features.py``
says the kernel lacks the feature they check that pylibbpf fails with the right exception, errno
and message (this project's host: no ``CONFIG_KPROBES``, lockdown=integrity refusing BPF
trampolines); where the feature is there they check that the same call succeeds.  The
``needs(...)`` tests count exact hits and run where the feature exists (the VM tier); here they
skip with the probe's reason.  Programs: ``tests/bpf/attach_{kprobe,fentry,lsm}.bpf.c``.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

import pytest

import pylibbpf
from tests.support import features
from tests.support.attach import count, getpid_loop, open_object, perf_links
from tests.support.bpfbuild import compile_bpf

K_ENTRY, K_RETURN, K_RETVAL, K_OFFSET, K_SYSCALL = range(5)
F_ENTRY, F_EXIT, F_RETVAL = range(3)
N = 500
SYSCALL_HANDLER = "__x64_sys_getpid"


@pytest.fixture
def kprobes() -> Iterator[pylibbpf.Object]:
    o = open_object("attach_kprobe.bpf.c", target_pid=os.getpid())
    try:
        yield o
    finally:
        o.close()


def _fentry_target() -> str:
    found = features.btf_func_id("__x64_sys_getpid", "__do_sys_getpid")
    if found is None:
        pytest.fail("neither __x64_sys_getpid nor __do_sys_getpid is in the kernel's BTF")
    return found[0]


def _open_fentry() -> pylibbpf.Object:
    obj = pylibbpf.Object.open_file(compile_bpf("attach_fentry.bpf.c"))
    target = _fentry_target()
    for prog in obj.programs.values():
        prog.set_attach_target(target)
    obj.rodata["target_pid"] = os.getpid()
    return obj


def _open_lsm() -> pylibbpf.Object:
    obj = pylibbpf.Object.open_file(compile_bpf("attach_lsm.bpf.c"))
    obj.rodata["target_pid"] = os.getpid()
    return obj


# ----------------------------------------------------------------------------- refused here

@pytest.mark.kernel
def test_kprobe_refused_or_works(kprobes: pylibbpf.Object) -> None:
    prog = kprobes.programs["on_entry"]
    if features.missing("kprobe") is None:
        with prog.attach_kprobe(SYSCALL_HANDLER):
            pass
        return
    with pytest.raises(pylibbpf.BpfError) as info:
        prog.attach_kprobe(SYSCALL_HANDLER)
    assert info.value.errno in (errno.ENOENT, errno.EOPNOTSUPP)
    message = str(info.value)
    assert message.startswith("failed to attach program 'on_entry' as kprobe on "
                              f"{SYSCALL_HANDLER}+0")
    assert "perf event" in message  # libbpf's own reason travels in the message


@pytest.mark.kernel
def test_kretprobe_refused_or_works(kprobes: pylibbpf.Object) -> None:
    prog = kprobes.programs["on_return"]
    if features.missing("kprobe") is None:
        with prog.attach_kprobe(SYSCALL_HANDLER, retprobe=True):
            pass
        return
    with pytest.raises(pylibbpf.BpfError) as info:
        prog.attach_kprobe(SYSCALL_HANDLER, retprobe=True)
    assert info.value.errno in (errno.ENOENT, errno.EOPNOTSUPP)
    assert "kretprobe" in str(info.value)


@pytest.mark.kernel
def test_ksyscall_refused_or_works(kprobes: pylibbpf.Object) -> None:
    prog = kprobes.programs["on_syscall"]
    if features.missing("kprobe") is None:
        with prog.attach_ksyscall("getpid"):
            pass
        return
    with pytest.raises(pylibbpf.BpfError) as info:
        prog.attach_ksyscall("getpid")
    assert info.value.errno in (errno.ENOENT, errno.EOPNOTSUPP)
    assert "syscall getpid" in str(info.value)


@pytest.mark.kernel
def test_ksyscall_section_without_a_name_cannot_auto_attach(kprobes: pylibbpf.Object) -> None:
    with pytest.raises(pylibbpf.NotSupportedError) as info:
        kprobes.programs["on_syscall"].attach()
    assert info.value.errno == errno.EOPNOTSUPP
    assert "by section 'ksyscall'" in str(info.value)


def _assert_lockdown_refusal(exc: pylibbpf.BpfError, obj_name: str) -> None:
    assert isinstance(exc, pylibbpf.BpfPermissionError)
    assert isinstance(exc, PermissionError)  # still a plain OSError to Python code
    assert exc.errno == errno.EPERM
    message = str(exc)
    assert f"failed to load BPF object '{obj_name}'" in message
    # root holds every capability: the message must blame lockdown, not a capability
    assert "lockdown" in message
    assert "not a capability problem" in message
    assert "missing capability" not in message


@pytest.mark.kernel
def test_fentry_load_refused_or_works() -> None:
    obj = _open_fentry()
    try:
        why = features.missing("fentry")
        if why is None or "(lockdown:" not in why:
            obj.load()
            return
        with pytest.raises(pylibbpf.BpfError) as info:
            obj.load()
        _assert_lockdown_refusal(info.value, "attach_fentry")
    finally:
        obj.close()


@pytest.mark.kernel
def test_lsm_load_refused_or_works() -> None:
    obj = _open_lsm()
    try:
        why = features.missing("lsm")
        if why is None or "(lockdown:" not in why:
            obj.load()  # an inactive bpf LSM still loads LSM programs (they never run)
            return
        with pytest.raises(pylibbpf.BpfError) as info:
            obj.load()
        _assert_lockdown_refusal(info.value, "attach_lsm")
    finally:
        obj.close()


@pytest.mark.kernel
def test_fentry_without_target_fails_at_load() -> None:
    # SEC("fentry") names no function and none was set: libbpf refuses before the kernel
    obj = pylibbpf.Object.open_file(compile_bpf("attach_fentry.bpf.c"))
    try:
        with pytest.raises(pylibbpf.BpfError) as info:
            obj.load()
        assert info.value.errno == errno.EINVAL
        assert not isinstance(info.value, pylibbpf.BpfPermissionError)
    finally:
        obj.close()


# ----------------------------------------------------------------------------- where they exist

@pytest.mark.needs("kprobe")
def test_kprobe_counts_getpid(kprobes: pylibbpf.Object) -> None:
    counts = kprobes.maps["counts"]
    link = kprobes.programs["on_entry"].attach_kprobe(SYSCALL_HANDLER)
    try:
        if perf_links():
            assert link.info().type == pylibbpf.LinkType.PERF_EVENT
        getpid_loop(N)
        assert count(counts, K_ENTRY) == N
    finally:
        link.destroy()
    getpid_loop(N)
    assert count(counts, K_ENTRY) == N


@pytest.mark.needs("kprobe")
def test_kretprobe_sees_the_return_value(kprobes: pylibbpf.Object) -> None:
    counts = kprobes.maps["counts"]
    with kprobes.programs["on_return"].attach_kprobe(SYSCALL_HANDLER, retprobe=True):
        getpid_loop(N)
    assert count(counts, K_RETURN) == N
    assert count(counts, K_RETVAL) == N * os.getpid()


@pytest.mark.needs("kprobe")
def test_kprobe_at_an_offset(kprobes: pylibbpf.Object) -> None:
    prog = kprobes.programs["on_offset"]
    # the first instruction boundary after the entry: the kernel refuses the others (EILSEQ)
    link = None
    for offset in range(1, 16):
        try:
            link = prog.attach_kprobe(SYSCALL_HANDLER, offset=offset)
            break
        except pylibbpf.BpfError as exc:
            assert exc.errno in (errno.EILSEQ, errno.EINVAL, errno.ENOENT), exc
    assert link is not None, f"no offset in 1..15 of {SYSCALL_HANDLER} could be probed"
    try:
        getpid_loop(N)
        assert count(kprobes.maps["counts"], K_OFFSET) == N
    finally:
        link.destroy()


@pytest.mark.needs("kprobe")
def test_attach_ksyscall_getpid(kprobes: pylibbpf.Object) -> None:
    with kprobes.programs["on_syscall"].attach_ksyscall("getpid"):
        getpid_loop(N)
    assert count(kprobes.maps["counts"], K_SYSCALL) == N


@pytest.mark.needs("fentry")
def test_fentry_fexit_count_getpid() -> None:
    obj = _open_fentry().load()
    try:
        counts = obj.maps["counts"]
        entry = obj.programs["getpid_entry"].attach_trace()
        exit_ = obj.programs["getpid_exit"].attach()  # by section: attach_trace too
        try:
            assert entry.info().type == pylibbpf.LinkType.TRACING
            getpid_loop(N)
        finally:
            entry.destroy()
            exit_.destroy()
        assert count(counts, F_ENTRY) == N
        assert count(counts, F_EXIT) == N
        assert count(counts, F_RETVAL) == N * os.getpid()
    finally:
        obj.close()


@pytest.mark.needs("lsm")
def test_lsm_file_open_counts() -> None:
    obj = _open_lsm().load()
    try:
        link = obj.programs["on_file_open"].attach_lsm()
        try:
            for _ in range(N):
                os.close(os.open(os.devnull, os.O_RDONLY))
        finally:
            link.destroy()
        assert count(obj.maps["counts"], 0) == N
        assert link.closed
    finally:
        obj.close()
