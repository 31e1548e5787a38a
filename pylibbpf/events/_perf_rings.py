"""The perf buffer's fast path: each CPU's perf ring read straight from its memory.

libbpf's ``perf_buffer__consume`` calls a C callback per sample; from Python that is a ctypes
trampoline per sample (a pointer object, a slice, one more Python frame).  Here each ring is
copied out in one slice and cut into records by Python code that does the per-record work in C
(list slicing, ``deque.extend``), so a callback costs about one Python call per sample.

The kernel's layout (``include/uapi/linux/perf_event.h``), the same libbpf reads:

* page 0 of the perf event's mapping is ``struct perf_event_mmap_page``: ``data_head`` (the
  ``u64`` at byte 1024) is written by the kernel, ``data_tail`` (the ``u64`` at byte 1032) by the
  reader, to give the space back;
* the data pages follow (``page_count`` pages, a power of two); records wrap around their end;
* a record starts with ``struct perf_event_header`` (``u32 type``, ``u16 misc``, ``u16 size``,
  ``size`` counting the header, a multiple of 8); a ``PERF_RECORD_SAMPLE`` of a BPF output event
  holds a ``u32`` raw size, then that many bytes (the data, padded: libbpf passes the padded size
  on, and so does this reader); a ``PERF_RECORD_LOST`` holds a ``u64`` id and the ``u64`` count
  of samples lost.

The reader loads ``data_head`` with acquire semantics and stores ``data_tail`` with release
semantics.  As for the ring buffer's batch path (``_batch``), plain loads and stores through
``mmap`` give exactly that on x86 (total store order) only; elsewhere :class:`PerfRings` refuses
(:class:`~pylibbpf.errors.NotSupportedError`) and the perf buffer uses libbpf's consumer.
"""

from __future__ import annotations

import functools
import mmap
import struct
from array import array
from collections.abc import Iterator, Sequence
from itertools import chain
from operator import itemgetter

from ._batch import EventBatch, _Repeat, _spacing
from ._common import require_ordered_memory

RECORD_LOST = 2
RECORD_SAMPLE = 9
_HEAD = 1024 // 8  # data_head, in u64 words of the control page
_TAIL = 1032 // 8  # data_tail
_RAW_OFFSET = 12   # the sample's data: after the 8-byte header and the u32 raw size


class PerfRing:
    """One CPU's perf ring, mapped a second time into this process (the mapping libbpf made
    is private to libbpf)."""

    __slots__ = ("cpu", "_map", "_control", "_page", "_end", "_mask")

    def __init__(self, fd: int, cpu: int, page_count: int) -> None:
        page = mmap.PAGESIZE
        size = page_count * page
        #: the CPU whose samples this ring holds
        self.cpu = cpu
        self._map = mmap.mmap(fd, page + size, mmap.MAP_SHARED,
                              mmap.PROT_READ | mmap.PROT_WRITE)
        self._control = memoryview(self._map)[:page].cast("Q")
        self._page = page
        self._end = page + size
        self._mask = size - 1

    def take(self) -> bytes:
        """Copy out every record the kernel published and give their space back (``b""`` when
        there are none)."""
        control = self._control
        head = control[_HEAD]  # acquire: x86 keeps the copy below after this load
        tail = control[_TAIL]
        if head == tail:
            return b""
        start = self._page + (tail & self._mask)
        stop = start + (head - tail)
        if stop <= self._end:
            chunk = self._map[start:stop]
        else:  # the records wrap around the end of the data pages
            chunk = self._map[start:self._end] + self._map[self._page:stop - self._end + self._page]
        control[_TAIL] = head  # release: x86 keeps this store after the copy
        return chunk

    def close(self) -> None:
        """Unmap the ring (libbpf's own mapping stays until ``perf_buffer__free``)."""
        if not self._map.closed:
            self._control.release()
            self._map.close()


#: a run of samples of one layout in a chunk: (byte offset of the first record, number of
#: records, record size, raw data size)
Run = tuple[int, int, int, int]


