"""pylibbpf.lowlevel on the real kernel: fd-level map calls checked against bpftool and
pylibbpf.Map, size validation before any call, errno kept, and prog_load's verifier log."""

from __future__ import annotations

import errno
import gc
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

import pylibbpf
from pylibbpf import MapType, ProgType, lowlevel
from pylibbpf.elf import insn as I
from pylibbpf.elf.insn import Instruction
from tests.support.attach import autoload_only, bpftool_perf, my_attachments, object_path

pytestmark = pytest.mark.kernel

EXIT_0 = [Instruction(I.ALU64 | I.SRC_K | I.ALU_MOV, dst=0, imm=0), Instruction(I.JMP | I.JMP_EXIT)]


def fd_count() -> int:
    # Maps of earlier tests caught in reference cycles (pytest.raises keeps tracebacks) give
    # their fd numbers back whenever the cyclic collector runs: collect first, so the count
    # does not depend on when that happens; pylibbpf.map's one-time /dev/null fd is opened
    # before counting for the same reason.
    import pylibbpf.map  # noqa: F401

    gc.collect()
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def fds() -> Iterator[list[int]]:
    before = fd_count()
    opened: list[int] = []
    yield opened
    for fd in opened:
        os.close(fd)
    assert fd_count() == before, "fds leaked"


def u32(n: int) -> bytes:
    return n.to_bytes(4, sys.byteorder)


def u64(n: int) -> bytes:
    return n.to_bytes(8, sys.byteorder)


def bpftool_dump(fd: int) -> dict[bytes, bytes]:
    map_id = pylibbpf.MapInfo.from_fd(fd).id
    out = subprocess.run(["bpftool", "-j", "map", "dump", "id", str(map_id)], check=True,
                         capture_output=True, text=True).stdout
    return {bytes(int(b, 16) for b in entry["key"]): bytes(int(b, 16) for b in entry["value"])
            for entry in json.loads(out)}


def test_hash_operations_match_bpftool(fds: list[int]) -> None:
    fd = lowlevel.map_create(MapType.HASH, 4, 8, 8, name="ll_hash")
    fds.append(fd)
    info = pylibbpf.MapInfo.from_fd(fd)
    assert (info.name, info.type, info.key_size, info.value_size, info.max_entries) == \
        ("ll_hash", MapType.HASH, 4, 8, 8)
    for k in range(5):
        lowlevel.map_update_elem(fd, u32(k), u64(k * 100))
    lowlevel.map_delete_elem(fd, u32(3))
    expected = {u32(k): u64(k * 100) for k in (0, 1, 2, 4)}
    assert bpftool_dump(fd) == expected
    assert lowlevel.map_lookup_elem(fd, u32(4), 8) == u64(400)
    assert lowlevel.map_lookup_elem(fd, 2) == u64(200)            # ints are encoded natively
    keys = []
    key = None
    while (key := lowlevel.map_get_next_key(fd, key, 4)) is not None:
        keys.append(key)
    assert sorted(keys) == sorted(expected)
    # the same map through pylibbpf.Map sees the same contents
    with pylibbpf.Map.from_fd(fd) as m:
        assert dict(m.items()) == expected
    with pytest.raises(KeyError):
        lowlevel.map_lookup_elem(fd, u32(3))
    with pytest.raises(KeyError):
        lowlevel.map_delete_elem(fd, u32(3))


def test_errno_is_kept(fds: list[int]) -> None:
    fd = lowlevel.map_create(MapType.HASH, 4, 8, 2)
    arr = lowlevel.map_create(MapType.ARRAY, 4, 8, 2)
    fds += [fd, arr]
    lowlevel.map_update_elem(fd, 1, 10, pylibbpf.UpdateFlags.NOEXIST)
    lowlevel.map_update_elem(fd, 2, 0)
    cases: list[tuple[Callable[[], None], int]] = [
        (lambda: lowlevel.map_update_elem(fd, 1, 11, pylibbpf.UpdateFlags.NOEXIST),
         errno.EEXIST),
        (lambda: lowlevel.map_update_elem(fd, 5, 11, pylibbpf.UpdateFlags.EXIST), errno.ENOENT),
        (lambda: lowlevel.map_update_elem(fd, 3, 0), errno.E2BIG),        # full
        (lambda: lowlevel.map_update_elem(arr, 2, 0), errno.E2BIG),       # index past the end
        (lambda: lowlevel.map_delete_elem(arr, 0), errno.EINVAL),         # arrays cannot delete
        (lambda: lowlevel.map_update_elem(fd, 1, 1, 77), errno.EINVAL),   # bad flags
    ]
    for call, err in cases:
        with pytest.raises(pylibbpf.BpfError) as exc:
            call()
        assert exc.value.errno == err, exc.value
    with pytest.raises(pylibbpf.BpfError) as bad:
        lowlevel.map_create(MapType.HASH, 0, 8, 4)
    assert bad.value.errno == errno.EINVAL and "HASH" in str(bad.value)


