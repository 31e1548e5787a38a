"""The compiled codecs of flat types (pylibbpf.elf._flat) against the generic codec: for every
flat type of the test objects, of a C source written for it and of a sample of vmlinux's BTF,
decode and encode give the same values, bytes and errors (message included) both ways."""

from __future__ import annotations

import enum
import random
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pylibbpf.elf import ObjectFile
from pylibbpf.elf.btf import Btf, BtfKind
from pylibbpf.elf.codec import Codec, FieldError, codec
from pylibbpf.typesource import Types
from tests.support.bpfbuild import BPF_SRC, BuildError, compile_bpf

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")

FLAT_C = """
enum color { RED = 1, GREEN = 2, BLUE = 40, NEG = -3 };
enum small : unsigned char { ONE = 1, TWO = 2 };
enum big { SMALL = 1, HUGE = 0x123456789aLL };
typedef unsigned int my_u32;
struct pair { unsigned short a; signed char b; char tag[5]; };
struct flat_all {
    unsigned char u8; signed char s8; unsigned short u16; short s16;
    unsigned int u32; int s32; unsigned long long u64; long long s64;
    _Bool flag; char c; enum color color; enum small sm; enum big big;
    char name[16]; unsigned int arr[3]; short grid[2][3];
    struct pair inner; struct pair inners[2];
    const volatile my_u32 cv; void *ptr; float f; double d;
    unsigned long long many[20]; _Bool bits[18]; double floats[17];
    enum color colors[3]; char names[2][4]; unsigned char raw[7];
};
struct empty { };
struct one { struct empty e; int x; };
"""
FLAT_NAMES = ["struct flat_all", "struct pair", "struct one", "enum color", "enum small",
              "enum big", "my_u32"]


class Index:
    """Not an int, but ``struct`` takes it (``__index__``): the codec must not."""

    def __index__(self) -> int:
        return 3


BAD: list[Any] = ["x", 1.5, None, -1, 1 << 64, -(1 << 63) - 1, True, False, b"x" * 40,
                  "\u00e9" * 20, "\ud800", Index(), [], {}, (1, 2), bytearray(b"ab"), 7]