def cut(chunk: bytes) -> tuple[list[Run], int]:
    """The runs of samples in ``chunk`` (records back to back, as :meth:`PerfRing.take` returns
    them), in order, and the number of samples that ``PERF_RECORD_LOST`` records reported.

    A run of records with the same header (every sample of one struct) is checked as three
    strided views of the header words: no Python code runs per sample.
    """
    with memoryview(chunk) as whole, whole.cast("I") as words:
        return _cut(chunk, words)


def _cut(chunk: bytes, words: memoryview) -> tuple[list[Run], int]:
    runs: list[Run] = []
    lost = 0
    pos = 0
    total = len(chunk)
    while pos + 8 <= total:
        first = pos >> 2
        kind = words[first]
        second = words[first + 1]  # misc | size << 16
        size = second >> 16
        if size < 8 or size & 7 or pos + size > total:
            break  # not a record the kernel writes: stop rather than read garbage
        if kind == RECORD_SAMPLE and size >= _RAW_OFFSET:
            raw = words[first + 2]
            if _RAW_OFFSET + raw > size:
                break
            count = (total - pos) // size
            run = 1
            if count > 1:
                step = size >> 2
                stop = first + count * step
                run = min(_run(words[first:stop:step], kind),
                          _run(words[first + 1:stop:step], second),
                          _run(words[first + 2:stop:step], raw))
            runs.append((pos, run, size, raw))
            pos += run * size
            continue
        if kind == RECORD_LOST and size >= 24:
            lost += int.from_bytes(chunk[pos + 16:pos + 24], "little")
        pos += size  # other records (none for BPF output events): skipped, as libbpf does
    return runs, lost


def samples(chunk: bytes, runs: list[Run]) -> Iterator[bytes]:
    """The samples' data of ``runs`` in ``chunk`` as ``bytes``, in order: each run cut by one
    ``struct.Struct.iter_unpack`` (no Python code per sample)."""
    cuts = [map(_first, sample_layout(size, raw).iter_unpack(records(chunk, pos, count * size)))
            for pos, count, size, raw in runs]
    if len(cuts) == 1:
        return cuts[0]
    return chain.from_iterable(cuts)


def records(chunk: bytes, start: int, length: int) -> bytes:
    """``length`` bytes of ``chunk`` from ``start`` (``chunk`` itself when that is all of it).

    A ``bytes`` slice rather than a ``memoryview``: an unpack iterator over a view exports its
    buffer, and a view whose buffer is exported cannot be cleared by the garbage collector when
    it ends up in a reference cycle (a callback's exception holds the reader's frame, which
    holds the buffer: CPython then crashes freeing the cycle)."""
    if start == 0 and length == len(chunk):
        return chunk
    return chunk[start:start + length]


def split(chunk: bytes) -> tuple[Iterator[bytes], int]:
    """The samples' data in ``chunk`` (:func:`samples` of its :func:`cut`) and the number of
    samples lost."""
    runs, lost = cut(chunk)
    return samples(chunk, runs), lost


def rest(chunk: bytes, runs: list[Run], index: int, left: int) -> Iterator[bytes]:
    """The samples after a reader stopped in run ``index`` with ``left`` of its records not
    handed out: those, then every later run."""
    pos, count, size, raw = runs[index]
    tail = [(pos + (count - left) * size, left, size, raw)] if left else []
    return samples(chunk, tail + runs[index + 1:])


class PerfBatch(EventBatch):
    """The samples of one perf ring read in one call (:meth:`PerfBuffer.read_batch
    <pylibbpf.PerfBuffer.read_batch>`): an :class:`~pylibbpf.events._batch.EventBatch` whose
    ``data`` is the copy of the ring (records with their headers), ``batch[i]`` sample ``i``'s
    data as libbpf hands it to a callback (the raw data, padded by the kernel to keep the
    records 8-byte aligned), :meth:`to_numpy` the samples as one array; :attr:`cpu` says whose
    ring it was."""

    __slots__ = ("cpu",)

    def __init__(self, data: bytes, offsets: Sequence[int], sizes: Sequence[int],
                 stride: int | None, cpu: int) -> None:
        super().__init__(data, offsets, sizes, stride)
        #: the CPU whose ring held the samples
        self.cpu = cpu

    def __repr__(self) -> str:
        return f"<PerfBatch CPU {self.cpu}: {len(self)} samples, {len(self._data)} bytes>"


