"""The element calls' fast path (a bound map, no flags): int keys and values packed inline, per-CPU
values packed and split through one layout, per-map output buffers shared safely between threads.

Every value written through the fast path is read back through paths that do not use it (the
low-level calls on the fd, which run the checked path with libbpf's argtyped functions, and
batch ``items()``), and the other way round, so the two encodings are compared byte for byte
against what the kernel stored.
"""

from __future__ import annotations

import errno
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import pylibbpf
from pylibbpf import BpfError, ClosedError, Map, MapType, UpdateFlags, lowlevel

pytestmark = pytest.mark.kernel

NCPU = pylibbpf.num_possible_cpus()
ORDER = sys.byteorder


def raw(value: int, size: int) -> bytes:
    """How the kernel should hold ``value`` in ``size`` bytes (two's complement if negative)."""
    return value.to_bytes(size, ORDER, signed=value < 0)


def stored(m: Map, key: bytes) -> bytes:
    """The value at ``key`` read on the fd by the low-level (checked) path."""
    return lowlevel.map_lookup_elem(m.fd, key)


@pytest.fixture
def u32_hash() -> Iterator[Map]:
    with Map.create(MapType.HASH, 4, 8, 64, name="fast_hash") as m:
        yield m


# ------------------------------------------------------------------------------------- int keys

