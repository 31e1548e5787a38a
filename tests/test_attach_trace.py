"""Tracing attach paths on the real kernel: tracepoint, raw tracepoint, tp_btf, perf event,
iterators, and BPF_PROG_TEST_RUN with a context.  Programs: ``tests/bpf/attach_trace.bpf.c``;
every counter filters on our pid (``.rodata`` ``target_pid``) and the counts must be exact.
Each test loads only the programs it uses and marks the kernel features they need, so a
kernel that refuses one program type skips just the tests of that type."""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Callable

import pytest

import pylibbpf
from pylibbpf import LinkType
from tests.support.attach import Helper, count, getpid_loop, helper_binary, perf_links

pytestmark = pytest.mark.kernel

# slots of `counts` in attach_trace.bpf.c
K_TP, K_RAW, K_BTF, K_TP_EXPLICIT, K_RAW_EXPLICIT, K_PERF, K_OTHER, K_RAW_RET = range(8)
N = 1000


Load = Callable[..., pylibbpf.Object]


def _counts(obj: pylibbpf.Object) -> pylibbpf.Map:
    return obj.maps["counts"]


@pytest.mark.parametrize("prog,slot,link_type", [
    pytest.param("tp_getpid", K_TP, LinkType.PERF_EVENT,  # a BPF link from 5.15
                 marks=pytest.mark.needs("tracepoint")),
    pytest.param("raw_enter", K_RAW, LinkType.RAW_TRACEPOINT, marks=pytest.mark.needs("raw_tp")),
    pytest.param("btf_enter", K_BTF, LinkType.TRACING, marks=pytest.mark.needs("tp_btf")),
])
def test_attach_by_section_counts_exactly(load_trace: Load, prog: str, slot: int,
                                          link_type: LinkType) -> None:
    obj = load_trace(prog)
    link = obj.programs[prog].attach()
    try:
        getpid_loop(N)
        assert count(_counts(obj), slot) == N
        if link_type == LinkType.PERF_EVENT and not perf_links():
            return
        info = link.info()
        assert info.prog_id == obj.programs[prog].info().id
        # tp_btf links are tracing links on older kernels and raw_tp links on newer ones
        if link_type == LinkType.TRACING:
            assert info.type in (LinkType.TRACING, LinkType.RAW_TRACEPOINT)
        else:
            assert info.type == link_type
    finally:
        link.destroy()
    getpid_loop(N)
    assert count(_counts(obj), slot) == N, "destroy() must detach"


@pytest.mark.needs("tracepoint")
def test_attach_tracepoint_explicit(load_trace: Load) -> None:
    obj = load_trace("tp_explicit")
    prog = obj.programs["tp_explicit"]
    assert prog.section_name == "tracepoint"
    with prog.attach_tracepoint("syscalls", "sys_enter_getpid"):
        getpid_loop(N)
        os.getppid()
        assert count(_counts(obj), K_TP_EXPLICIT) == N


@pytest.mark.needs("tracepoint")
def test_attach_tracepoint_unknown_is_enoent(load_trace: Load) -> None:
    obj = load_trace("tp_explicit")
    with pytest.raises(pylibbpf.BpfError) as info:
        obj.programs["tp_explicit"].attach_tracepoint("syscalls", "sys_enter_no_such_call")
    assert info.value.errno == errno.ENOENT
    assert "syscalls:sys_enter_no_such_call" in str(info.value)


@pytest.mark.needs("raw_tp")
def test_attach_raw_tracepoint_explicit(load_trace: Load) -> None:
    obj = load_trace("raw_explicit")
    link = obj.programs["raw_explicit"].attach_raw_tracepoint("sys_enter")
    try:
        assert link.info().details["tp_name"] == "sys_enter"
        getpid_loop(N)
        assert count(_counts(obj), K_RAW_EXPLICIT) == N
    finally:
        link.destroy()


