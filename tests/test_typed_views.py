"""Typed views on a real object: records whose type is not in its BTF, every map operation
through TypedMap, and range-checked global writes."""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from pylibbpf import Map, MapType, Object, RingBuffer
from pylibbpf.elf.codec import FieldError
from pylibbpf.typed import TypedGlobals, TypedMap, Types, decoder, infer_event_type
from tests.support.bpfbuild import BPF_SRC, compile_bpf

pytestmark = pytest.mark.kernel

HEADER = BPF_SRC / "events_untyped.h"
SOURCE = "struct untyped_event { __u32 pid; __u32 args_size; char comm[16]; char args[64]; };"


class UntypedEvent(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint32), ("args_size", ctypes.c_uint32),
                ("comm", ctypes.c_char * 16), ("args", ctypes.c_char * 64)]


@pytest.fixture
def obj() -> Iterator[Object]:
    with Object.open_file(compile_bpf("events_untyped.bpf.c")) as o:
        yield o


def test_missing_type_hints_lead_somewhere(obj: Object) -> None:
    with pytest.raises(LookupError, match="30-byte records.*header=") as info:
        infer_event_type(obj, "rb")
    assert "name the type instead" not in str(info.value)
    with pytest.raises(KeyError, match="not in this BTF|no type") as missing:
        decoder(obj, "struct untyped_event")
    assert "header=" in str(missing.value) and "ctypes" in str(missing.value)


@pytest.mark.needs("ringbuf", "tracepoint")
@pytest.mark.parametrize("source", ["header", "c", "ctypes"])
def test_variable_length_events_from_other_type_sources(obj: Object, source: str) -> None:
    if source == "header":
        decode = decoder(obj, "struct untyped_event", header=HEADER,
                         cflags=["-D__u32=unsigned int"])
    elif source == "c":
        decode = decoder(obj, "struct untyped_event", source=SOURCE)
    else:
        decode = decoder(obj, UntypedEvent)
    assert decode.size == 88 and decode.min_size == 24
    obj.load()
    got: list[dict[str, Any]] = []

    def handle(event: Any) -> None:
        got.append(event)

    with RingBuffer(obj.maps["rb"], handle, decode=decode) as rb:
        with obj.programs["emit"].attach():
            os.getpid()
        rb.consume()
    mine = [e for e in got if e["pid"] == os.getpid()]
    assert mine and mine[0]["args_size"] == 6 and mine[0]["comm"]
    assert mine[0]["args"] == b"ab\0cd\0"  # the bytes sent: a 30-byte record of 88


@pytest.mark.needs("batch", "hash_lookup_and_delete")
def test_typed_map_offers_every_map_operation(obj: Object) -> None:
    obj.load()
    pairs = TypedMap(obj.maps["pairs"])
    one, two, three = ({"id": i, "tag": t} for i, t in ((1, "a"), (2, "bb"), (3, "ccc")))
    pairs[one] = {"calls": 10, "seen": True, "delta": -2}
    pairs.update(two, {"calls": 20})
    assert pairs[one] == {"calls": 10, "seen": True, "delta": -2}
    assert pairs.lookup(two) == {"calls": 20, "seen": False, "delta": 0}
    assert one in pairs and three not in pairs and len(pairs) == 2
    assert pairs.get(three, "absent") == "absent"
    with pytest.raises(KeyError) as info:
        pairs[three]
    assert info.value.args[0] == three
    first = pairs.get_next_key()
    assert first in (one, two) and pairs.get_next_key(first) in (one, two)
    assert sorted(k["id"] for k in pairs) == [1, 2] == sorted(k["id"] for k in pairs.keys())
    assert sorted(v["calls"] for v in pairs.values()) == [10, 20]
    assert pairs.update_batch([three, {"id": 4, "tag": ""}],
                              [{"calls": 30}, {"calls": 40, "seen": True}]) == 2
    assert dict((k["id"], v["calls"]) for k, v in pairs.lookup_batch()) == {
        1: 10, 2: 20, 3: 30, 4: 40}
    assert pairs.lookup_and_delete(three)["calls"] == 30
    with pytest.raises(KeyError) as batch_miss:
        pairs.delete_batch([two, three])
    assert batch_miss.value.args[0] == three
    assert sorted(k["id"] for k, _v in pairs.lookup_and_delete_batch()) == [1, 4]
    assert len(pairs) == 0
    pairs[one] = {"calls": 1}
    pairs.clear()
    assert pairs.items() == []
    with pytest.raises(FieldError, match=r"^seen: bool needs True or False"):
        pairs[one] = {"seen": 1}
    with pytest.raises(FieldError, match=r"^delta: 40000 does not fit"):
        pairs[one] = {"delta": 40000}
    with pytest.raises(ValueError, match="tag"):
        pairs[{"id": 1, "tag": "toolong"}] = {}


def test_typed_map_per_cpu_and_other_type_sources(obj: Object) -> None:
    obj.load()
    percpu = TypedMap(obj.maps["percpu"])
    percpu[7] = {"calls": 5}
    values = percpu[7]
    assert isinstance(values, list) and len(values) >= 1
    assert all(v == {"calls": 5, "seen": False, "delta": 0} for v in values)
    percpu[7] = [{"calls": i} for i in range(len(values))]
    assert [v["calls"] for v in percpu[7]] == list(range(len(values)))
    assert percpu.items() == [(7, percpu[7])]
    # key and value types from other sources than the map's BTF
    slots = TypedMap(obj.maps["slots"], key_type=ctypes.c_uint32,
                     value_type=Types.from_c("typedef __u64 counter_t;")["counter_t"])
    slots[1] = 99
    assert slots[1] == 99 and len(slots.items()) == 4
    slots.clear()
    assert slots.values() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="12 bytes"):
        TypedMap(obj.maps["slots"], value_type=Types.from_c("struct w { __u32 a[3]; };")[
            "struct w"])


def test_global_writes_are_range_checked(obj: Object) -> None:
    with pytest.raises(ValueError, match="'enabled' in .rodata .*bool needs True or False"):
        obj.rodata["enabled"] = 5
    with pytest.raises(ValueError, match="'small' in .rodata .*256 does not fit"):
        obj.rodata["small"] = 256
    obj.rodata["enabled"] = False
    assert obj.rodata["enabled"] == b"\0"
    obj.rodata["enabled"] = True
    obj.rodata["enabled"] = b"\x01"  # bytes stay raw
    glob = TypedGlobals(obj.rodata)
    with pytest.raises(ValueError, match="bool needs True or False"):
        glob["enabled"] = 1
    glob["small"] = 7
    assert glob["small"] == 7 and glob["enabled"] is True
    obj.bss["counter"] = -5
    assert TypedGlobals(obj.bss)["counter"] == -5
    with pytest.raises(ValueError, match="does not fit"):
        obj.bss["counter"] = 1 << 31


def test_stack_trace_maps_need_no_declared_types() -> None:
    """A STACK_TRACE map (declared by value_size, as libbpf-tools do; the kernel refuses BTF
    for it) reads as u32 stack ids -> lists of u64 instruction pointers."""
    with Map.create(MapType.STACK_TRACE, key_size=4, value_size=8 * 5, max_entries=8) as m:
        stacks = TypedMap(m)
        assert stacks.key is not None and stacks.key.name == "unsigned int"
        assert stacks.value.decode(b"".join(ip.to_bytes(8, sys.byteorder)
                                            for ip in (0xffffffff81000010, 2, 0, 0, 0))
                                   ) == [0xffffffff81000010, 2, 0, 0, 0]
        assert len(stacks) == 0
        with pytest.raises(KeyError):
            stacks[7]
