"""Map: element operations, flags, per-CPU values, batches, dict behaviour and standalone maps,
checked against the kernel (bpftool) and against values a BPF program wrote."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import pylibbpf
from pylibbpf import (
    BpfError,
    ClosedError,
    Map,
    MapType,
    Object,
    ObjectMap,
    StandaloneMap,
    StateError,
    UpdateFlags,
    lowlevel,
)
from tests.support.attach import autoload_only
from tests.support.bpfbuild import compile_bpf

pytestmark = pytest.mark.kernel

NCPU = pylibbpf.num_possible_cpus()


def u32(v: int) -> bytes:
    return v.to_bytes(4, "little")


def u64(v: int) -> bytes:
    return v.to_bytes(8, "little")


@pytest.fixture
def hash_map() -> Iterator[Map]:
    with Map.create(MapType.HASH, 4, 8, 16, name="t_hash") as m:
        yield m


@pytest.fixture
def array_map() -> Iterator[Map]:
    with Map.create(MapType.ARRAY, 4, 8, 8, name="t_array") as m:
        yield m


@pytest.fixture
def loaded(counters: Object, request: pytest.FixtureRequest) -> Object:
    """counters.bpf.c with its two tracepoint programs only (the test needs "tracepoint")."""
    autoload_only(counters, ["count_getpid", "count_getppid"], request)
    counters.rodata["target_pid"] = os.getpid()
    counters.load()
    return counters


def bpftool_dump(m: Map) -> dict[bytes, bytes]:
    out = subprocess.run(["bpftool", "-j", "map", "dump", "id", str(m.info().id)],
                         capture_output=True, text=True, check=True)
    entries = json.loads(out.stdout)
    result = {}
    for entry in entries:
        key = bytes(int(b, 16) for b in entry["key"])
        if "value" in entry:
            result[key] = bytes(int(b, 16) for b in entry["value"])
        else:  # per-CPU: a list of {"cpu": n, "value": [...]}
            result[key] = b"".join(bytes(int(b, 16) for b in v["value"])
                                   for v in entry["values"])
    return result


def test_create_reports_its_shape(hash_map: Map) -> None:
    assert (hash_map.type, hash_map.key_size, hash_map.value_size, hash_map.max_entries) == (
        MapType.HASH, 4, 8, 16)
    assert hash_map.name == "t_hash"
    assert hash_map.fd > 2
    info = hash_map.info()
    assert (info.name, info.key_size, info.value_size) == ("t_hash", 4, 8)


def test_lookup_update_delete_roundtrip(hash_map: Map) -> None:
    hash_map.update(u32(1), u64(10))
    hash_map.update(2, 20)                       # ints are encoded to the exact size
    hash_map.update(ctypes.c_uint32(3), ctypes.c_uint64(30))
    hash_map[bytearray(u32(4))] = memoryview(u64(40))
    assert hash_map.lookup(1) == u64(10)
    assert hash_map[2] == u64(20)
    assert hash_map[u32(3)] == u64(30)
    assert hash_map.get(4) == u64(40)
    assert hash_map.get(5, b"none") == b"none"
    assert 4 in hash_map and 5 not in hash_map
    hash_map.delete(1)
    del hash_map[2]
    assert 1 not in hash_map and 2 not in hash_map
    with pytest.raises(KeyError):
        hash_map.lookup(1)
    with pytest.raises(KeyError):
        del hash_map[1]
    assert bpftool_dump(hash_map) == {u32(3): u64(30), u32(4): u64(40)}


def test_update_flags(hash_map: Map) -> None:
    hash_map.update(1, 1, UpdateFlags.NOEXIST)
    with pytest.raises(BpfError) as info:
        hash_map.update(1, 2, UpdateFlags.NOEXIST)
    assert info.value.errno == errno.EEXIST
    hash_map.update(1, 3, UpdateFlags.EXIST)
    assert hash_map[1] == u64(3)
    with pytest.raises(BpfError) as info:
        hash_map.update(2, 3, UpdateFlags.EXIST)
    assert info.value.errno == errno.ENOENT
    assert "update in map 't_hash' failed" in str(info.value)


def test_full_hash_map_gives_e2big(hash_map: Map) -> None:
    for k in range(16):
        hash_map[k] = k
    with pytest.raises(BpfError) as info:
        hash_map[99] = 1
    assert info.value.errno == errno.E2BIG
    assert len(hash_map) == 16


def test_wrong_sizes_are_refused_before_the_kernel(hash_map: Map) -> None:
    with pytest.raises(ValueError, match="key is 3 bytes; this map needs exactly 4"):
        hash_map.lookup(b"abc")
    with pytest.raises(ValueError, match="value is 4 bytes"):
        hash_map.update(1, u32(1))
    with pytest.raises(ValueError, match="does not fit in 4 bytes"):
        hash_map.update(1 << 40, 1)
    with pytest.raises(TypeError, match="bytes-like"):
        hash_map.lookup("1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        hash_map.update(1, ctypes.c_uint32(5))
    assert len(hash_map) == 0


def test_array_semantics(array_map: Map) -> None:
    assert array_map[7] == u64(0)
    array_map[7] = 77
    with pytest.raises(BpfError) as info:
        array_map[8] = 1
    assert info.value.errno == errno.E2BIG
    with pytest.raises(BpfError) as info:
        del array_map[0]
    assert info.value.errno == errno.EINVAL
    assert array_map.keys() == [u32(i) for i in range(8)]
    array_map.clear()
    assert array_map.values() == [u64(0)] * 8


def test_get_next_key_walks_every_key(hash_map: Map) -> None:
    for k in (5, 6, 7):
        hash_map[k] = k
    seen = []
    key = hash_map.get_next_key()
    while key is not None:
        seen.append(key)
        key = hash_map.get_next_key(key)
    assert sorted(seen) == [u32(5), u32(6), u32(7)]


def test_iteration_tolerates_deletion(hash_map: Map) -> None:
    for k in range(10):
        hash_map[k] = k
    visited = []
    for key in hash_map:
        visited.append(key)
        del hash_map[key]
    assert sorted(visited) == [u32(k) for k in range(10)]
    assert len(hash_map) == 0
    for k in range(10):
        hash_map[k] = k
    pairs = hash_map.items()
    for key, _value in pairs[::2]:
        del hash_map[key]
    assert len(hash_map.items()) == 5


def test_dict_views_match_bpftool(hash_map: Map) -> None:
    for k in range(12):
        hash_map[k] = k * k
    expected = {u32(k): u64(k * k) for k in range(12)}
    assert dict(hash_map.items()) == expected
    assert sorted(hash_map.keys()) == sorted(expected)
    assert sorted(hash_map.values()) == sorted(expected.values())
    assert bpftool_dump(hash_map) == expected
    hash_map.clear()
    assert hash_map.items() == []


def test_items_falls_back_to_get_next_key(hash_map: Map, monkeypatch: pytest.MonkeyPatch) -> None:
    for k in range(12):
        hash_map[k] = k
    batched = dict(hash_map.items())
    monkeypatch.setattr(hash_map, "_no_batch", True)
    assert dict(hash_map.items()) == batched


def test_batch_operations(hash_map: Map) -> None:
    keys = [u32(k) for k in range(16)]
    assert hash_map.update_batch(keys, [u64(k) for k in range(16)]) == 16
    assert dict(hash_map.lookup_batch(batch_size=4)) == {u32(k): u64(k) for k in range(16)}
    assert hash_map.delete_batch(keys[:6]) == 6
    with pytest.raises(KeyError):
        hash_map.delete_batch([u32(0)])
    drained = dict(hash_map.lookup_and_delete_batch())
    assert drained == {u32(k): u64(k) for k in range(6, 16)}
    assert len(hash_map) == 0
    with pytest.raises(ValueError, match="2 keys but 1 values"):
        hash_map.update_batch([1, 2], [1])


def test_large_map_dump_by_batch_equals_walk() -> None:
    with Map.create(MapType.HASH, 8, 8, 20000, name="big") as m:
        keys = [u64(k * 7919) for k in range(20000)]
        m.update_batch(keys, [u64(k) for k in range(20000)])
        batched = dict(m.items())
        walked = {k: m[k] for k in m._walk_keys()}
        assert len(batched) == 20000
        assert batched == walked


def test_lookup_and_delete_on_queue() -> None:
    with Map.create(MapType.QUEUE, 0, 4, 8, name="q") as q:
        for v in (1, 2, 3):
            q.update(None, u32(v))
        assert [q.lookup_and_delete() for _ in range(3)] == [u32(1), u32(2), u32(3)]
        with pytest.raises(KeyError):
            q.lookup_and_delete()
        with pytest.raises(TypeError, match="has no keys"):
            q.keys()


@pytest.mark.needs("hash_lookup_and_delete")
def test_lookup_and_delete_on_hash(hash_map: Map) -> None:
    hash_map[3] = 33
    assert hash_map.lookup_and_delete(3) == u64(33)
    assert 3 not in hash_map


@pytest.mark.needs("tracepoint")
def test_percpu_values_from_bpf(loaded: Object) -> None:
    with loaded.programs["count_getpid"].attach():
        for _ in range(40):
            os.getpid()
    per_cpu = loaded.maps["percpu"][0]
    assert isinstance(per_cpu, list) and len(per_cpu) == NCPU
    assert sum(int.from_bytes(v, "little") for v in per_cpu) == 40
    dump = bpftool_dump(loaded.maps["percpu"])
    assert dump[u32(0)] == b"".join(per_cpu)


def test_percpu_update_forms() -> None:
    with Map.create(MapType.PERCPU_HASH, 4, 4, 8, name="pch") as m:
        m[1] = [u32(c + 1) for c in range(NCPU)]
        assert m[1] == [u32(c + 1) for c in range(NCPU)]
        m[2] = 9                           # one value for every CPU
        assert m[2] == [u32(9)] * NCPU
        with pytest.raises(ValueError, match=f"needs {NCPU} values"):
            m[3] = [1] * (NCPU + 1)
        assert dict(m.items()) == {u32(1): [u32(c + 1) for c in range(NCPU)],
                                    u32(2): [u32(9)] * NCPU}
        expected_dump = u32(9) * NCPU  # bpftool shows value_size bytes per CPU
        assert bpftool_dump(m)[u32(2)] == expected_dump


def test_lru_evicts_instead_of_failing() -> None:
    with Map.create(MapType.LRU_HASH, 8, 8, 64, name="lru") as m:
        for k in range(1000):
            m[k] = k
        assert 0 < len(m) <= 64 + NCPU * 64
        assert 999 in m


@pytest.mark.needs("tracepoint")
def test_counts_written_by_bpf(loaded: Object) -> None:
    with loaded.programs["count_getpid"].attach(), loaded.programs["count_getppid"].attach():
        for _ in range(123):
            os.getpid()
        for _ in range(45):
            os.getppid()
    counts = loaded.maps["counts"]
    assert int.from_bytes(counts[0], "little") == 123
    assert int.from_bytes(counts[1], "little") == 45
    assert loaded.maps["by_pid"][os.getpid()] == u64(123)


def test_object_map_before_load_has_no_fd() -> None:
    with Object.open_file(compile_bpf("counters.bpf.c")) as obj:
        with pytest.raises(StateError, match="before load"):
            obj.maps["counts"].lookup(0)
        with pytest.raises(StateError, match="before load"):
            _ = obj.maps["counts"].fd


def test_both_kinds_of_map_are_maps(hash_map: Map, counters: Object) -> None:
    assert isinstance(hash_map, StandaloneMap) and isinstance(hash_map, Map)
    assert not isinstance(hash_map, ObjectMap)
    counts = counters.maps["counts"]
    assert isinstance(counts, ObjectMap) and isinstance(counts, Map)
    assert counters.find_map_by_name("counts") is counts
    assert hash_map.object is None and counts.object is counters
    assert not hash_map.is_internal and counters.find_map_by_name(".bss").is_internal
    assert repr(hash_map).startswith("<Map 't_hash' HASH")
    for setter in ("set_max_entries", "set_type", "reuse_fd", "set_initial_value"):
        assert hasattr(counts, setter) and not hasattr(hash_map, setter)
    for getter in ("pin_path", "numa_node", "initial_value", "inner_map", "autocreate"):
        assert hasattr(ObjectMap, getter) and not hasattr(StandaloneMap, getter)


def test_object_map_setters_before_load_only(counters: Object) -> None:
    counts = counters.maps["counts"]
    counts.set_max_entries(8)
    assert counts.max_entries == 8
    with pytest.raises(StateError, match="before load"):
        counts.lookup(0)
    counters.load()
    assert counts[7] == u64(0)  # the new capacity
    with pytest.raises(StateError, match="only be changed before load"):
        counts.set_max_entries(16)
    counters.close()
    assert counts.closed
    with pytest.raises(ClosedError):
        counts.lookup(0)  # the object's close dropped the map's cached fd


def test_standalone_map_describes_itself_from_the_kernel() -> None:
    with Map.create(MapType.QUEUE, 0, 4, 16) as queue:
        info = queue.info()
        assert (queue.map_extra, queue.btf_key_type_id, queue.btf_value_type_id) == (
            info.map_extra, info.btf_key_type_id, info.btf_value_type_id)
        assert queue.flags == queue.map_flags == info.map_flags
        queue.update(None, 7)
        with pytest.raises(ValueError, match="has no keys"):
            queue.get_next_key()
        with pytest.raises(ValueError, match="has no keys"):
            queue.update(1, 7)
        assert queue.lookup_and_delete() == u32(7)
    with pytest.raises(ClosedError):
        _ = queue.max_entries


def test_map_and_lowlevel_apply_the_same_rules(hash_map: Map) -> None:
    fd = hash_map.fd
    short_key, big_value = "key is 3 bytes; this map needs exactly 4", "does not fit in 8 bytes"
    checks: list[tuple[Callable[[], object], str]] = [
        (lambda: hash_map.update(b"abc", 1), short_key),
        (lambda: lowlevel.map_update_elem(fd, b"abc", 1), short_key),
        (lambda: hash_map.update(1, 2**64), big_value),
        (lambda: lowlevel.map_update_elem(fd, 1, 2**64), big_value),
    ]
    for call, message in checks:
        with pytest.raises(ValueError, match=message):
            call()
    with pytest.raises(BpfError, match="update in map 't_hash' failed"):
        hash_map.update(1, 1, UpdateFlags.EXIST)
    with pytest.raises(BpfError, match=f"update in map fd {fd} failed"):
        lowlevel.map_update_elem(fd, 1, 1, UpdateFlags.EXIST)
    lowlevel.map_update_elem(fd, 1, 5)
    assert hash_map[1] == lowlevel.map_lookup_elem(fd, 1) == u64(5)
    assert hash_map.get_next_key() == lowlevel.map_get_next_key(fd) == u32(1)
    with Map.create(MapType.PERCPU_ARRAY, 4, 4, 1) as percpu:
        slot = 8  # each CPU's 4-byte value in an 8-byte slot
        percpu[0] = list(range(NCPU))
        raw = lowlevel.map_lookup_elem(percpu.fd, 0)
        assert len(raw) == lowlevel.map_layout(percpu.fd).value_bytes == slot * NCPU
        assert percpu[0] == [raw[i:i + 4] for i in range(0, len(raw), slot)]


def test_standalone_from_id_fd_pinned(hash_map: Map) -> None:
    hash_map[1] = 11
    map_id = hash_map.info().id
    with Map.from_id(map_id) as again:
        assert again[1] == u64(11)
        assert again.name == "t_hash" and again.type == MapType.HASH
    with Map.from_fd(hash_map.fd) as dup:
        assert dup.fd != hash_map.fd
        assert dup[1] == u64(11)
    assert hash_map[1] == u64(11)  # closing the duplicate left the original open
    pin = Path("/sys/fs/bpf") / f"pylibbpf-map-{os.getpid()}"
    hash_map.pin(pin)
    try:
        with Map.from_pinned(pin) as pinned:
            assert pinned[1] == u64(11)
    finally:
        hash_map.unpin(pin)
    assert not pin.exists()
    with pytest.raises(BpfError) as info:
        Map.from_pinned(pin)
    assert info.value.errno == errno.ENOENT
    with pytest.raises(BpfError):
        Map.from_fd(987654)


def test_freeze_makes_user_space_read_only(array_map: Map) -> None:
    array_map[0] = 5
    array_map.freeze()
    assert array_map[0] == u64(5)
    with pytest.raises(BpfError) as info:
        array_map[0] = 6
    assert info.value.errno == errno.EPERM


def test_create_errors_have_context() -> None:
    with pytest.raises(BpfError, match=r"failed to create ARRAY map 'bad' \(key 8") as info:
        Map.create(MapType.ARRAY, 8, 8, 4, name="bad")
    assert info.value.errno == errno.EINVAL


def test_loaded_maps_lists_ours(hash_map: Map) -> None:
    ids = {m.id for m in pylibbpf.loaded_maps()}
    assert hash_map.info().id in ids
    assert hash_map.info().id in set(pylibbpf.map_ids())