@pytest.mark.needs("raw_tp")
def test_attach_raw_tracepoint_unknown_is_enoent(load_trace: Load) -> None:
    obj = load_trace("raw_explicit")
    with pytest.raises(pylibbpf.BpfError) as info:
        obj.programs["raw_explicit"].attach_raw_tracepoint("no_such_tracepoint_xyz")
    assert info.value.errno == errno.ENOENT
    assert "no_such_tracepoint_xyz" in str(info.value)


@pytest.mark.needs("tp_btf")
def test_tp_btf_through_attach_trace(load_trace: Load) -> None:
    obj = load_trace("btf_enter")
    prog = obj.programs["btf_enter"]
    assert prog.type == pylibbpf.ProgType.TRACING
    assert prog.expected_attach_type == pylibbpf.AttachType.TRACE_RAW_TP
    with prog.attach_trace():
        getpid_loop(N)
        assert count(_counts(obj), K_BTF) == N


@pytest.mark.needs("raw_tp")
def test_attach_without_a_target_in_the_section_fails(load_trace: Load) -> None:
    obj = load_trace("raw_explicit")
    # SEC("raw_tp") names no tracepoint: libbpf cannot auto-attach it
    with pytest.raises(pylibbpf.BpfError) as info:
        obj.programs["raw_explicit"].attach()
    assert info.value.errno in (errno.EOPNOTSUPP, errno.ESRCH, errno.EINVAL)
    assert "raw_explicit" in str(info.value)


# ----------------------------------------------------------------------------- perf event

PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_CPU_CLOCK = 0
PERF_ATTR_SIZE = 112
SYS_PERF_EVENT_OPEN = 298  # x86_64


def perf_event_open_cpu_clock(cpu: int, period_ns: int) -> int:
    """A sampling software cpu-clock event for this process on ``cpu`` (raw syscall)."""
    attr = bytearray(PERF_ATTR_SIZE)
    struct.pack_into("<IIQQ", attr, 0, PERF_TYPE_SOFTWARE, PERF_ATTR_SIZE,
                     PERF_COUNT_SW_CPU_CLOCK, period_ns)
    buf = (ctypes.c_char * PERF_ATTR_SIZE).from_buffer(attr)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(ctypes.c_long(SYS_PERF_EVENT_OPEN), buf, ctypes.c_int(0),
                      ctypes.c_int(cpu), ctypes.c_int(-1), ctypes.c_ulong(8))  # CLOEXEC
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"perf_event_open: {os.strerror(err)}")
    return int(fd)


def _spin(seconds: float) -> None:
    end = os.times().elapsed + seconds
    while os.times().elapsed < end:
        pass


@pytest.mark.needs("perf_event")
def test_attach_perf_event_cpu_clock(load_trace: Load) -> None:
    obj = load_trace("on_sample")
    affinity = os.sched_getaffinity(0)
    cpu = min(affinity)  # the first CPU this process may use (a cpuset may leave out CPU 0)
    os.sched_setaffinity(0, {cpu})
    try:
        pfd = perf_event_open_cpu_clock(cpu=cpu, period_ns=100_000)
        try:
            link = obj.programs["on_sample"].attach_perf_event(pfd)
        except BaseException:
            os.close(pfd)
            raise
        try:
            if perf_links():
                assert link.info().type == LinkType.PERF_EVENT
            _spin(0.1)
            first = count(_counts(obj), K_PERF)
            _spin(0.1)
            second = count(_counts(obj), K_PERF)
            # 100 µs period, 100 ms of CPU: ~1000 samples each time (throttling allowed)
            assert 10 < first < second
        finally:
            link.destroy()  # closes pfd too
        with pytest.raises(OSError) as closed:
            os.fstat(pfd)
        assert closed.value.errno == errno.EBADF
        after = count(_counts(obj), K_PERF)
        _spin(0.05)
        assert count(_counts(obj), K_PERF) == after
    finally:
        os.sched_setaffinity(0, affinity)


