"""``Map.memory()``: an mmapable ARRAY and global data read and written as memory, checked
against the kernel's element calls on maps a BPF program wrote (``BPF_PROG_TEST_RUN``)."""

from __future__ import annotations

import errno
import sys
from collections.abc import Iterator

import pytest

from pylibbpf import (
    BpfError,
    ClosedError,
    Map,
    MapFlags,
    MapType,
    NotSupportedError,
    Object,
    StateError,
)
from tests.support.bpfbuild import compile_bpf

pytestmark = pytest.mark.kernel
SLOTS = 1024


@pytest.fixture
def hist_obj() -> Iterator[Object]:
    """``map_memory.bpf.c`` loaded."""
    with Object.open_file(compile_bpf("map_memory.bpf.c")) as obj:
        obj.load()
        yield obj


def count(obj: Object, slot: int, times: int = 1) -> None:
    """Run the program on a packet naming ``slot``, ``times`` times."""
    packet = slot.to_bytes(4, sys.byteorder) + bytes(60)
    obj.programs["count_slot"].test_run(packet, repeat=times if times > 1 else 0)


def as_int(raw: bytes) -> int:
    return int.from_bytes(raw, sys.byteorder)


@pytest.mark.needs("xdp")
def test_view_sees_what_the_program_wrote(hist_obj: Object) -> None:
    hist = hist_obj.maps["hist"]
    for slot, times in ((0, 1), (3, 5), (512, 2), (1023, 7), (3, 1)):
        count(hist_obj, slot, times)
    view = hist.memory()
    assert len(view) == SLOTS * 8 and not view.readonly
    slots = view.cast("Q").tolist()
    assert slots == [as_int(hist.lookup(i)) for i in range(SLOTS)]
    assert (slots[0], slots[3], slots[512], slots[1023], sum(slots)) == (1, 6, 2, 7, 16)
    count(hist_obj, 512)  # no re-read: the view is the map's memory
    assert view.cast("Q")[512] == 3 == as_int(hist.lookup(512))


@pytest.mark.needs("xdp")
def test_writes_through_the_view_reach_the_kernel(hist_obj: Object) -> None:
    hist = hist_obj.maps["hist"]
    slots = hist.memory().cast("Q")
    slots[10] = 1000
    assert as_int(hist.lookup(10)) == 1000
    count(hist_obj, 10)  # the program adds to what user space wrote
    assert slots[10] == 1001
    hist.update(11, 42)
    assert slots[11] == 42


@pytest.mark.needs("xdp")
def test_numpy_view(hist_obj: Object) -> None:
    np = pytest.importorskip("numpy")
    hist = hist_obj.maps["hist"]
    count(hist_obj, 7, 3)
    counts = hist.memory(np.uint64)
    assert counts.shape == (SLOTS,) and counts[7] == 3
    assert counts.tolist() == [as_int(hist.lookup(i)) for i in range(SLOTS)]
    counts[8] = 9
    assert as_int(hist.lookup(8)) == 9
    frozen = hist.memory(np.uint64, readonly=True)
    assert not frozen.flags.writeable and frozen[8] == 9
    with pytest.raises(ValueError, match="4 bytes"):
        hist.memory(np.uint32)


def test_standalone_mmapable_array_with_padded_slots() -> None:
    # 12-byte values lie in 16-byte slots
    with Map.create(MapType.ARRAY, 4, 12, 5, flags=MapFlags.MMAPABLE) as m:
        m.update(4, b"abcdefghijkl")
        view = m.memory()
        assert len(view) == 4 * 16 + 12
        assert bytes(view[64:76]) == b"abcdefghijkl"
        view[16:28] = b"x" * 12
        assert m.lookup(1) == b"x" * 12
        ro = m.memory(readonly=True)
        assert ro.readonly and bytes(ro[16:28]) == b"x" * 12


