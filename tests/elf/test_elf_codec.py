"""The pure halves of pylibbpf.typed, on an object file alone (no root, no libbpf):
pylibbpf.elf.codec (BTF <-> Python values) and pylibbpf.elf.records (ring record types)."""

from __future__ import annotations

import shutil
import struct
import sys

import pytest

from pylibbpf.elf import BtfKind, ObjectFile
from pylibbpf.elf.btf import Btf
from pylibbpf.elf.codec import codec, numpy_dtype
from pylibbpf.elf.records import infer_event_type, ring_record_sizes
from tests.support.bpfbuild import compile_bpf

CLANG = "clang-16" if shutil.which("clang-16") else "clang"  # clang >= 15 emits ENUM64

VALUE = {
    "u8": 250, "s8": -100, "u16": 65000, "s16": -30000, "u32": 4000000000,
    "s32": -2000000000, "u64": 0xFEDCBA9876543210, "s64": -1234567890123,
    "flag": True, "off": False, "color": "BLUE", "unnamed_color": 7, "neg": "NEG",
    "big": "HUGE", "name": "hello", "arr": [1, 2, 3], "grid": [[-1, 0, 0], [0, 0, 6]],
    "inner": {"a": 7, "b": -8, "tag": "abcde"},
    "inners": [{"a": 0, "b": 0, "tag": ""}, {"a": 9, "b": 0, "tag": "z"}],
    "word": {"value": 0x04030201}, "cv": 77, "bf1": 5, "bf2": -9, "bf3": 0xABCDEF,
    "ptr": 0xFFFF888812345678, "f": 1.5, "d": -2.5, "x": 11, "y": 12, "raw": 0x1111222233334444,
}


@pytest.fixture(scope="module")
def btf() -> Btf:
    obj = ObjectFile.from_path(compile_bpf("events_typed.bpf.c", clang=CLANG))
    assert obj.btf is not None
    return obj.btf


def test_a_struct_of_every_kind_round_trips(btf: Btf) -> None:
    c = codec(btf, "struct all")
    assert c.size == btf.size_of(btf.find("all", BtfKind.STRUCT) or 0) and c.name == "struct all"
    raw = c.encode(VALUE)
    value = c.decode(raw)
    assert c.encode(value) == raw
    assert value["color"] == 40 and value["color"].name == "BLUE"
    assert value["neg"].name == "NEG" and type(value["unnamed_color"]) is int
    assert value["word"] == {"value": 0x04030201, "bytes": [1, 2, 3, 4]}
    assert value["half"] == 0x33334444 and value["bf2"] == -9 and value["name"] == "hello"
    u8, s8, u16 = struct.unpack_from("=BbH", raw)
    assert (u8, s8, u16) == (250, -100, 65000)
    with pytest.raises(ValueError, match="no member 'nope'"):
        c.encode({"nope": 1})
    with pytest.raises(ValueError, match="does not fit"):
        c.encode({"u8": 256})


def test_types_are_named_as_in_c(btf: Btf) -> None:
    assert codec(btf, "enum color").size == 4
    assert codec(btf, "union word").decode((0x04030201).to_bytes(4, sys.byteorder)) == {
        "value": 0x04030201, "bytes": [1, 2, 3, 4]}
    assert codec(btf, "my_u32").decode(b"\x05\0\0\0" if sys.byteorder == "little"
                                       else b"\0\0\0\x05") == 5
    assert btf.find_c_type("struct inner") is btf.find("inner", BtfKind.STRUCT)
    assert btf.find_c_type("struct color") is None
    assert btf.find_c_type("g_counter") is None  # a variable is not a type
    with pytest.raises(KeyError, match="no type 'struct nothing'"):
        codec(btf, "struct nothing")


def test_numpy_dtype_has_the_struct_layout(btf: Btf) -> None:
    np = pytest.importorskip("numpy")
    c = codec(btf, "struct all")
    dtype = numpy_dtype(btf, "struct all")
    assert dtype.itemsize == c.size
    row = np.frombuffer(c.encode(VALUE), dtype=dtype)[0]
    assert row["u64"] == VALUE["u64"] and row["name"] == b"hello" and row["d"] == -2.5


def test_ring_record_types_come_from_the_instructions() -> None:
    obj = ObjectFile.from_path(compile_bpf("events_infer.bpf.c"))
    assert obj.btf is not None
    sample = obj.btf.find("exec_sample", BtfKind.STRUCT)
    note = obj.btf.find("pyl_note", BtfKind.STRUCT)
    assert sample is not None and note is not None
    # reserve(&samples, sizeof(*s), 0) and output(&notes, &n, sizeof(n), 0)
    assert ring_record_sizes(obj, "samples") == {sample.size}
    assert ring_record_sizes(obj, "notes") == {note.size}
    assert infer_event_type(obj, "samples") == "struct exec_sample"
    assert infer_event_type(obj, "notes") == "struct pyl_note"


def test_a_ring_without_one_constant_size_is_a_clear_error() -> None:
    # events_ringbuf.bpf.c picks its ring at run time and writes variable sizes
    obj = ObjectFile.from_path(compile_bpf("events_ringbuf.bpf.c"))
    with pytest.raises(LookupError, match="cannot infer the event type of ring 'rb'"):
        infer_event_type(obj, "rb")
    with pytest.raises(KeyError):
        infer_event_type(obj, "no_such_ring")