def test_sizes_are_checked_before_the_kernel(fds: list[int]) -> None:
    fd = lowlevel.map_create(MapType.ARRAY, 4, 16, 4)
    fds.append(fd)
    lowlevel.map_update_elem(fd, 1, b"x" * 16)
    with pytest.raises(ValueError):
        lowlevel.map_update_elem(fd, 1, b"short")              # value of the wrong size
    with pytest.raises(ValueError):
        lowlevel.map_lookup_elem(fd, b"\0" * 3)                # key of the wrong size
    with pytest.raises(ValueError):
        lowlevel.map_lookup_elem(fd, 1, value_size=8)          # caller thinks values are 8 bytes
    with pytest.raises(ValueError):
        lowlevel.map_get_next_key(fd, None, key_size=8)
    with pytest.raises(TypeError):
        lowlevel.map_lookup_elem(fd, "1")
    with pytest.raises(ValueError):
        lowlevel.map_create(MapType.HASH, -1, 8, 4)
    with pytest.raises(TypeError):
        lowlevel.map_create(MapType.HASH, 4, 8.0, 4)  # type: ignore[arg-type]
    assert lowlevel.map_lookup_elem(fd, 1) == b"x" * 16       # unchanged by the refusals


def test_not_a_map(fds: list[int]) -> None:
    prog = lowlevel.prog_load(ProgType.SOCKET_FILTER, EXIT_0, license="GPL")
    r, w = os.pipe()
    fds += [prog, r, w]
    for fd in (prog, r):
        with pytest.raises(pylibbpf.BpfError) as exc:
            lowlevel.map_lookup_elem(fd, 0, 8)
        assert exc.value.errno == errno.EINVAL
    with pytest.raises(pylibbpf.BpfError) as closed:
        lowlevel.map_lookup_elem(1000, 0, 8)
    assert closed.value.errno == errno.EBADF
    # an fd number that was a map and is now a program is not taken for the old map
    old = lowlevel.map_create(MapType.ARRAY, 4, 8, 1)
    assert lowlevel.map_lookup_elem(old, 0) == bytes(8)
    os.close(old)
    reused = lowlevel.prog_load(ProgType.SOCKET_FILTER, EXIT_0, license="GPL")
    fds.append(reused)
    assert reused == old
    with pytest.raises(pylibbpf.BpfError) as exc:
        lowlevel.map_lookup_elem(reused, 0)
    assert exc.value.errno == errno.EINVAL


def test_percpu_values_are_raw_slots(fds: list[int]) -> None:
    fd = lowlevel.map_create(MapType.PERCPU_ARRAY, 4, 4, 1)
    fds.append(fd)
    ncpu = pylibbpf.num_possible_cpus()
    layout = lowlevel.map_layout(fd)
    assert layout == (MapType.PERCPU_ARRAY, 4, 4, 8 * ncpu)
    blob = b"".join(u32(c + 1) + bytes(4) for c in range(ncpu))
    lowlevel.map_update_elem(fd, 0, blob)
    assert lowlevel.map_lookup_elem(fd, 0, 4) == blob
    with pylibbpf.Map.from_fd(fd) as m:
        assert m[0] == [u32(c + 1) for c in range(ncpu)]


