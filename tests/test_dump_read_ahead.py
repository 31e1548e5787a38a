"""Dumps that read ahead: a helper thread makes the next batch call while the caller cuts the
previous batch.  The result must be the same as reading alone (and as walking the keys), for
every batched map kind, and every way out (the end, a refusal, a bucket too large for a pair,
an error while cutting, no thread, one CPU) must leave no helper running.

The read-ahead sizes are made small here (batches of 64 entries) so that maps of a few
thousand entries take many batch calls, and read-ahead is tried whatever CPUs the process may
use (one CPU is a test of its own)."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pylibbpf
from pylibbpf import BpfError, Map, MapType
from pylibbpf.maps import _bulk
from tests.support.bpfbuild import compile_bpf

pytestmark = pytest.mark.kernel

NCPU = pylibbpf.num_possible_cpus()
CPUS_TO_SPARE = _bulk._cpus_to_spare  # the real rule, which small_batches replaces
HELPER = "pylibbpf-batch-read"
ENTRIES = 3000


def u32(v: int) -> bytes:
    return v.to_bytes(4, "little")


def u64(v: int) -> bytes:
    return v.to_bytes(8, "little")


def helpers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == HELPER]


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Read-ahead batches of 64 entries; yields the list of helpers started (None: could not
    start), and checks that none is left running."""
    monkeypatch.setattr(_bulk, "_AHEAD_BATCH", 64)
    monkeypatch.setattr(_bulk, "_AHEAD_MIN", 16)
    # read ahead even where this process may run on one CPU only (a CI machine of one CPU, a
    # cpuset): the helper then takes turns with the caller, which is all these tests need
    monkeypatch.setattr(_bulk, "_cpus_to_spare", lambda: True)
    started: list[Any] = []
    start = _bulk._ReadAhead.start

    def spy(cursor: Any, spare: Any, cap: int) -> Any:
        ahead = start(cursor, spare, cap)
        started.append(ahead)
        return ahead

    monkeypatch.setattr(_bulk._ReadAhead, "start", staticmethod(spy))
    yield started
    assert helpers() == []


@pytest.fixture
def filled_hash() -> Iterator[Map]:
    with Map.create(MapType.HASH, 4, 8, 4096, name="t_ahead") as m:
        keys = [k * 7919 for k in range(ENTRIES)]
        m.update_batch(keys, [k * 3 + 1 for k in keys])
        yield m


def walked(m: Map) -> dict[bytes, Any]:
    """The map's entries read key by key (no batch call)."""
    return {key: m.lookup(key) for key in m._walk_keys()}


def expected_hash() -> dict[bytes, bytes]:
    return {u32(k * 7919): u64(k * 7919 * 3 + 1) for k in range(ENTRIES)}


def on_helper(read: Callable[..., tuple[int, int]],
              when: Callable[[int, int], bool], rc: int) -> Callable[..., tuple[int, int]]:
    """BatchCursor.read that returns (rc, 0), reading nothing, for the helper's calls number
    ``calls`` with ``room`` where ``when(calls, room)``."""
    calls = [0]

    def fake(self: Any, keys: Any, values: Any, room: int) -> tuple[int, int]:
        if threading.current_thread().name == HELPER:
            calls[0] += 1
            if when(calls[0], room):
                return rc, 0
        return read(self, keys, values, room)

    return fake


def test_items_and_keys_read_ahead_and_equal_the_walk(filled_hash: Map,
                                                       small_batches: list[Any]) -> None:
    items = filled_hash.items()
    assert small_batches and small_batches[0] is not None
    assert len(items) == ENTRIES
    assert dict(items) == expected_hash() == walked(filled_hash)
    keys = filled_hash.keys()
    assert len(small_batches) == 2
    assert keys == [k for k, _v in items]  # the same order: the same calls
    assert filled_hash.values() == [v for _k, v in items]
    assert dict(filled_hash.lookup_batch(batch_size=50)) == expected_hash()
    assert len(small_batches) == 4


@pytest.mark.parametrize("kind", [MapType.PERCPU_HASH, MapType.LRU_HASH,
                                  MapType.LRU_PERCPU_HASH, MapType.ARRAY,
                                  MapType.PERCPU_ARRAY])
def test_every_batched_kind_reads_ahead_the_same(kind: MapType,
                                                 small_batches: list[Any]) -> None:
    percpu = kind in (MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH, MapType.PERCPU_ARRAY)
    with Map.create(kind, 4, 4, 1024, name="t_kind") as m:
        keys = list(range(0, 1000)) if kind in (MapType.ARRAY, MapType.PERCPU_ARRAY) else [
            k * 31 for k in range(1000)]
        for k in keys:  # one by one: Linux 5.10 has no batch updates of a PERCPU_ARRAY
            m.update(k, [k + c for c in range(NCPU)] if percpu else k)
        items = m.items()
        if m._no_batch:
            # the kernel refused batch lookups of this kind: items() walked the keys, alone
            assert small_batches == []
        else:
            assert small_batches and small_batches[-1] is not None
        assert dict(items) == walked(m)
        got = {int.from_bytes(k, "little"): v for k, v in items}
        for k in keys:
            want = [u32(k + c) for c in range(NCPU)] if percpu else u32(k)
            assert got[k] == want