def normal(value: Any) -> Any:
    """``value`` with its types spelled out, floats as bytes (NaN equals itself)."""
    if isinstance(value, dict):
        return ("dict", [(k, normal(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [normal(v) for v in value])
    if isinstance(value, float):
        return ("float", struct.pack("=d", value))
    if isinstance(value, enum.IntEnum):
        return (type(value).__name__, value.name, int(value))
    return (type(value).__name__, value)


def outcome(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        result = fn(*args)
    except Exception as exc:  # the very exception, compared by type and message
        extra = (exc.field, exc.reason) if isinstance(exc, FieldError) else ()
        return ("raised", type(exc), str(exc), extra)
    return ("ok", normal(result) if not isinstance(result, bytes) else result)


def leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a decoded value (dict members and list items, containers included)."""
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaf_paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaf_paths(v, (*path, i))


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    out: Any = dict(value) if isinstance(value, dict) else list(value)
    out[head] = replaced(value[head], rest, new)
    return out


def variants(value: Any, limit: int | None = None) -> Iterator[Any]:
    """``value`` with each place given each bad value, and containers cut short, grown, given
    an unknown member or missing one."""
    for n, path in enumerate(leaf_paths(value)):
        if limit is not None and n >= limit:
            return
        for bad in BAD:
            yield replaced(value, path, bad)
        here: Any = value
        for step in path:
            here = here[step]
        if isinstance(here, list) and here:
            yield replaced(value, path, here[:-1])
            yield replaced(value, path, [*here, here[-1]])
            yield replaced(value, path, tuple(here))
        if isinstance(here, dict) and here:
            yield replaced(value, path, {**here, "nope": 1})
            yield replaced(value, path, dict(list(here.items())[1:]))
        if isinstance(here, int) and not isinstance(here, bool):
            yield replaced(value, path, int(here) + 1)


def check(c: Codec, rng: random.Random, mutations: int | None = 0) -> None:
    """The compiled halves of ``c`` against its generic ones."""
    assert c.flat is not None
    slow_decode: Callable[..., Any] = c._decode_generic
    slow_encode: Callable[[Any], bytes] = c._encode_generic
    for raw in (bytes(c.size), bytes(rng.getrandbits(8) for _ in range(c.size)),
                b"\xff" * c.size):
        assert outcome(c.decode, raw) == outcome(slow_decode, raw)
        assert outcome(c, raw) == outcome(slow_decode, raw)
        # build: what the readers that unpack many records at once call per record
        inline = c.flat.inline("def make(t):\n    {t} = t\n    return {value}\n", "make")
        loop = c.flat.inline("def loop(source):\n    return [{value} for {t} in source]\n",
                             "loop")
        for around, at in ((raw, 0), (b"ab" + raw + b"z", 2)):
            built = c.flat.build(c.flat.struct.unpack_from(around, at))
            assert normal(built) == normal(slow_decode(around, at))
            # the expression a loop compiled with inline() makes per record (the tuple
            # unpacked into locals by the loop, or indexed)
            made = inline(c.flat.struct.unpack_from(around, at))
            assert normal(made) == normal(slow_decode(around, at))
        tuples = [c.flat.struct.unpack_from(raw), c.flat.struct.unpack_from(raw[::-1])]
        assert normal(loop(tuples)) == normal([slow_decode(raw), slow_decode(raw[::-1])])
        for data, off in ((bytearray(raw), 0), (memoryview(b"ab" + raw), 2), (raw + b"z", 0),
                          (raw[:-1], 0), (raw, 1), (b"", 0)):
            assert outcome(c.decode, data, off) == outcome(slow_decode, data, off)
        value = slow_decode(raw)
        assert outcome(c.encode, value) == outcome(slow_encode, value)
        assert c.encode(value) == slow_encode(value)
        for given in (raw, bytearray(raw), raw[:-1], raw + b"z"):
            assert outcome(c.encode, given) == outcome(slow_encode, given)
        if mutations is None or mutations > 0:
            for bad in variants(value, mutations):
                assert outcome(c.encode, bad) == outcome(slow_encode, bad), (c, bad)
            mutations = 0  # once per type is enough


def flat_types(btf: Btf) -> Iterator[int]:
    for t in btf.types[1:]:
        if t.kind in (BtfKind.STRUCT, BtfKind.ARRAY, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.INT,
                      BtfKind.TYPEDEF):
            yield t.id


@pytest.fixture(scope="module")
def flat_btf() -> Btf:
    return Types.from_c(FLAT_C).btf


def test_a_struct_of_every_flat_kind_is_compiled(flat_btf: Btf) -> None:
    for name in FLAT_NAMES:
        assert codec(flat_btf, name).flat is not None, name
    c = codec(flat_btf, "struct flat_all")
    value = {**c.decode(bytes(c.size)), "color": "BLUE", "name": "hi", "flag": True,
             "big": "SMALL", "f": 1.5, "many": list(range(20))}
    back = c.decode(c.encode(value))
    assert back["color"].name == "BLUE" and back["big"].name == "SMALL" and back["name"] == "hi"
    assert back["flag"] is True and back["many"] == list(range(20)) and back["f"] == 1.5
    assert type(back["inners"][1]["tag"]) is str and back["grid"] == [[0, 0, 0], [0, 0, 0]]


def test_flat_types_match_the_generic_codec_values_and_errors(flat_btf: Btf) -> None:
    rng = random.Random(16)
    for name in FLAT_NAMES:
        check(codec(flat_btf, name), rng, mutations=None)


def test_every_flat_type_of_the_test_objects_matches_the_generic_codec() -> None:
    rng = random.Random(1)
    checked = 0
    for src in sorted(BPF_SRC.glob("*.bpf.c")):
        try:
            obj = ObjectFile.from_path(compile_bpf(src.name))
        except BuildError:
            continue  # needs flags of its own test: its types are covered by the others
        if obj.btf is None:
            continue
        for type_id in flat_types(obj.btf):
            try:
                c = codec(obj.btf, type_id)
            except ValueError:
                continue  # no value layout (an array of void pointers' targets...)
            if c.flat is not None and 0 < c.size <= 65536:
                # the large arrays (a ring's max_entries as int[65536]): values only
                check(c, rng, mutations=40 if c.size <= 1024 else 0)
                checked += 1
    assert checked > 50


def test_inline_loops_unpack_into_locals_where_they_can() -> None:
    """A record of up to 255 items taken one by one is unpacked by the loop itself; a long
    array (a slice of the tuple) or more items keep the tuple whole; a member name that looks
    like an item (from ctypes, which takes any string) stays the name it is."""
    import ctypes

    class Odd(ctypes.Structure):
        _fields_ = [("t[0]", ctypes.c_uint32), ("t", ctypes.c_uint32), ("_1", ctypes.c_uint16)]

    wide = "struct wide { " + " ".join(f"int f{k};" for k in range(300)) + " };"
    cases = [(Types.from_ctypes(Odd), "Odd", True),
             (Types.from_c(FLAT_C), "struct pair", True),
             (Types.from_c(FLAT_C), "struct flat_all", False),  # many[20]: a slice
             (Types.from_c(wide), "struct wide", False)]  # 300 items
    rng = random.Random(5)
    for types, name, unpacked in cases:
        c = codec(types.btf, name)
        assert c.flat is not None
        source = c.flat.inline("def f(source):\n    for {t} in source:\n        pass\n", "f")
        code = source.__code__
        assert ("t" in code.co_varnames) is not unpacked, name
        check(c, rng)
    odd = codec(Types.from_ctypes(Odd).btf, "Odd")
    assert odd.decode(struct.pack("<IIH2x", 7, 8, 9)) == {"t[0]": 7, "t": 8, "_1": 9}


def test_not_flat_types_keep_the_generic_codec() -> None:
    btf = ObjectFile.from_path(compile_bpf("events_typed.bpf.c")).btf
    assert btf is not None
    # bitfields, unions, anonymous members
    for name in ("struct all", "union word"):
        c = codec(btf, name)
        assert c.flat is None and c.decoder == c._decode_generic
    assert codec(btf, "struct flow_key").flat is not None
    assert codec(btf, "struct inner").flat is not None


@pytest.mark.skipif(not VMLINUX_BTF.exists(), reason="no vmlinux BTF")
def test_a_sample_of_vmlinux_types_matches_the_generic_codec() -> None:
    btf = Btf.from_bytes(VMLINUX_BTF.read_bytes())
    rng = random.Random(6)
    ids = list(flat_types(btf))
    checked = 0
    for n, type_id in enumerate(ids[::25]):
        try:
            c = codec(btf, type_id)
        except ValueError:
            continue
        if c.flat is None or not c.size or c.size > 4096:
            continue
        check(c, rng, mutations=30 if n % 8 == 0 else 0)
        checked += 1
    assert checked > 200