@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 16])
def test_int_keys_and_values_of_every_size(size: int) -> None:
    top = 2 ** (8 * size) - 1
    low = -(2 ** (8 * size - 1))
    # distinct bit patterns: top - 1, -1 and low are 0xfe.., 0xff.. and 0x80..
    numbers = sorted({0, 1, 2, 0x7F, top // 3, top - 1, -1, low})
    with Map.create(MapType.HASH, size, size, 64) as m:
        for i, number in enumerate(numbers):
            m.update(number, numbers[-1 - i])
        assert m._hot[0] is m._bound  # bound by the first call: the rest ran the fast path
        for i, number in enumerate(numbers):
            assert stored(m, raw(number, size)) == raw(numbers[-1 - i], size)
            assert m.lookup(number) == raw(numbers[-1 - i], size)
            assert m.lookup(raw(number, size)) == raw(numbers[-1 - i], size)
        assert dict(m.items()) == {raw(n, size): raw(numbers[-1 - i], size)
                                   for i, n in enumerate(numbers)}
        for number in numbers:
            m.delete(number)
            with pytest.raises(KeyError):
                m.lookup(number)
        assert dict(m.items()) == {}
        m.update(top, top)  # the largest unsigned number is -1's bit pattern
        assert m.lookup(-1) == raw(-1, size) == stored(m, raw(top, size))


@pytest.mark.parametrize("size", [1, 2, 4, 8, 3])
def test_int_out_of_range_is_a_value_error_naming_key_or_value(size: int) -> None:
    too_big, too_small = 2 ** (8 * size), -(2 ** (8 * size - 1)) - 1
    with Map.create(MapType.HASH, size, size, 8) as m:
        m.update(0, 0)  # bound: what follows runs on the fast path
        for bad in (too_big, too_small):
            with pytest.raises(ValueError, match=f"key {bad} does not fit in {size} bytes"):
                m.lookup(bad)
            with pytest.raises(ValueError, match="key"):
                m.update(bad, 1)
            with pytest.raises(ValueError, match="key"):
                m.delete(bad)
            with pytest.raises(ValueError, match=f"value {bad} does not fit in {size} bytes"):
                m.update(1, bad)
        assert dict(m.items()) == {bytes(size): bytes(size)}


def test_keys_of_the_wrong_size_or_type_never_reach_the_kernel(u32_hash: Map) -> None:
    u32_hash.update(1, 2)
    op: Any
    for op in (u32_hash.lookup, u32_hash.delete, lambda k: u32_hash.update(k, 1)):
        with pytest.raises(ValueError, match="exactly 4"):
            op(b"\0" * 3)
        with pytest.raises(ValueError, match="exactly 4"):
            op(b"\0" * 8)
        with pytest.raises(TypeError):
            op(1.0)
        with pytest.raises(TypeError):
            op("1")
    with pytest.raises(ValueError, match="exactly 8"):
        u32_hash.update(1, b"\1" * 4)
    with pytest.raises(TypeError):
        u32_hash.update(1, 2.0)  # type: ignore[arg-type]
    assert u32_hash.lookup(1) == raw(2, 8)


def test_other_key_kinds_still_work_on_a_bound_map(u32_hash: Map) -> None:
    import ctypes

    u32_hash.update(1, 10)
    u32_hash.update(True, 11)  # a bool is an int of its size
    assert u32_hash.lookup(1) == raw(11, 8)
    u32_hash.update(bytearray(raw(2, 4)), memoryview(raw(20, 8)))
    u32_hash.update(ctypes.c_uint32(3), ctypes.c_uint64(30))
    assert [u32_hash.lookup(k) for k in (2, 3)] == [raw(20, 8), raw(30, 8)]
    assert u32_hash.lookup(bytearray(raw(3, 4))) == raw(30, 8)


def test_missing_keys_raise_key_error_and_the_map_keeps_working(u32_hash: Map) -> None:
    u32_hash.update(5, 50)
    for _ in range(3):
        with pytest.raises(KeyError) as info:
            u32_hash.lookup(6)
        assert info.value.args == (6,)
        with pytest.raises(KeyError):
            u32_hash.delete(raw(6, 4))
    assert u32_hash.lookup(5) == raw(50, 8)
    with Map.create(MapType.ARRAY, 4, 8, 4) as array, pytest.raises(BpfError) as err:
        array.delete(0)  # arrays refuse deletes
    assert err.value.errno == errno.EINVAL


def test_flags_take_the_checked_path(u32_hash: Map) -> None:
    u32_hash.update(1, 1)
    with pytest.raises(BpfError) as err:
        u32_hash.update(1, 2, UpdateFlags.NOEXIST)
    assert err.value.errno == errno.EEXIST
    with pytest.raises(BpfError) as err:
        u32_hash.update(2, 2, UpdateFlags.EXIST)
    assert err.value.errno == errno.ENOENT
    u32_hash.update(1, 3, UpdateFlags.EXIST)
    u32_hash.update(2, 4, 0)
    u32_hash.update(3, 5, UpdateFlags.ANY)
    assert [stored(u32_hash, raw(k, 4)) for k in (1, 2, 3)] == [raw(v, 8) for v in (3, 4, 5)]
    with pytest.raises(ValueError):
        u32_hash.update(1, 1, -1)
    with pytest.raises(TypeError):
        u32_hash.update(1, 1, "0")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        u32_hash.lookup(1, "0")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        u32_hash.lookup(1, 2 ** 64)


def test_closed_map_raises_closed_error_after_the_fast_path_was_used() -> None:
    m = Map.create(MapType.HASH, 4, 8, 4)
    m.update(1, 1)
    assert m.lookup(1) == raw(1, 8)
    m.close()
    with pytest.raises(ClosedError):
        m.lookup(1)
    with pytest.raises(ClosedError):
        m.update(1, 2)
    with pytest.raises(ClosedError):
        m.delete(1)


def test_calls_keep_no_references(u32_hash: Map) -> None:
    key, value = raw(7, 4), raw(70, 8)
    number = 123_456_789
    before = sys.getrefcount(key), sys.getrefcount(value), sys.getrefcount(number)
    for _ in range(1000):
        u32_hash.update(key, value)
        u32_hash.lookup(key)
        u32_hash.update(number, number)
        u32_hash.lookup(number)
        u32_hash.delete(number)
    assert (sys.getrefcount(key), sys.getrefcount(value), sys.getrefcount(number)) == before


def test_keyless_maps_still_work() -> None:
    with Map.create(MapType.QUEUE, 0, 8, 4) as q:
        q.update(None, 5)
        q.update(None, raw(6, 8))
        assert q.lookup(None) == raw(5, 8)  # peek
        assert q.lookup_and_delete() == raw(5, 8)
        assert q.lookup_and_delete() == raw(6, 8)
        with pytest.raises(ValueError, match="no keys"):
            q.update(1, 5)


# ------------------------------------------------------------------------------------- per-CPU

@pytest.mark.parametrize("kind", [MapType.PERCPU_ARRAY, MapType.PERCPU_HASH])
@pytest.mark.parametrize("size", [1, 2, 4, 8, 3, 12])
def test_per_cpu_values_scalars_and_lists(kind: MapType, size: int) -> None:
    slot = (size + 7) & ~7
    with Map.create(kind, 4, size, 4) as m:
        m.update(0, 5)  # one scalar for every CPU
        assert m.lookup(0) == [raw(5, size)] * NCPU
        m.update(1, -2)
        assert m.lookup(raw(1, 4)) == [raw(-2, size)] * NCPU
        per = list(range(1, NCPU + 1))
        m.update(2, per)
        assert m.lookup(2) == [raw(v, size) for v in per]
        whole = b"".join(raw(v, size) + bytes(slot - size) for v in reversed(per))
        m.update(3, whole)  # the kernel's whole buffer
        assert m.lookup(3) == [raw(v, size) for v in reversed(per)]
        # the raw buffer on the fd (checked path): each CPU's slot padded to 8 bytes
        assert stored(m, raw(0, 4)) == (raw(5, size) + bytes(slot - size)) * NCPU
        assert stored(m, raw(2, 4)) == b"".join(raw(v, size) + bytes(slot - size)
                                                for v in per)
        with pytest.raises(ValueError, match=f"value {2 ** (8 * size)} does not fit"):
            m.update(0, 2 ** (8 * size))
        with pytest.raises(ValueError, match="one per possible CPU"):
            m.update(0, per + [1])
        with pytest.raises(ValueError):
            m.update(0, b"\0" * (slot * NCPU + 1))
        assert m.lookup(0) == [raw(5, size)] * NCPU


def test_per_cpu_values_a_program_wrote() -> None:
    """A per-CPU value written by libbpf's argtyped call reads back split per CPU."""
    with Map.create(MapType.PERCPU_ARRAY, 4, 8, 2) as m:
        m.lookup(0)
        lowlevel.map_update_elem(m.fd, raw(1, 4), b"".join(raw(c * 3, 8) for c in range(NCPU)))
        assert m.lookup(1) == [raw(c * 3, 8) for c in range(NCPU)]


# ------------------------------------------------------------------------------------- threads

def test_threads_hammering_one_map_with_their_own_keys() -> None:
    """Each thread writes and reads back its own keys: a value read by one thread is never
    another thread's (the output buffers are not shared while the GIL is released)."""
    threads, rounds, keys = 4, 300, 16
    failures: list[str] = []
    with Map.create(MapType.HASH, 4, 8, threads * keys) as m, \
            Map.create(MapType.PERCPU_ARRAY, 4, 8, threads * keys) as p:

        def work(t: int) -> None:
            try:
                for r in range(rounds):
                    for k in range(t * keys, (t + 1) * keys):
                        value = (t << 32) | (r << 8) | (k & 0xFF)
                        m.update(k, value)
                        p.update(k, value)
                        got = m.lookup(k)
                        if got != raw(value, 8):
                            failures.append(f"thread {t} key {k}: {got!r} != {value}")
                        if p.lookup(raw(k, 4)) != [raw(value, 8)] * NCPU:
                            failures.append(f"thread {t} per-CPU key {k}")
                    if r % 50 == 0:
                        m.delete(t * keys)
                        with pytest.raises(KeyError):
                            m.lookup(t * keys)
            except Exception as exc:  # noqa: BLE001 - reported below
                failures.append(f"thread {t}: {exc!r}")

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert failures == []
        last = rounds - 1
        assert dict(m.items()) == {raw(k, 4): raw((k // keys << 32) | (last << 8) | (k & 0xFF), 8)
                                   for k in range(threads * keys)}