def test_values_a_program_wrote_read_ahead(small_batches: list[Any]) -> None:
    # the kernel writes the entries: one per run of an XDP program (BPF_PROG_TEST_RUN)
    with pylibbpf.Object.open_file(compile_bpf("dump_fill.bpf.c")) as obj:
        obj.load()
        obj.programs["fill"].test_run(bytes(64), repeat=ENTRIES)
        big, per_cpu = obj.maps["big"], obj.maps["big_percpu"]
        items = big.items()
        assert small_batches and small_batches[-1] is not None
        assert dict(items) == expected_hash() == walked(big)
        per_cpu_items = dict(per_cpu.items())
        assert len(small_batches) == 2 and small_batches[-1] is not None
        assert per_cpu_items == walked(per_cpu)
        # every run was on one CPU: its slot has the value, the others are zero
        for key, value in expected_hash().items():
            slots = per_cpu_items[key]
            assert len(slots) == NCPU and sorted(slots)[-1] == value
            assert sum(int.from_bytes(s, "little") for s in slots) == int.from_bytes(value,
                                                                                     "little")


def test_a_bucket_too_large_for_a_pair_goes_on_alone(filled_hash: Map,
                                                      small_batches: list[Any],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # the helper's third call is refused with ENOSPC whatever its room (as for a bucket
    # larger than a read-ahead pair): the caller goes on alone, with all the room
    rooms: list[int] = []
    read = _bulk.BatchCursor.read

    def alone(self: Any, keys: Any, values: Any, room: int) -> tuple[int, int]:
        if threading.current_thread().name != HELPER:
            rooms.append(room)
        return read(self, keys, values, room)

    monkeypatch.setattr(_bulk.BatchCursor, "read", on_helper(alone, lambda calls, room: calls >= 3,
                                                             -errno.ENOSPC))
    assert dict(filled_hash.items()) == expected_hash()
    assert small_batches[0] is not None
    # the first call, then the rest alone from the largest pair the helper had (cap // 2)
    assert rooms[0] == 64 and rooms[1] == 2048


def test_a_refusal_on_the_helper_is_raised_to_the_caller(filled_hash: Map,
                                                         small_batches: list[Any],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_bulk.BatchCursor, "read", on_helper(
        _bulk.BatchCursor.read, lambda calls, room: calls == 4, -errno.EPERM))
    with pytest.raises(BpfError) as info:
        filled_hash.lookup_batch()
    assert info.value.errno == errno.EPERM
    assert small_batches[0] is not None


def test_an_exception_on_the_helper_is_raised_there(filled_hash: Map, small_batches: list[Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    read = _bulk.BatchCursor.read

    def failing(self: Any, keys: Any, values: Any, room: int) -> tuple[int, int]:
        if threading.current_thread().name == HELPER:
            raise MemoryError("no room")
        return read(self, keys, values, room)

    monkeypatch.setattr(_bulk.BatchCursor, "read", failing)
    with pytest.raises(MemoryError, match="no room"):
        filled_hash.items()


def test_an_error_while_cutting_stops_the_helper(filled_hash: Map, small_batches: list[Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pieces = _bulk._pieces
    cuts = [0]

    def failing(*args: Any) -> Any:
        cuts[0] += 1
        if cuts[0] == 5:
            raise MemoryError("cut")
        return pieces(*args)

    monkeypatch.setattr(_bulk, "_pieces", failing)
    with pytest.raises(MemoryError, match="cut"):
        filled_hash.items()
    assert small_batches[0] is not None
    monkeypatch.setattr(_bulk, "_pieces", pieces)
    assert dict(filled_hash.items()) == expected_hash()  # the map is untouched


def test_no_thread_reads_alone(filled_hash: Map, small_batches: list[Any],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    assert dict(filled_hash.items()) == expected_hash()
    assert small_batches == [None]


def test_one_cpu_reads_alone(filled_hash: Map, small_batches: list[Any],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_bulk, "_cpus_to_spare", CPUS_TO_SPARE)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert dict(filled_hash.items()) == expected_hash()
    assert small_batches == []


def test_drains_and_small_maps_read_alone(small_batches: list[Any]) -> None:
    with Map.create(MapType.HASH, 4, 8, 4096, name="t_drain") as m:
        m.update_batch(list(range(ENTRIES)), list(range(ENTRIES)))
        drained = m.lookup_and_delete_batch()
        assert len(drained) == ENTRIES and len(m) == 0
        assert small_batches == []
    with Map.create(MapType.HASH, 4, 8, 128, name="t_small") as m:  # not over 2 batches
        m.update_batch(list(range(100)), list(range(100)))
        assert len(m.items()) == 100
        assert small_batches == []
    with Map.create(MapType.HASH, 4, 8, 4096, name="t_tiny") as m:  # batches under the minimum
        m.update_batch(list(range(100)), list(range(100)))
        assert len(m.lookup_batch(batch_size=8)) == 100
        assert small_batches == []


def test_default_sizes_read_ahead_only_past_two_batches() -> None:
    # the real sizes: a map of 2 * _AHEAD_BATCH entries is read in one call, alone
    with Map.create(MapType.HASH, 4, 8, 2 * _bulk._AHEAD_BATCH, name="t_edge") as m:
        m.update_batch(list(range(1000)), list(range(1000)))
        assert len(m.items()) == 1000
    assert helpers() == []


def test_threads_dumping_at_once_each_get_the_whole_map(filled_hash: Map,
                                                        small_batches: list[Any]) -> None:
    results: list[dict[bytes, Any]] = []
    errors: list[BaseException] = []

    def dump() -> None:
        try:
            for _ in range(5):
                results.append(dict(filled_hash.items()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=dump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 20 and all(r == expected_hash() for r in results)
