"""Typed views over flat types (compiled codecs) against the kernel: what a typed update stores
is the C layout, what the kernel or the BPF side wrote decodes to the same values, per-CPU maps
and errors still go through the same paths, and a ring's records export to NumPy with the
dtype of the same type."""

from __future__ import annotations

import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pylibbpf import Map, MapType, Object, RingBuffer
from pylibbpf.elf.codec import FieldError
from pylibbpf.typed import TypedMap, Types, btf_of, codec, decoder, numpy_dtype

pytestmark = pytest.mark.kernel

CLANG = "clang-16" if shutil.which("clang-16") else "clang"

REC_C = """
enum state { IDLE = 0, BUSY = 3 };
struct rec { __u64 a; __u64 b; __u32 c; __u32 d; __u64 e[5]; };
struct tagged { __u16 port; char comm[6]; enum state st; _Bool on; struct rec r; };
"""
REC = struct.Struct("=QQII5Q")


@pytest.fixture(scope="module")
def types() -> Types:
    return Types.from_c(REC_C)


@pytest.fixture
def obj(bpf_object_path: Callable[..., Path]) -> Iterator[Object]:
    with Object.open_file(bpf_object_path("events_typed.bpf.c", clang=CLANG)) as o:
        o.load()
        o.programs["fill_all"].test_run(bytes(64))
        yield o


def test_typed_update_stores_the_c_layout(types: Types) -> None:
    with Map.create(MapType.HASH, 4, 64, 16) as m:
        view = TypedMap(m, key_type=types["__u32"], value_type=types["struct rec"])
        assert view.value.flat is not None and view.key is not None and view.key.flat is not None
        value = {"a": 1, "b": 1 << 63, "c": 3, "d": 0xFFFFFFFF, "e": [5, 6, 7, 8, 9]}
        view[7] = value
        assert m.lookup((7).to_bytes(4, "little")) == REC.pack(1, 1 << 63, 3, 0xFFFFFFFF,
                                                               5, 6, 7, 8, 9)
        m.update((8).to_bytes(4, "little"), REC.pack(10, 11, 12, 13, 1, 2, 3, 4, 5))
        assert view[8] == {"a": 10, "b": 11, "c": 12, "d": 13, "e": [1, 2, 3, 4, 5]}
        assert view[7] == value and view.get(9) is None
        view.update(9, {"c": 4})  # a partial dict: the generic path, the rest zero
        assert view[9] == {"a": 0, "b": 0, "c": 4, "d": 0, "e": [0] * 5}
        with pytest.raises(FieldError, match=r"^e\[1\]: -1 does not fit"):
            view[7] = {**value, "e": [1, -1, 2, 3, 4]}
        with pytest.raises(FieldError, match="needs an int, not float"):
            view[7] = {**value, "a": 1.0}
        with pytest.raises(ValueError, match="does not fit"):
            view[1 << 32] = value
        assert view[7] == value  # the refused writes stored nothing
        with pytest.raises(KeyError):
            view[100]
        assert sorted(view.keys()) == [7, 8, 9]


def test_nested_flat_values_round_trip_through_the_kernel(types: Types) -> None:
    c = types["struct tagged"]
    assert c.flat is not None
    with Map.create(MapType.ARRAY, 4, c.size, 2) as m:
        view = TypedMap(m, key_type=types["__u32"], value_type=c)
        value = {"port": 8080, "comm": "bash", "st": "BUSY", "on": True,
                 "r": {"a": 1, "b": 2, "c": 3, "d": 4, "e": [1, 2, 3, 4, 5]}}
        view[1] = value
        got = view[1]
        assert got == {**value, "st": 3} and got["st"].name == "BUSY" and got["on"] is True
        assert view[0]["comm"] == "" and view[0]["st"].name == "IDLE"
        with pytest.raises(FieldError, match="^on: bool needs True or False"):
            view[1] = {**value, "on": 1}
        with pytest.raises(FieldError, match="^comm: 7 bytes do not fit char"):
            view[1] = {**value, "comm": "toolong"}


def test_flat_lookups_decode_from_the_lookup_buffer_and_keep_nothing_of_it(types: Types
                                                                           ) -> None:
    """A flat value is decoded straight from the lookup's (reused) buffer: each value is its
    own, a later lookup changes none before it, a missing key is the caller's KeyError, and
    flags take the checked path."""
    c = types["struct tagged"]
    with Map.create(MapType.HASH, 4, c.size, 8) as m:
        view = TypedMap(m, key_type=types["__u32"], value_type=c)
        assert view._lookup_decoded is not None
        values = {k: {"port": k, "comm": f"c{k}", "st": 3 * (k % 2), "on": k % 2 == 1,
                      "r": {"a": k, "b": 2 * k, "c": 3, "d": 4, "e": [k] * 5}}
                  for k in range(1, 6)}
        for k, v in values.items():
            view[k] = v
        got = [view.lookup(k) for k in values]
        again = [view[k] for k in reversed(values)]
        assert got == list(values.values()) and again == got[::-1]
        assert got[0]["comm"] == "c1" and type(got[0]["comm"]) is str
        with pytest.raises(KeyError) as missing:
            view.lookup(99)
        assert missing.value.args == (99,)
        assert view.get(99, "none") == "none"
        with pytest.raises(TypeError):
            view.lookup(1, 0.0)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="-1 does not fit unsigned int"):
            view.lookup(-1)  # not a __u32: the codec's error, before any lookup


def test_per_cpu_values_of_a_flat_type(types: Types) -> None:
    with Map.create(MapType.PERCPU_ARRAY, 4, 64, 1) as m:
        view = TypedMap(m, key_type=types["__u32"], value_type=types["struct rec"])
        value = {"a": 1, "b": 2, "c": 3, "d": 4, "e": [0] * 5}
        view[0] = value  # one value for every CPU
        per_cpu = view[0]
        assert isinstance(per_cpu, list) and per_cpu and all(v == value for v in per_cpu)


def test_bpf_written_flat_key_decodes(obj: Object) -> None:
    table = TypedMap(obj.maps["table"])
    assert table.key is not None and table.key.flat is not None  # struct flow_key
    assert table.value.flat is None  # struct all: bitfields and unions
    assert table.keys() == [{"id": 42, "port": 8080, "comm": "bash"}]
    raw_key = obj.maps["table"].keys()[0]
    assert table.key.encode({"id": 42, "port": 8080, "comm": "bash"}) == raw_key


def test_ring_records_export_to_numpy_with_the_type_dtype(obj: Object) -> None:
    pytest.importorskip("numpy")
    btf = btf_of(obj)
    dtype = numpy_dtype(btf, "struct all")
    events = decoder(obj, "struct all")
    with RingBuffer(obj.maps["records"]) as rb:
        batch = rb.read_batch()
        rows = batch.to_numpy(dtype)
        decoded = [events(data) for data in batch]
    assert len(rows) == len(decoded) == 1
    for row, value in zip(rows, decoded, strict=True):
        for name in ("u8", "s8", "u64", "s64", "flag", "arr", "f", "d"):
            got = row[name].tolist()
            assert got == value[name], name
        assert row["name"] == value["name"].encode() and row["inner"]["a"] == 7
        assert row["color"] == int(value["color"])
    assert codec(btf, "struct flow_key").flat is not None