def batch(chunk: bytes, runs: list[Run], cpu: int) -> PerfBatch:
    """``runs`` of ``chunk`` (its :func:`cut`) as a :class:`PerfBatch` of ``cpu``'s ring: one
    run is a ``range`` of offsets (no list at all), several an ``array`` of them."""
    if not runs:
        return PerfBatch(b"", (), (), None, cpu)
    if len(runs) == 1:
        pos, count, size, raw = runs[0]
        first = pos + _RAW_OFFSET
        return PerfBatch(chunk, range(first, first + count * size, size), _Repeat(raw, count),
                         size, cpu)
    offsets = array("Q")
    sizes = array("I")
    for pos, count, size, raw in runs:
        first = pos + _RAW_OFFSET
        offsets.extend(range(first, first + count * size, size))
        sizes.extend(_Repeat(raw, count))
    return PerfBatch(chunk, offsets, sizes, _spacing(offsets, sizes), cpu)


_first = itemgetter(0)


@functools.lru_cache(maxsize=64)
def sample_layout(size: int, raw: int) -> struct.Struct:
    """A sample record of ``size`` bytes holding ``raw`` bytes of data, as a ``Struct`` whose
    one field is the data."""
    return struct.Struct(f"{_RAW_OFFSET}x{raw}s{size - _RAW_OFFSET - raw}x")


def typed_layout(flat: struct.Struct, size: int, raw: int) -> struct.Struct | None:
    """A sample record of ``size`` bytes holding ``raw`` bytes of data, as a ``Struct`` whose
    fields are those of ``flat`` (a flat codec's, whose ``build`` takes the tuple); None when
    the data is shorter than ``flat`` (the decoder then says what is wrong, per sample)."""
    if raw < flat.size:
        return None
    return struct.Struct(f"={_RAW_OFFSET}x{flat.format[1:]}{size - _RAW_OFFSET - flat.size}x")


def _run(values: memoryview, expected: int) -> int:
    """How many of ``values`` from the first on equal ``expected``."""
    items = values.tolist()
    if items.count(expected) == len(items):
        return len(items)
    for index, value in enumerate(items):
        if value != expected:
            return index
    return len(items)  # pragma: no cover - count() said otherwise


class PerfRings:
    """Every ring of a perf buffer: ``fds[i]`` is ring ``i``'s perf event, ``cpus[i]`` its
    CPU.  Raises :class:`~pylibbpf.errors.NotSupportedError` off x86, ``OSError`` when a ring
    cannot be mapped (the caller then keeps libbpf's consumer)."""

    def __init__(self, fds: list[int], cpus: list[int], page_count: int) -> None:
        require_ordered_memory("reading perf rings from Python", "libbpf reads them")
        self.rings: list[PerfRing] = []
        try:
            for fd, cpu in zip(fds, cpus, strict=True):
                self.rings.append(PerfRing(fd, cpu, page_count))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Unmap every ring."""
        for ring in self.rings:
            ring.close()
        self.rings.clear()


def ring_cpus(count: int, possible: int) -> list[int] | None:
    """The CPU of each of a perf buffer's ``count`` rings, as libbpf assigned them (one per
    online CPU below ``possible``, in order), or None when that cannot be told for sure."""
    try:
        with open("/sys/devices/system/cpu/online", encoding="ascii") as file:
            text = file.read().strip()
        cpus: list[int] = []
        for part in filter(None, text.split(",")):
            first, _, last = part.partition("-")
            cpus.extend(range(int(first), int(last or first) + 1))
    except (OSError, ValueError):
        return None
    cpus = [cpu for cpu in cpus if cpu < possible]
    return cpus if len(cpus) == count else None
