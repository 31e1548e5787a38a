"""BTF-typed decoding and encoding against values the BPF side wrote."""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import pylibbpf
from pylibbpf import Object, RingBuffer
from pylibbpf.elf.btf import BtfKind
from pylibbpf.typed import TypedGlobals, TypedMap, btf_of, codec, decoder, numpy_dtype
from tests.support.bpfbuild import compile_bpf

pytestmark = pytest.mark.kernel

CLANG = "clang-16" if shutil.which("clang-16") else "clang"  # clang >= 15 emits ENUM64

EXPECTED = {
    "u8": 250, "s8": -100, "u16": 65000, "s16": -30000, "u32": 4000000000,
    "s32": -2000000000, "u64": 0xFEDCBA9876543210, "s64": -1234567890123,
    "flag": True, "off": False, "name": "hello", "arr": [1, 2, 3],
    "grid": [[-1, 0, 0], [0, 0, 6]],
    "inner": {"a": 7, "b": -8, "tag": "abcde"},
    "inners": [{"a": 0, "b": 0, "tag": ""}, {"a": 9, "b": 0, "tag": "z"}],
    "word": {"value": 0x04030201, "bytes": [1, 2, 3, 4]},
    "cv": 77, "bf1": 5, "bf2": -9, "bf3": 0xABCDEF, "ptr": 0xFFFF888812345678,
    "f": 1.5, "d": -2.5, "x": 11, "y": 12, "raw": 0x1111222233334444, "half": 0x33334444,
}


@pytest.fixture
def obj(bpf_object_path: Callable[..., Path]) -> Iterator[Object]:
    with Object.open_file(bpf_object_path("events_typed.bpf.c", clang=CLANG)) as o:
        o.load()
        o.programs["fill_all"].test_run(bytes(64))  # a tc run needs an Ethernet header
        yield o


def check_all(value: dict[str, object]) -> None:
    enums = {k: value.pop(k) for k in ("color", "unnamed_color", "neg", "big")}
    assert value == EXPECTED
    color = enums["color"]
    assert color == 40 and getattr(color, "name", None) == "BLUE"
    assert type(color).__name__ == "color"
    assert enums["unnamed_color"] == 7 and type(enums["unnamed_color"]) is int
    assert getattr(enums["neg"], "name", None) == "NEG"
    big = enums["big"]
    assert getattr(big, "name", None) == "HUGE"
    if CLANG == "clang-16":
        assert big == 0x123456789A


def test_map_values_decode_every_kind(obj: Object) -> None:
    table = TypedMap(obj.maps["table"])
    assert table.key is not None and table.key.size == 12
    items = table.items()
    assert len(items) == 1
    key, value = items[0]
    assert key == {"id": 42, "port": 8080, "comm": "bash"}
    check_all(value)
    check_all(table[{"id": 42, "port": 8080, "comm": "bash"}])


def test_encode_round_trips_kernel_bytes(obj: Object) -> None:
    m = obj.maps["table"]
    table = TypedMap(m)
    ((raw_key, raw_value),) = m.items()
    assert table.value.encode(table.value.decode(raw_value)) == raw_value
    assert table.key is not None and table.key.encode(table.key.decode(raw_key)) == raw_key
    # update through the typed view, read back raw and typed
    value = table.value.decode(raw_value)
    value.update(color="RED", s8=-1, name="changed", bf2=15, inner={"a": 1, "b": 2, "tag": "q"})
    value["half"] = 0x55556666  # the anonymous union's two members now disagree
    with pytest.raises(ValueError, match="disagree"):
        table.value.encode(value)
    value.pop("half")
    table[{"id": 1, "port": 2, "comm": "x"}] = value
    back = table[{"id": 1, "port": 2, "comm": "x"}]
    assert back["color"].name == "RED" and back["s8"] == -1 and back["name"] == "changed"
    assert back["bf2"] == 15 and back["bf1"] == 5 and back["bf3"] == 0xABCDEF
    assert back["inner"] == {"a": 1, "b": 2, "tag": "q"}
    assert len(m.lookup(struct.pack("<IH6s", 1, 2, b"x"))) == table.value.size