# ----------------------------------------------------------------------------- iterators

@pytest.mark.needs("iter_task")
def test_iter_task_by_section_lists_our_pid(load_trace: Load) -> None:
    obj = load_trace("dump_task")
    child = Helper(helper_binary(), 1)  # exec'd and waiting once it printed "ready"
    link = obj.programs["dump_task"].attach()
    try:
        info = link.info()
        assert info.type == LinkType.ITER
        assert info.details["target_name"] == "task"
        rows = dict(line.split(" ", 1) for line in link.read().decode().splitlines())
        with open("/proc/self/comm") as comm:
            assert rows[str(os.getpid())] == comm.read().strip()
        assert rows[str(child.pid)] == helper_binary().name[:15]  # TASK_COMM_LEN - 1
        # link.open_iter(): a fresh file per call, each a full run of the iterator
        with link.open_iter() as first, link.open_iter() as second:
            a, b = first.read().decode(), second.read().decode()
        assert f"\n{os.getpid()} " in "\n" + a and f"\n{os.getpid()} " in "\n" + b
    finally:
        link.destroy()
        child.close()


@pytest.mark.needs("iter_task")
def test_iter_open_on_a_link_is_a_deprecated_alias_of_open_iter(load_trace: Load) -> None:
    obj = load_trace("dump_task")
    with obj.programs["dump_task"].attach() as link:
        with pytest.warns(DeprecationWarning, match=r"use link\.open_iter\(\)") as caught:
            stream = link.open()
        with stream:
            rows = stream.read().decode()
    assert [w.filename for w in caught] == [__file__]  # the warning names the caller's line
    assert f"\n{os.getpid()} " in "\n" + rows


@pytest.mark.needs("iter_map_elem")
def test_iter_map_elements(load_trace: Load) -> None:
    obj = load_trace("dump_elem")
    table = obj.maps["table"]
    expected = {0: 11, 1: 0, 2: 2**40 + 3, 3: 7, 4: 2**64 - 1}
    for key, value in expected.items():
        table[key] = value
    with obj.programs["dump_elem"].attach_iter(map=table) as link:
        info = link.info()
        assert info.details["target_name"] == "bpf_map_elem"
        assert info.details["map_id"] == table.info().id
        printed = dict(line.split("=") for line in link.read().decode().splitlines())
    assert {int(k): int(v) for k, v in printed.items()} == expected


@pytest.mark.needs("iter_map_elem")
def test_iter_map_elements_needs_a_map(load_trace: Load) -> None:
    obj = load_trace("dump_elem")
    with pytest.raises(pylibbpf.BpfError) as info:
        obj.programs["dump_elem"].attach_iter()
    assert info.value.errno in (errno.EINVAL, errno.EBADF)


# ----------------------------------------------------------------------------- test_run

@pytest.mark.needs("raw_tp")
def test_test_run_raw_tp_with_ctx(load_trace: Load) -> None:
    obj = load_trace("raw_testrun")
    # raw_tp test runs take ctx_in only: no data, no ctx_out, no repeat (the kernel says EINVAL)
    result = obj.programs["raw_testrun"].test_run(ctx_in=struct.pack("<3Q", 5, 37, 4242),
                                                  repeat=0, ctx_size_out=0)
    assert result.retval == 42
    assert result.data_out == b"" and result.ctx_out == b""
    assert count(_counts(obj), K_RAW_RET) == 4242


@pytest.mark.needs("raw_tp")
def test_test_run_raw_tp_with_defaults(load_trace: Load) -> None:
    obj = load_trace("raw_testrun")
    # the defaults ask for neither a repeat count nor ctx_out, which raw_tp runs refuse
    result = obj.programs["raw_testrun"].test_run(ctx_in=struct.pack("<3Q", 5, 37, 1))
    assert result.retval == 42