def test_queue_map_has_no_keys(fds: list[int]) -> None:
    fd = lowlevel.map_create(MapType.QUEUE, 0, 8, 4)
    fds.append(fd)
    lowlevel.map_update_elem(fd, None, u64(7))
    lowlevel.map_update_elem(fd, None, u64(8))
    assert lowlevel.map_lookup_elem(fd, None) == u64(7)          # peek
    with pytest.raises(ValueError):
        lowlevel.map_lookup_elem(fd, 1)
    with pytest.raises(ValueError):
        lowlevel.map_get_next_key(fd)


def test_prog_load_and_info(fds: list[int]) -> None:
    fd = lowlevel.prog_load(ProgType.SOCKET_FILTER, EXIT_0, license="GPL", name="ll_exit")
    fds.append(fd)
    info = pylibbpf.ProgramInfo.from_fd(fd)
    assert (info.name, info.type, info.gpl_compatible) == ("ll_exit", ProgType.SOCKET_FILTER,
                                                           True)
    assert I.decode(info.xlated_insns) == EXIT_0
    out = subprocess.run(["bpftool", "-j", "prog", "show", "id", str(info.id)], check=True,
                         capture_output=True, text=True).stdout
    assert json.loads(out)["name"] == "ll_exit"
    # bytes work as well as Instructions; a success with log_level gives the log
    log: list[str] = []
    fd2 = lowlevel.prog_load(ProgType.SOCKET_FILTER, I.encode(EXIT_0), license="MIT",
                             log_level=1, log_out=log)
    fds.append(fd2)
    assert not pylibbpf.ProgramInfo.from_fd(fd2).gpl_compatible
    assert "processed 2 insns" in log[0]


def test_verifier_rejection_carries_the_log(fds: list[int]) -> None:
    before = fd_count()
    with pytest.raises(pylibbpf.VerifierError) as exc:
        lowlevel.prog_load(ProgType.TRACEPOINT, [Instruction(I.JMP | I.JMP_EXIT)],
                           license="GPL", name="no_r0")
    err = exc.value
    assert err.errno == errno.EACCES
    assert err.program == "no_r0"
    assert "R0 !read_ok" in err.log and "R0 !read_ok" in str(err)
    assert fd_count() == before


def test_verifier_log_grows_past_the_first_buffer(fds: list[int]) -> None:
    # 6000 instructions, each printed at log level 1, then a refused exit: the log is far
    # larger than the first 64 KiB buffer, so the kernel's ENOSPC must make it grow
    body = [Instruction(I.ALU64 | I.SRC_K | I.ALU_MOV, dst=1, imm=k) for k in range(6000)]
    with pytest.raises(pylibbpf.VerifierError) as exc:
        lowlevel.prog_load(ProgType.SOCKET_FILTER, [*body, Instruction(I.JMP | I.JMP_EXIT)],
                           license="GPL", name="big")
    log = exc.value.log
    assert exc.value.errno == errno.EACCES
    assert len(log) > 64 << 10
    # from the first instruction (6.x kernels print R1's state there first) to the last
    assert log.startswith("0: ") and re.search(r"^0: \(b7\) r1 = 0\b", log, re.M)
    assert "5999: (b7) r1 = 5999" in log
    assert "R0 !read_ok" in log and "more" not in log[-200:]
    assert "earlier lines omitted" in str(exc.value)


def test_prog_load_bad_input(fds: list[int]) -> None:
    for insns in (b"", b"\0" * 12):
        with pytest.raises(ValueError):
            lowlevel.prog_load(ProgType.SOCKET_FILTER, insns, license="GPL")
    with pytest.raises(TypeError):
        lowlevel.prog_load(ProgType.SOCKET_FILTER, [1, 2], license="GPL")  # type: ignore[list-item]
    with pytest.raises(ValueError):
        lowlevel.prog_load(ProgType.SOCKET_FILTER, EXIT_0, license="")
    # a map fd the program references that is not a map: refused by the verifier
    r, w = os.pipe()
    fds += [r, w]
    prog = [Instruction(I.LD_IMM64, dst=1, src=I.PSEUDO_MAP_FD, imm=r), *EXIT_0]
    with pytest.raises(pylibbpf.BpfError) as exc:
        lowlevel.prog_load(ProgType.SOCKET_FILTER, prog, license="GPL")
    assert exc.value.errno in (errno.EINVAL, errno.EBADF)


