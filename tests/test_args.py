"""Checked arguments: ints that reach C are range-checked, strings may not hold a NUL, sizes an
object declares cannot make the library allocate without bound, and a pin path outside a bpffs
is named as such.  The helpers of ``pylibbpf._args`` first (no kernel), then the defects they
fixed, each on the kernel."""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pylibbpf import (
    BpfError,
    BpfPermissionError,
    Link,
    Map,
    MapType,
    Object,
    _args,
    lowlevel,
)
from pylibbpf._ffi import structs
from pylibbpf._ffi.libc import BPF_FS_MAGIC, fs_type
from tests.support.bpfbuild import compile_bpf

EXIT_0 = bytes.fromhex("b700000000000000" "9500000000000000")  # r0 = 0; exit
kernel = pytest.mark.kernel


# ------------------------------------------------------------------------------ the helpers

@pytest.mark.parametrize("check, low, high", [
    (_args.u32, 0, 2**32 - 1), (_args.u64, 0, 2**64 - 1), (_args.c_int, -2**31, 2**31 - 1),
    (_args.non_negative_int, 0, 2**31 - 1), (_args.fd, 0, 2**31 - 1),
])
def test_integer_checks_take_their_whole_range_and_nothing_more(check, low, high) -> None:  # type: ignore[no-untyped-def]
    assert check(low, "n") == low and check(high, "n") == high
    for outside in (low - 1, high + 1, 2**100, -2**100):
        with pytest.raises(ValueError, match=r"^n "):
            check(outside, "n")
    for wrong in ("4", 4.0, None, True, b"4"):
        with pytest.raises(TypeError, match=r"^n must be an int"):
            check(wrong, "n")


def test_int_subclasses_such_as_enums_pass_as_plain_ints() -> None:
    value = _args.u32(MapType.HASH, "map_type")
    assert value == 1 and type(value) is int


def test_strings_for_c_refuse_nul_and_wrong_types() -> None:
    assert _args.cstr("sys_enter", "name") == b"sys_enter"
    with pytest.raises(ValueError, match="name 'a\\\\x00b' contains a NUL"):
        _args.cstr("a\0b", "name")
    with pytest.raises(TypeError, match="name must be a str, not bytes"):
        _args.cstr(b"x", "name")
    assert _args.optional_cstr(None, "name") is None
    assert _args.cpath(Path("/sys/fs/bpf/x")) == b"/sys/fs/bpf/x"
    assert _args.cpath(b"/sys/fs/bpf/x") == b"/sys/fs/bpf/x"
    with pytest.raises(ValueError, match="contains a NUL"):
        _args.cpath("/sys/fs/bpf/x\0/../../etc")
    with pytest.raises(ValueError, match="path is empty"):
        _args.cpath("")
    with pytest.raises(TypeError, match="path must be a str, bytes or os.PathLike, not int"):
        _args.cpath(3)


def test_object_names_longer_than_the_kernel_keeps_are_refused() -> None:
    assert _args.obj_name("a" * 15) == b"a" * 15
    assert _args.obj_name("") is None and _args.obj_name(None) is None
    with pytest.raises(ValueError, match=r"16 bytes; the kernel keeps at most 15"):
        _args.obj_name("a" * 16)
    with pytest.raises(ValueError, match="contains a NUL"):
        _args.obj_name("abc\0def")


def test_buffers_are_bytes_like_only() -> None:
    assert _args.buffer(bytearray(b"ab"), "data") == b"ab"
    assert _args.buffer(memoryview(b"abcd")[1:3], "data") == b"bc"
    assert _args.buffer((ctypes.c_uint8 * 2)(1, 2), "data") == b"\1\2"
    for wrong in (5, 2**40, "ab", None, 1.5):  # bytes(2**40) would try to allocate 1 TiB
        with pytest.raises(TypeError, match="data must be bytes-like"):
            _args.buffer(wrong, "data")


