"""``Map.to_numpy()``: every entry as NumPy arrays, equal to ``items()`` for every map kind the
batch dump covers (and the maps it walks instead), on maps a BPF program wrote."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from pylibbpf import ClosedError, Map, MapArrays, MapType, Object
from pylibbpf.maps import _bulk
from tests.support.bpfbuild import compile_bpf

np = pytest.importorskip("numpy")
pytestmark = pytest.mark.kernel


def rows(arrays: MapArrays) -> list[tuple[bytes, Any]]:
    """The arrays as ``items()`` gives the entries: raw bytes, per-CPU values as lists."""
    keys, values = arrays
    if values.ndim == 2:
        return [(k.tobytes(), [cpu.tobytes() for cpu in v]) for k, v in zip(keys, values,
                                                                              strict=True)]
    return [(k.tobytes(), v.tobytes()) for k, v in zip(keys, values, strict=True)]


def fill(m: Map, keys: range, value_size: int) -> None:
    ncpu = len(m.lookup(0)) if m.type == MapType.PERCPU_ARRAY else 0
    for k in keys:
        value = ((k * 2654435761) % (1 << 8 * value_size)).to_bytes(value_size, "little")
        if m.type in (MapType.PERCPU_HASH, MapType.PERCPU_ARRAY):
            ncpu = ncpu or 2
            m.update(k, [bytes([c + 1]) + value[1:] for c in range(ncpu)]
                     if m.type == MapType.PERCPU_ARRAY else value)
        else:
            m.update(k, value)


@pytest.mark.parametrize("value_size", [4, 8, 12])
@pytest.mark.parametrize("kind", [MapType.HASH, MapType.ARRAY, MapType.PERCPU_HASH,
                                  MapType.PERCPU_ARRAY, MapType.LRU_HASH])
def test_equals_items(kind: MapType, value_size: int) -> None:
    with Map.create(kind, 4, value_size, 3000) as m:
        empty = m.to_numpy()
        assert rows(empty) == m.items()
        fill(m, range(0, 3000, 2), value_size)
        if kind in (MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH):
            for k in range(0, 3000, 6):
                m.delete(k)
        arrays = m.to_numpy()
        items = m.items()
        assert len(arrays) == len(items) == (3000 if kind in (
            MapType.ARRAY, MapType.PERCPU_ARRAY) else 1000)
        assert sorted(rows(arrays)) == sorted(items)
        assert items == [(k, m.lookup(k)) for k, _v in items]  # the batch cut matches lookups
        # without BTF: raw bytes of the sizes
        assert arrays.keys.dtype == np.dtype((np.void, 4))
        assert arrays.values.dtype == np.dtype((np.void, value_size))
        if kind in (MapType.PERCPU_HASH, MapType.PERCPU_ARRAY):
            assert arrays.values.shape[1] == len(items[0][1])


def test_empty_map_and_dtypes() -> None:
    with Map.create(MapType.HASH, 4, 8, 100) as m:
        keys, values = m.to_numpy(np.uint32, np.uint64)
        assert keys.shape == values.shape == (0,)
        assert keys.dtype == np.uint32 and values.dtype == np.uint64
        m.update_batch(list(range(10)), [k * k for k in range(10)])
        arrays = m.to_numpy("u4", "u8")
        assert dict(zip(arrays.keys.tolist(), arrays.values.tolist(), strict=True)) == {
            k: k * k for k in range(10)}
        with pytest.raises(ValueError, match="key_dtype uint16 is 2 bytes"):
            m.to_numpy(np.uint16)
        with pytest.raises(ValueError, match="8-byte values"):
            m.to_numpy(value_dtype=np.uint32)


def test_falls_back_to_walking_the_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    with Map.create(MapType.PERCPU_HASH, 4, 4, 64) as m:
        for k in range(20):
            m.update(k, k + 1000)
        batched = m.to_numpy()
        monkeypatch.setattr(_bulk, "_BATCH_TYPES", frozenset())
        walked = m.to_numpy()
        assert sorted(rows(walked)) == sorted(rows(batched)) == sorted(m.items())
        assert walked.values.shape == batched.values.shape


def test_large_map_over_several_growths() -> None:
    # a full map: one call asks for everything and sees the end of the map in the same call
    n = 50_000
    with Map.create(MapType.HASH, 4, 8, n) as m:
        m.update_batch(list(range(n)), list(range(n, 2 * n)))
        keys, values = m.to_numpy("u4", "u8")
        assert len(keys) == n
        assert np.array_equal(np.sort(keys), np.arange(n, dtype=np.uint32))
        assert np.array_equal(values.astype(np.int64) - keys.astype(np.int64),
                              np.full(n, n, dtype=np.int64))


def test_buffers_grow_past_their_first_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from pylibbpf import _args

    n = 20_000
    with Map.create(MapType.PERCPU_HASH, 4, 4, n) as m:
        m.update_batch(list(range(n)), list(range(n)))  # one value for every CPU
        expected = sorted(m.items())
        monkeypatch.setattr(_args, "MAX_BUFFER", 4096)  # room for a few hundred entries
        arrays = m.to_numpy()
        assert len(arrays) == n
        assert sorted(rows(arrays)) == expected


def test_closed_map() -> None:
    m = Map.create(MapType.HASH, 4, 8, 4)
    m.close()
    with pytest.raises(ClosedError):
        m.to_numpy()


def test_without_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "numpy", None)
    with Map.create(MapType.HASH, 4, 8, 4) as m, pytest.raises(ImportError, match="NumPy"):
        m.to_numpy()


@pytest.fixture
def written() -> Iterator[Object]:
    """``map_memory.bpf.c`` loaded, its program run on a few slots."""
    with Object.open_file(compile_bpf("map_memory.bpf.c")) as obj:
        obj.load()
        prog = obj.programs["count_slot"]
        for slot in (1, 5, 5, 900, 1023, 5):
            prog.test_run(slot.to_bytes(4, sys.byteorder) + bytes(60))
        yield obj


@pytest.mark.needs("xdp")
def test_btf_dtypes_of_maps_a_program_wrote(written: Object) -> None:
    stats = written.maps["stats"]
    arrays = stats.to_numpy()
    assert arrays.keys.dtype == np.dtype("=u4")
    assert arrays.values.dtype.names == ("count", "last", "cpu", "flag")
    assert arrays.values.dtype.itemsize == stats.value_size
    got = {int(k): (int(v["count"]), int(v["last"]), int(v["flag"]))
           for k, v in zip(arrays.keys, arrays.values, strict=True)}
    assert got == {1: (1, 1, 1), 5: (3, 5, 1), 900: (1, 900, 1), 1023: (1, 1023, 1)}
    typed = dict(stats.typed().items())
    assert {k: (v["count"], v["last"], v["flag"]) for k, v in typed.items()} == got

    per_cpu = written.maps["per_cpu"]
    keys, values = per_cpu.to_numpy()
    assert values.dtype == np.dtype("=u4") and values.ndim == 2
    assert dict(zip(keys.tolist(), values.sum(axis=1).tolist(), strict=True)) == {
        1: 1, 5: 3, 900: 1, 1023: 1}
    assert sorted(rows(per_cpu.to_numpy("V4", "V4"))) == sorted(per_cpu.items())

    hist = written.maps["hist"]
    keys, values = hist.to_numpy()
    assert keys.tolist() == list(range(1024))
    assert values.tolist() == [int.from_bytes(hist.lookup(i), sys.byteorder)
                               for i in range(1024)]
    assert np.array_equal(values, hist.memory(np.uint64))


@pytest.mark.needs("xdp")
def test_standalone_maps_read_their_btf_from_the_kernel(written: Object) -> None:
    """A map opened by id (or pin, or fd) has the BTF it was created with in the kernel:
    ``Map.btf`` reads it by the map's btf_id, and ``to_numpy()``/``typed()`` use it as they
    use an object's."""
    stats = written.maps["stats"]
    with Map.from_id(stats.info().id) as by_id:
        assert by_id.object is None
        btf = by_id.btf
        assert btf is not None and by_id.btf is btf  # read once
        assert btf.type_by_id(by_id.btf_value_type_id).name == "slot_stat"
        arrays, own = by_id.to_numpy(), stats.to_numpy()
        assert arrays.values.dtype == own.values.dtype
        assert arrays.values.dtype.names == ("count", "last", "cpu", "flag")
        assert sorted(rows(arrays)) == sorted(rows(own)) == sorted(stats.items())
        assert dict(by_id.typed().items()) == dict(stats.typed().items())
    with Map.create(MapType.HASH, 4, 8, 4) as bare:
        assert bare.btf is None  # created without BTF
        assert bare.to_numpy().values.dtype == np.dtype((np.void, 8))
        with pytest.raises(ValueError, match="no BTF value type"):
            bare.typed()
        bare.close()
        with pytest.raises(ClosedError):
            _ = bare.btf