def test_encode_is_strict(obj: Object) -> None:
    table = TypedMap(obj.maps["table"])
    enc = table.value.encode
    with pytest.raises(ValueError, match="no member"):
        enc({"nope": 1})
    with pytest.raises(ValueError, match="does not fit"):
        enc({"u8": 256})
    with pytest.raises(ValueError, match="does not fit"):
        enc({"bf1": 8})
    with pytest.raises(ValueError, match="do not fit"):
        enc({"name": "x" * 17})
    with pytest.raises(ValueError, match="no enumerator"):
        enc({"color": "PURPLE"})
    with pytest.raises(ValueError, match="disagree"):
        enc({"word": {"value": 1, "bytes": [1, 2, 3, 4]}})
    assert enc({"word": {"value": 0x04030201, "bytes": [1, 2, 3, 4]}}) == enc(
        {"word": {"bytes": [1, 2, 3, 4]}})
    with pytest.raises(ValueError, match="bytes"):
        table.value.decode(b"\0" * 3)


def test_sizes_are_checked(obj: Object) -> None:
    with pytest.raises(ValueError, match="4 bytes; map 'table' has 12-byte keys"):
        TypedMap(obj.maps["table"], key_type="__u32")


def test_ring_buffer_events(obj: Object) -> None:
    got: list[dict[str, object]] = []
    # with decode= the callback gets decoded records; RingBuffer types the raw-bytes callback
    with RingBuffer(obj.maps["records"], got.append,  # type: ignore[arg-type]
                    decode=decoder(obj, "struct all")) as rb:
        assert rb.consume() == 1
    check_all(got[0])


def test_global_variables(obj: Object) -> None:
    bss = TypedGlobals(obj.bss)
    check_all(bss["g_all"])
    data = TypedGlobals(obj.data)
    assert data["g_counter"] == 5
    data["g_counter"] = 6
    assert obj.data.get_int("g_counter") == 6
    assert TypedGlobals(obj.rodata)["g_color"].name == "GREEN"


def test_codec_by_name_and_kinds(obj: Object) -> None:
    btf = btf_of(obj)
    assert codec(btf, "struct inner").size == 8
    assert codec(btf, "my_u32").decode(struct.pack("<I", 9)) == 9
    assert codec(btf, "enum color").decode(struct.pack("<I", 2)).name == "GREEN"
    if CLANG == "clang-16":
        assert btf.find("big", BtfKind.ENUM64) is not None
    assert btf.find("color", BtfKind.ENUM) is not None
    with pytest.raises(KeyError):
        codec(btf, "struct missing")


def test_numpy_dtype(obj: Object) -> None:
    np = pytest.importorskip("numpy")
    btf = btf_of(obj)
    dtype = numpy_dtype(btf, "struct all")
    ((_k, raw),) = obj.maps["table"].items()
    row = np.frombuffer(raw, dtype=dtype)[0]
    assert dtype.itemsize == len(raw)
    assert row["u64"] == EXPECTED["u64"] and row["s16"] == -30000
    assert row["name"] == b"hello" and row["grid"].tolist() == EXPECTED["grid"]
    assert row["inner"]["a"] == 7 and row["d"] == -2.5


@pytest.mark.kernel
def test_ring_buffer_event_type_is_inferred_from_the_programs() -> None:
    from pylibbpf.typed import decoder, infer_event_type

    with pylibbpf.Object.open_file(compile_bpf("events_infer.bpf.c")) as obj:
        # reserve(&samples, sizeof(struct exec_sample)) and output(&notes, &n, sizeof(n))
        assert infer_event_type(obj, "samples") == "struct exec_sample"
        assert infer_event_type(obj, "notes") == "struct pyl_note"
        obj.load()
        got: list[object] = []
        with pylibbpf.RingBuffer(obj.maps["samples"], got.append,
                                 decode=decoder(obj, ring="samples")) as rb:
            rb.add(obj.maps["notes"], got.append, decode=decoder(obj, ring="notes"))
            with obj.programs["emit"].attach():
                for _ in range(3):
                    os.getpid()
            rb.consume()
    mine = [e for e in got if isinstance(e, dict) and e.get("pid") == os.getpid()]
    assert len(mine) == 3
    assert [e["flags"] for e in mine] == [3, 3, 3] and mine[0]["comm"]
    notes = [e for e in got if isinstance(e, dict) and "code" in e]
    assert notes and all(n["code"] == 7 for n in notes)


def test_event_type_that_cannot_be_told_is_a_clear_error() -> None:
    from pylibbpf.typed import infer_event_type

    # events_ringbuf.bpf.c picks its ring at run time and writes variable sizes
    with pylibbpf.Object.open_file(compile_bpf("events_ringbuf.bpf.c")) as obj:
        with pytest.raises(LookupError, match="cannot infer the event type of ring 'rb'"):
            infer_event_type(obj, "rb")
        with pytest.raises(KeyError):
            infer_event_type(obj, "no_such_ring")