def test_opts_structs_refuse_values_ctypes_would_truncate() -> None:
    opts = structs.new_opts(structs.bpf_test_run_opts, repeat=5, flags=2**32 - 1)
    assert (opts.repeat, opts.flags) == (5, 2**32 - 1)
    for field, value in (("repeat", 2**31), ("repeat", -2**31 - 1), ("flags", -1),
                         ("flags", 2**32), ("cpu", 2**100), ("flags", "1")):
        with pytest.raises(ValueError, match=f"bpf_test_run_opts.{field} = "):
            structs.new_opts(structs.bpf_test_run_opts, **{field: value})


def test_instruction_buffers_are_checked_before_libbpf() -> None:
    assert lowlevel.encode_insns(EXIT_0) == EXIT_0
    for bad in (b"", EXIT_0[:7], EXIT_0 + b"\0"):
        with pytest.raises(ValueError, match="non-empty multiple of 8 bytes"):
            lowlevel.encode_insns(bad)
    with pytest.raises(ValueError, match="the kernel loads at most 1000000"):
        lowlevel.encode_insns(EXIT_0 * (_args.MAX_INSNS // 2 + 1))
    for wrong in (8, "insns", None):
        with pytest.raises(TypeError):
            lowlevel.encode_insns(wrong)  # type: ignore[arg-type]


def test_statfs_tells_bpffs_from_other_filesystems() -> None:
    assert fs_type(b"/") not in (None, BPF_FS_MAGIC)
    assert fs_type(b"/no/such/path") is None
    if os.path.ismount("/sys/fs/bpf"):
        assert fs_type(b"/sys/fs/bpf") == BPF_FS_MAGIC


# ------------------------------------------------------------------------------ on the kernel

@pytest.fixture
def opened(minimal_o: Path) -> Iterator[Object]:
    with Object.open_file(minimal_o) as obj:
        yield obj


@pytest.fixture
def hash_map() -> Iterator[Map]:
    with Map.create(MapType.HASH, 4, 8, 4, name="t_args") as m:
        yield m


@kernel
@pytest.mark.parametrize("insns", [b"", b"\0" * 12, EXIT_0 * (_args.MAX_INSNS // 2 + 1)],
                         ids=["empty", "not a multiple of 8", "too many"])
def test_set_insns_refuses_invalid_buffers_and_close_stays_safe(insns: bytes) -> None:
    # libbpf 1.1.2 frees the instructions on an empty list and close() freed them again (abort)
    obj = Object.open_file(compile_bpf("minimal.bpf.c"))
    prog = obj.programs["on_getpid"]
    before = prog.insns
    with pytest.raises(ValueError, match="insns: "):
        prog.set_insns(insns)
    assert prog.insns == before
    obj.close()
    assert obj.closed


@kernel
def test_set_insns_refuses_a_shorter_program_and_keeps_working(opened: Object) -> None:
    # libbpf patches relocations at their index in the original program at load: a shorter
    # replacement had them written past its end (a segfault in load())
    prog = opened.programs["on_getpid"]
    original = prog.insns
    assert len(original) > len(EXIT_0)
    with pytest.raises(ValueError, match=f"insns: 2 instructions for program 'on_getpid', "
                       f"which has {len(original) // 8}"):
        prog.set_insns(EXIT_0)
    # same length: accepted, and it loads and runs; any bytes-like object will do
    prog.set_insns(bytearray(original))  # type: ignore[arg-type]
    assert prog.insns == original
    opened.load()
    with prog.attach():
        before = opened.maps["hits"][0]
        os.getpid()
        assert opened.maps["hits"][0] != before


@kernel
@pytest.mark.parametrize("kwargs, argument", [
    ({"repeat": -1}, "repeat"), ({"repeat": 2**31}, "repeat"),
    ({"data_size_out": -5}, "data_size_out"), ({"data_size_out": 2**32}, "data_size_out"),
    ({"ctx_size_out": -1}, "ctx_size_out"), ({"flags": 2**32}, "flags"), ({"cpu": -1}, "cpu"),
])
def test_test_run_refuses_out_of_range_numbers(kwargs: dict[str, Any], argument: str) -> None:
    # repeat=-1 reached the kernel as 4,294,967,295 rounds: a hang
    with Object.open_file(compile_bpf("events_ringbuf.bpf.c")) as obj:
        obj.load()
        with pytest.raises(ValueError, match=f"^{argument} "):
            obj.programs["emit"].test_run(bytes(64), **kwargs)


@kernel
def test_test_run_refuses_oversized_output_buffers_and_wrong_types() -> None:
    with Object.open_file(compile_bpf("events_ringbuf.bpf.c")) as obj:
        obj.load()
        prog = obj.programs["emit"]
        limit = 64 << 20
        with pytest.raises(ValueError, match=f"data_size_out {limit + 1} is out of range"):
            prog.test_run(bytes(64), data_size_out=limit + 1)
        with pytest.raises(TypeError, match="data_in must be bytes-like, not str"):
            prog.test_run("packet")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="repeat must be an int"):
            prog.test_run(bytes(64), repeat="2")  # type: ignore[arg-type]


@kernel
@pytest.mark.parametrize("setter, value", [
    ("set_max_entries", 2**32 + 1), ("set_max_entries", -1), ("set_key_size", 2**32),
    ("set_value_size", -8), ("set_map_flags", 2**32), ("set_numa_node", -1),
    ("set_map_extra", 2**64 + 3), ("set_ifindex", 2**32), ("set_type", 2**31),
    ("set_inner_map_fd", -1), ("reuse_fd", 2**40),
])
def test_object_map_setters_refuse_what_ctypes_would_truncate(opened: Object, setter: str,
                                                               value: int) -> None:
    m = opened.maps["hits"]
    before = (m.max_entries, m.key_size, m.value_size, m.flags, m.map_extra, m.type)
    with pytest.raises(ValueError, match=r" is (out of range|not a file descriptor)"):
        getattr(m, setter)(value)
    assert (m.max_entries, m.key_size, m.value_size, m.flags, m.map_extra, m.type) == before
    m.set_max_entries(7)  # in range: accepted as before
    assert m.max_entries == 7


@kernel
@pytest.mark.parametrize("setter, value", [
    ("set_flags", 2**32), ("set_log_level", -1), ("set_type", -1),
    ("set_expected_attach_type", 2**31), ("set_ifindex", 2**32), ("set_log_buf", 2**31),
    ("set_log_buf", 0),
])
def test_program_setters_refuse_out_of_range_numbers(opened: Object, setter: str,
                                                     value: int) -> None:
    prog = opened.programs["on_getpid"]
    with pytest.raises(ValueError, match=" is out of range"):
        getattr(prog, setter)(value)


@kernel
def test_setters_with_wrong_types_raise_type_error_not_ctypes_errors(opened: Object) -> None:
    m, prog = opened.maps["hits"], opened.programs["on_getpid"]
    with pytest.raises(TypeError, match="size must be an int, not str"):
        m.set_key_size("4")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="flags must be an int, not float"):
        prog.set_flags(1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="initial value must be bytes-like, not int"):
        m.set_initial_value(2**40)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="func_name 'a\\\\x00b' contains a NUL"):
        prog.set_attach_target("a\0b")


@kernel
def test_element_calls_check_flags(hash_map: Map) -> None:
    with pytest.raises(ValueError, match=r"^flags 18446744073709551616 is out of range"):
        hash_map.update(1, 1, flags=2**64)
    with pytest.raises(ValueError, match=r"^flags -1 is out of range"):
        hash_map.lookup(1, flags=-1)
    with pytest.raises(TypeError, match=r"^flags must be an int, not str"):
        hash_map.update(1, 1, flags="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^flags "):
        hash_map.update_batch([1], [1], flags=2**64)
    assert len(hash_map) == 0
    hash_map.update(1, 1, flags=0)
    assert hash_map[1] == (1).to_bytes(8, "little")


@kernel
def test_map_create_checks_name_numbers_and_types() -> None:
    with pytest.raises(ValueError, match=r"^map_extra 18446744073709551619 is out of range"):
        Map.create(MapType.BLOOM_FILTER, 0, 8, 16, map_extra=2**64 + 3)
    with pytest.raises(ValueError, match="name 'abc\\\\x00def' contains a NUL"):
        Map.create(MapType.HASH, 4, 8, 1, name="abc\0def")
    with pytest.raises(ValueError, match="is 16 bytes; the kernel keeps at most 15"):
        Map.create(MapType.HASH, 4, 8, 1, name="sixteen_chars_xx")
    with pytest.raises(TypeError, match="name must be a str, not int"):
        Map.create(MapType.HASH, 4, 8, 1, name=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="map_type must be an int, not str"):
        Map.create("1", 4, 8, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_entries -1 is out of range"):
        Map.create(MapType.HASH, 4, 8, -1)
    with Map.create(MapType.HASH, 4, 8, 1, name="fifteen_chars_x") as m:
        assert m.name == m.info().name == "fifteen_chars_x"


@kernel
def test_standalone_constructors_check_fds_ids_and_paths() -> None:
    with pytest.raises(ValueError, match="fd 1099511627776 is not a file descriptor"):
        Map.from_fd(2**40)
    with pytest.raises(ValueError, match="map_id -1 is out of range"):
        Map.from_id(-1)
    with pytest.raises(ValueError, match="contains a NUL"):
        Map.from_pinned("/sys/fs/bpf/x\0/../../etc")


@kernel
def test_a_pin_path_with_a_nul_is_refused_and_nothing_is_pinned(hash_map: Map) -> None:
    before = set(os.listdir("/sys/fs/bpf"))
    with pytest.raises(ValueError, match="path '/sys/fs/bpf/repro_x\\\\x00/../../etc' contains"):
        hash_map.pin("/sys/fs/bpf/repro_x\0/../../etc")
    assert set(os.listdir("/sys/fs/bpf")) == before


@kernel
def test_attach_names_with_nul_are_refused() -> None:
    with Object.open_file(compile_bpf("minimal.bpf.c")) as obj:
        obj.load()
        prog = obj.programs["on_getpid"]
        with pytest.raises(ValueError, match="name 'sys_enter_getpid\\\\x00x' contains a NUL"):
            prog.attach_tracepoint("syscalls", "sys_enter_getpid\0x")
        with pytest.raises(ValueError, match="contains a NUL"):
            prog.attach_raw_tracepoint("sys_enter\0")
        with pytest.raises(ValueError, match="cookie -1 is out of range"):
            prog.attach_tracepoint("syscalls", "sys_enter_getpid", cookie=-1)


@kernel
def test_batch_size_is_bounded_by_max_entries(hash_map: Map) -> None:
    hash_map.update_batch([1, 2, 3], [10, 20, 30])
    with pytest.raises(ValueError, match=r"^batch_size 1099511627776 is out of range \[1, 4\]"):
        hash_map.lookup_batch(batch_size=2**40)  # was a MemoryError
    with pytest.raises(ValueError, match=r"^batch_size 0 is out of range"):
        hash_map.lookup_batch(batch_size=0)
    assert len(hash_map.lookup_batch(batch_size=4)) == 3


@kernel
def test_batch_buffers_stay_within_the_byte_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    value_size = 1 << 20
    monkeypatch.setattr(_args, "MAX_BUFFER", 3 * value_size)  # room for two entries a call
    with Map.create(MapType.ARRAY, 4, value_size, 8) as m:
        m[5] = b"\x07" * value_size
        with pytest.raises(ValueError, match=r"batch_size 8 needs \d+ bytes of buffers; at "
                           r"most 3145728 \(batch_size 2 for this map\)"):
            m.lookup_batch(batch_size=8)
        items = dict(m.items())  # the default batch shrinks to fit instead
        assert len(items) == 8 and items[(5).to_bytes(4, "little")] == b"\x07" * value_size


def _with_bss_of(size: int) -> bytes:
    """The counters test object with its ``.bss`` section header claiming ``size`` bytes."""
    data = bytearray(compile_bpf("counters.bpf.c").read_bytes())
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    strtab, = struct.unpack_from("<Q", data, shoff + shstrndx * shentsize + 0x18)
    for index in range(shnum):
        header = shoff + index * shentsize
        name_off, = struct.unpack_from("<I", data, header)
        if bytes(data[strtab + name_off:strtab + name_off + 5]) == b".bss\0":
            struct.pack_into("<Q", data, header + 0x20, size)
            return bytes(data)
    raise AssertionError("counters.bpf.c has no .bss")


@kernel
def test_a_declared_bss_beyond_what_the_kernel_creates_is_not_copied() -> None:
    # a ~1 KiB object whose .bss claims gigabytes: initial_value copied all of it (8 GB RSS)
    size = _args.MAX_VALUE_SIZE + 4097
    try:
        obj = Object.open_mem(_with_bss_of(size))
    except BpfError as exc:
        # libbpf maps the image itself (shared anonymous memory, charged at once): a machine
        # with less than that to spare (a test VM) refuses it there, with libbpf's clear error
        assert exc.errno == errno.ENOMEM, exc
    else:
        with obj:
            bss = next(m for m in obj.maps.values() if m.name.endswith(".bss"))
            assert bss.value_size == size
            with pytest.raises(BpfError, match=f"declares a {size}-byte initial value; the "
                               f"kernel creates map values of at most {_args.MAX_VALUE_SIZE} "
                               "bytes") as info:
                _ = bss.initial_value
            assert info.value.errno == errno.E2BIG
            with pytest.raises(BpfError, match="declares a") as info:
                obj.bss["hits"]
            assert info.value.errno == errno.E2BIG
    with Object.open_file(compile_bpf("counters.bpf.c")) as obj:  # a real one is unchanged
        assert obj.maps[next(n for n in obj.maps if n.endswith(".bss"))].initial_value == bytes(16)


@kernel
def test_the_value_size_bound_is_the_kernels() -> None:
    with pytest.raises(BpfError) as info:
        Map.create(MapType.ARRAY, 4, _args.MAX_VALUE_SIZE + 1, 1)
    assert info.value.errno == errno.E2BIG


@kernel
def test_a_path_outside_bpffs_is_named_not_blamed_on_lockdown(hash_map: Map,
                                                              tmp_path: Path) -> None:
    assert fs_type(os.fsencode(tmp_path)) != BPF_FS_MAGIC
    with pytest.raises(BpfError, match="/etc/passwd is not on a BPF filesystem") as info:
        Map.from_pinned("/etc/passwd")
    assert info.value.errno == errno.EACCES
    assert not isinstance(info.value, BpfPermissionError)
    assert "lockdown" not in str(info.value)
    with pytest.raises(BpfError, match=f"{tmp_path} is not on a BPF filesystem") as info:
        hash_map.pin(tmp_path / "pin")
    assert info.value.errno == errno.EPERM and "lockdown" not in str(info.value)
    with pytest.raises(BpfError, match="/etc/passwd is not on a BPF filesystem"):
        Link.open("/etc/passwd")
    with pytest.raises(BpfError) as info:  # a missing pin in a bpffs keeps its plain ENOENT
        Map.from_pinned("/sys/fs/bpf/pylibbpf-no-such-pin")
    assert info.value.errno == errno.ENOENT and "BPF filesystem" not in str(info.value)