def test_numbers_names_and_fds_are_checked_before_c(fds: list[int]) -> None:
    fd = lowlevel.map_create(MapType.HASH, 4, 8, 4)
    fds.append(fd)
    checks: list[tuple[Callable[[], object], type[Exception], str]] = [
        (lambda: lowlevel.prog_load(ProgType.SOCKET_FILTER, EXIT_0, license="GPL",
                                    name="sixteen_chars_xx"), ValueError, "at most 15"),
        (lambda: lowlevel.prog_load(ProgType.SOCKET_FILTER, EXIT_0, license="GPL\0"),
         ValueError, "license 'GPL\\x00' contains a NUL"),
        (lambda: lowlevel.prog_load(ProgType.SOCKET_FILTER, EXIT_0, license="GPL",
                                    log_level=-1), ValueError, "log_level -1 is out of range"),
        (lambda: lowlevel.prog_load(ProgType.SOCKET_FILTER, EXIT_0, license="GPL",
                                    fd_array=[2**40]), ValueError, "fd_array entry"),
        (lambda: lowlevel.prog_load(ProgType.SOCKET_FILTER, EXIT_0, license="GPL",
                                    log_out="x"), TypeError, "log_out must be a list"),  # type: ignore[arg-type]
        (lambda: lowlevel.prog_load(2**32, EXIT_0, license="GPL"), ValueError,
         "prog_type 4294967296 is out of range"),
        (lambda: lowlevel.map_create(MapType.HASH, 4, 8, 4, name="a\0b"), ValueError,
         "contains a NUL"),
        (lambda: lowlevel.map_create(MapType.HASH, 4, 8, 4, map_extra=-1), ValueError,
         "map_extra -1 is out of range"),
        (lambda: lowlevel.map_update_elem(fd, 1, 1, flags=2**64), ValueError,
         "flags 18446744073709551616 is out of range"),
        (lambda: lowlevel.map_lookup_elem(fd, 1, flags=-1), ValueError, "flags -1"),
        (lambda: lowlevel.link_create(fd, fd, pylibbpf.AttachType.PERF_EVENT, cookie=2**64),
         ValueError, "cookie 18446744073709551616 is out of range"),
        (lambda: lowlevel.prog_attach(2**31, fd, 0), ValueError, "prog_fd 2147483648 is not"),
        (lambda: lowlevel.task_fd_query(-1, 0), ValueError, "pid -1 is out of range"),
        (lambda: lowlevel.map_layout(2**40), ValueError, "map fd 1099511627776 is not"),
    ]
    for call, kind, message in checks:
        with pytest.raises(kind, match=re.escape(message)):
            call()
    assert lowlevel.map_get_next_key(fd) is None  # the map saw none of it


def test_kernel_version_code() -> None:
    major, minor = (int(p) for p in platform.release().split(".")[:2])
    assert lowlevel.kernel_version_code() >> 8 == (major << 8) + minor


# ------------------------------------------------------------------------------ attachments

@pytest.mark.needs("tracepoint", "raw_tp")
def test_task_fd_query_names_each_attachment_as_bpftool_perf_does(
        request: pytest.FixtureRequest) -> None:
    with pylibbpf.Object.open_file(object_path("counters.bpf.c")) as obj:
        autoload_only(obj, ["count_getpid", "count_raw_enter"], request)
        obj.load()
        tp, raw = obj.programs["count_getpid"], obj.programs["count_raw_enter"]
        ids = {tp.info().id, raw.info().id}
        assert my_attachments(ids) == {}
        with tp.attach(), raw.attach():
            found = my_attachments(ids)
            kinds = sorted((i.fd_type, i.name, i.prog_id) for i in found.values())
            assert kinds == sorted([("tracepoint", "sys_enter_getpid", tp.info().id),
                                    ("raw_tracepoint", "sys_enter", raw.info().id)])
            assert bpftool_perf(ids) == {fd: i.prog_id for fd, i in found.items()}
        assert my_attachments(ids) == {}
    r, w = os.pipe()
    try:
        assert lowlevel.task_fd_query(os.getpid(), r) is None  # not a perf event
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(pylibbpf.BpfError) as exc:
        lowlevel.task_fd_query(os.getpid(), r)
    assert exc.value.errno == errno.EBADF