def test_maps_that_cannot_be_mapped(hist_obj: Object) -> None:
    with pytest.raises(NotSupportedError, match="BPF_F_MMAPABLE") as info:
        hist_obj.maps["plain"].memory()
    assert info.value.errno == errno.EINVAL
    with pytest.raises(NotSupportedError, match="it is HASH"):
        hist_obj.maps["stats"].memory()
    with Map.create(MapType.PERCPU_ARRAY, 4, 8, 4) as m, pytest.raises(NotSupportedError):
        m.memory()


def test_before_load_and_after_close() -> None:
    with Object.open_file(compile_bpf("map_memory.bpf.c")) as obj:
        with pytest.raises(StateError):
            obj.maps["hist"].memory()
    with pytest.raises(ClosedError):
        obj.maps["hist"].memory()
    m = Map.create(MapType.ARRAY, 4, 8, 4, flags=MapFlags.MMAPABLE)
    slots = m.memory().cast("Q")
    m.update(2, 5)
    m.close()
    with pytest.raises(ClosedError):
        m.memory()
    # a view taken before close keeps the (detached) map's memory mapped: never freed memory
    assert slots[2] == 5
    slots[2] = 6
    assert slots.tolist() == [0, 0, 6, 0]
    slots.release()


def test_closing_with_no_view_left_unmaps() -> None:
    m = Map.create(MapType.ARRAY, 4, 8, 4, flags=MapFlags.MMAPABLE)
    m.memory().release()
    assert m._mapping is not None
    regions = list(m._mapping._maps.values())
    m.close()
    assert regions and all(region.closed for region in regions)


@pytest.mark.needs("xdp")
def test_global_data(hist_obj: Object) -> None:
    count(hist_obj, 77, 4)
    bss = hist_obj.maps[hist_obj.bss.map.name]
    variables = hist_obj.bss.variables
    view = bss.memory()
    total = variables["total"]
    last = variables["last_slot"]
    assert as_int(bytes(view[total.offset:total.offset + 8])) == 4
    assert as_int(bytes(view[last.offset:last.offset + 4])) == 77
    assert hist_obj.bss.get_int("total") == 4
    view[total.offset:total.offset + 8] = (100).to_bytes(8, sys.byteorder)
    assert hist_obj.bss.get_int("total") == 100
    count(hist_obj, 1)
    assert as_int(bytes(view[total.offset:total.offset + 8])) == 101

    rodata = hist_obj.rodata.map
    ro = rodata.memory()  # frozen by libbpf: read-only
    assert ro.readonly
    weight = hist_obj.rodata.variables["weight"]
    assert as_int(bytes(ro[weight.offset:weight.offset + 8])) == 1
    with pytest.raises(BpfError, match="readonly=True") as info:
        rodata.memory(readonly=False)
    assert info.value.errno in (errno.EPERM, errno.EACCES)


def test_lathist_reads_its_histogram_from_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from examples.lathist.__main__ import MAX_ENTRIES, build_object, read_histograms

    with Object.open_file(build_object()) as obj:
        obj.programs["bpf_kprobe_start"].set_autoload(False)
        obj.programs["bpf_kprobe_end"].set_autoload(False)
        obj.load()
        lat = obj.maps["my_lat"]
        assert lat.flags & MapFlags.MMAPABLE
        for key, value in ((0, 3), (MAX_ENTRIES + 4, 9), (2 * MAX_ENTRIES - 1, -1)):
            lat.update(key, value)
        from_memory = read_histograms(lat, 2)
        calls: list[int] = []
        monkeypatch.setattr(type(lat), "memory", lambda *a, **k: calls.append(1))
        monkeypatch.setattr(type(lat), "flags", property(lambda self: 0))
        by_lookup = read_histograms(lat, 2)
        assert not calls
    assert from_memory == by_lookup
    assert from_memory[0][0] == 3 and from_memory[1][4] == 9 and from_memory[1][-1] == -1
