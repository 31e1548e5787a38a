"""The batch path: read a ring buffer map's records straight from its memory.

The kernel's layout (``kernel/bpf/ringbuf.c``, the same one libbpf's ``ring_buffer`` reads):

* offset 0 of the map fd: the *consumer page*, whose first 8 bytes are ``consumer_pos``; user
  space writes it (mapped read-write);
* offset ``PAGE_SIZE``: the *producer page* (``producer_pos`` in its first 8 bytes), followed by
  the data pages, which are mapped **twice** back to back, so a record that wraps around the end
  of the ring is still contiguous in memory (all read-only);
* each record starts with an 8-byte header: a ``u32`` length whose bit 31 (BUSY) says the
  producer has not committed it yet and bit 30 (DISCARD) says it was discarded, then a ``u32``
  page offset used by the kernel; the data follows, and the next record starts at the length
  plus the header rounded up to 8 bytes.

The consumer loads ``producer_pos`` and each header with acquire semantics and publishes
``consumer_pos`` with release semantics.  On x86-64 (total store order) plain loads and stores
through ``mmap`` give exactly that: loads are not reordered with older loads, stores not with older
stores.  Other architectures would need barriers Python cannot issue, so this reader refuses them
(:class:`~pylibbpf.errors.NotSupportedError`) and callers use libbpf's ``ring_buffer`` instead.

The headers are read first (their committed prefix decides where the batch ends), the data of that
prefix is copied after; a committed record is never rewritten before ``consumer_pos`` passes it.
When every record has the same length the headers are checked as one strided view (NumPy when
installed, else ``memoryview`` slicing), so no Python code runs per record.
"""

from __future__ import annotations

import errno as _errno
import functools
import mmap
import threading
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..errors import BpfError, ClosedError, StateError
from ._common import HEADER_SIZE, record_space, release_view, require_ordered_memory

#: a run of records of one length: (position of the first header, number of records, data
#: length, distance between records)
Span = tuple[int, int, int, int]

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
_LEN_MASK = ~(BUSY_BIT | DISCARD_BIT) & 0xFFFFFFFF

@functools.cache
def _numpy() -> Any:
    """NumPy (optional: vectorized header checks and structured arrays), or None; imported on
    first use, not with this module (importing NumPy takes about 90 ms)."""
    try:
        import numpy
    except ImportError:  # pragma: no cover - exercised where numpy is absent
        return None
    return numpy


class EventBatch(Sequence[Any]):
    """Records read in one call: ``data`` holds them back to back (with their 8-byte headers),
    ``offsets[i]``/``sizes[i]`` locate record ``i`` in it.  ``batch[i]`` is its ``bytes``;
    :meth:`view` a zero-copy ``memoryview``; :meth:`to_numpy` a structured array.

    A zero-copy batch (``copy=False``) views the ring itself.  Its ``data`` is released when the
    batch is released or its ring buffer closed; any use after that raises
    :class:`~pylibbpf.ClosedError`.  (A view or array taken from it before keeps the memory
    mapped, so it never faults, but it no longer shows the records.)
    """

    __slots__ = ("_data", "offsets", "sizes", "stride", "_release", "_dead")

    def __init__(self, data: bytes | memoryview, offsets: Sequence[int], sizes: Sequence[int],
                 stride: int | None, release: Any = None) -> None:
        self._data = data
        self.offsets = offsets
        self.sizes = sizes
        #: the distance between records when they all have one length (else ``None``)
        self.stride = stride
        self._release = release
        self._dead: str | None = None  # why data is gone: "released" or "closed"

    @property
    def data(self) -> bytes | memoryview:
        """The records with their headers (``bytes``, or a view of the ring if zero-copy)."""
        if self._dead is not None:
            raise ClosedError(f"zero-copy batch ({self._dead})")
        return self._data

    def release(self) -> None:
        """Zero-copy batches (``copy=False``): give the records' space back to the producer.
        ``data`` must not be used afterwards.  Copied batches need no release."""
        release, self._release = self._release, None
        if release is not None:
            self._dead = "released"
            release()

    def _invalidate(self) -> None:
        """The ring is being unmapped: drop the view without publishing anything."""
        self._release = None
        self._dead = "its ring buffer was closed"
        release_view(self._data)

    def _closed_meanwhile(self) -> None:
        if self._dead is not None:
            raise ClosedError(f"zero-copy batch ({self._dead})") from None

    def __enter__(self) -> EventBatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        start = self.offsets[index]
        data = self.data
        try:
            return data[start:start + self.sizes[index]]
        except ValueError:  # released by close() in another thread meanwhile
            self._closed_meanwhile()
            raise

    def __iter__(self) -> Iterator[Any]:
        data = self.data
        try:
            for start, size in zip(self.offsets, self.sizes, strict=True):
                yield data[start:start + size]
        except ValueError:
            self._closed_meanwhile()
            raise

    def view(self, index: int) -> memoryview:
        """Record ``index`` without copying."""
        start = self.offsets[index]
        return memoryview(self.data)[start:start + self.sizes[index]]

    def to_numpy(self, dtype: Any = None) -> Any:
        """The records as a NumPy array: a read-only view of :attr:`data` when the records are
        evenly spaced, else a copy (discarded records left gaps).

        ``dtype`` (a structured dtype, e.g. from :func:`pylibbpf.typed.numpy_dtype`) must not
        be larger than the records; without one each record is a row of ``uint8``.  Needs all
        records to have one length.
        """
        _np = _numpy()
        if _np is None:
            raise ImportError("to_numpy needs NumPy: pip install 'pylibbpf[numpy]'")
        n = len(self)
        size = self.sizes[0] if n else 0
        if n and not isinstance(self.sizes, _Repeat) and any(s != size for s in self.sizes):
            raise ValueError("the records have different lengths; a NumPy array needs one")
        if dtype is None:
            dtype = _np.dtype((_np.uint8, (size,)))
        dtype = _np.dtype(dtype)
        if n and dtype.itemsize > size:
            raise ValueError(f"dtype is {dtype.itemsize} bytes but the records are {size}")
        if not n:
            return _np.empty(0, dtype=dtype)
        if self.stride is None:  # gaps (discarded records): gather the rows into a copy
            raw = _np.frombuffer(self.data, dtype=_np.uint8)
            index = _np.asarray(self.offsets, dtype=_np.intp)[:, None] + _np.arange(
                dtype.itemsize, dtype=_np.intp)
            rows = _np.ascontiguousarray(raw[index])
            return _np.frombuffer(rows.tobytes(), dtype=dtype, count=n)
        return _np.ndarray(shape=(n,), dtype=dtype, buffer=self.data, offset=self.offsets[0],
                           strides=(self.stride,))

    def __repr__(self) -> str:
        if self._dead is not None:
            return f"<EventBatch {len(self)} records, {self._dead}>"
        return f"<EventBatch {len(self)} records, {len(self._data)} bytes>"


class RingReader:
    """A ``RINGBUF`` map's memory mapped into this process (see the module docstring)."""

    def __init__(self, fd: int, size: int,
                 may_write: Callable[[], None] | None = None) -> None:
        """``may_write()`` raises when this process must not move the consumer position (a
        child of ``fork()``: the consumer page is shared with the parent)."""
        require_ordered_memory("reading a ring buffer's memory from Python",
                               "use RingBuffer.poll()/consume()")
        if size <= 0 or size & (size - 1):
            raise ValueError(f"a ring buffer's size is a power of two, not {size}")
        page = mmap.PAGESIZE
        self._consumer, self._ring = _map_ring(
            fd, mmap.PROT_READ | mmap.PROT_WRITE, page + 2 * size,
            f"failed to map ring buffer fd {fd} into memory")
        self._page = page
        self._may_write = may_write or (lambda: None)
        self._size = size
        self._mask = size - 1
        self._u32 = memoryview(self._ring).cast("I")
        self._bytes = memoryview(self._ring)
        self._lock = threading.Lock()
        self._held: EventBatch | None = None  # the unreleased zero-copy batch
        self._cons32 = memoryview(self._consumer).cast("Q")
        self._prod64 = memoryview(self._ring).cast("Q")
        np = _numpy()
        self._np_headers: Any = None if np is None else np.frombuffer(self._ring, dtype=np.uint32)
        self._flatnonzero: Any = None if np is None else np.flatnonzero

    @property
    def held(self) -> bool:
        """True while a zero-copy batch of this ring is not released."""
        return self._held is not None

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._ring.closed

    def close(self) -> None:
        """Unmap the ring; a zero-copy batch still held is invalidated (not released: its
        records stay in the ring for whoever reads it next)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._ring.closed:
            return
        held, self._held = self._held, None
        if held is not None:
            held._invalidate()
        self._np_headers = None
        for view in (self._u32, self._cons32, self._prod64, self._bytes):
            view.release()
        try:
            self._ring.close()
        except BufferError:
            pass  # arrays made from zero-copy batches still map it; unmapped when they go
        self._consumer.close()

    def _check(self) -> None:
        if self._ring.closed:
            raise ClosedError("ring buffer reader")

    @property
    def consumer_pos(self) -> int:
        """The consumer position (bytes consumed since the ring was created)."""
        self._check()
        return int(self._cons32[0])

    @property
    def producer_pos(self) -> int:
        """The producer position (bytes reserved since the ring was created)."""
        self._check()
        return int(self._prod64[0])

    def _same_length_run(self, start: int, count: int, header: int, stride: int) -> int:
        """How many records from byte ``start`` of the data on have header ``header`` (of
        ``count`` candidates spaced ``stride`` apart)."""
        first = (self._page + start) // 4
        step = stride // 4
        headers: Any
        if self._np_headers is not None and count > 32:
            headers = self._np_headers[first:first + count * step:step]
            bad = self._flatnonzero(headers != header)
            return int(bad[0]) if bad.size else count
        values = self._u32[first:first + count * step:step].tolist()
        if values.count(header) == count:
            return count
        for i, value in enumerate(values):
            if value != header:
                return i
        return count  # pragma: no cover - count() said otherwise

    def read(self, max_events: int | None = None, *, copy: bool = True) -> EventBatch:
        """Consume the committed records (at most ``max_events``) and return them.

        ``copy=False`` returns them in place, as a read-only view of the ring, and leaves them
        reserved until :meth:`EventBatch.release` (or the end of a ``with`` block): no copy at
        all, the fastest path; no other read may happen before the release.
        """
        self._check()
        self._may_write()
        if self._held is not None:
            raise StateError(_errno.EBUSY, "a zero-copy batch of this ring is not released "
                             "yet: release() it before reading the ring again")
        spans, pos = self._spans((1 << 62) if max_events is None else max_events)
        if not spans:
            return EventBatch(b"", (), (), None)
        begin = spans[0][0]
        start = self._page + (begin & self._mask)
        release: Any = None
        data: bytes | memoryview
        if copy:
            data = self._ring[start:start + pos - begin]
            self._cons32[0] = pos  # release: x86 keeps it after the copy above
        else:
            data = self._bytes[start:start + pos - begin]

            def release() -> None:
                self._may_write()
                with self._lock:  # against close() in another thread
                    release_view(data)
                    if self._held is batch:  # not invalidated by close() meanwhile
                        self._held = None
                        self._cons32[0] = pos
        if len(spans) == 1:
            _start, count, length, stride = spans[0]
            batch = EventBatch(data, range(HEADER_SIZE, count * stride, stride),
                               _Repeat(length, count), stride, release)
        else:
            offsets = array("Q")
            sizes = array("I")
            for span_start, count, length, stride in spans:
                first = span_start - begin + HEADER_SIZE
                offsets.extend(range(first, first + count * stride, stride))
                sizes.extend(_Repeat(length, count))
            batch = EventBatch(data, offsets, sizes, _spacing(offsets, sizes), release)
        if not copy:
            self._held = batch
        return batch

    def _spans(self, limit: int) -> tuple[list[Span], int]:
        """The committed records from the consumer position on (at most ``limit``), as runs of
        one length, and the position after them.  When there are none, the discarded records
        before the first one still being written are given back (the consumer position moves
        past them)."""
        mask, u32 = self._mask, self._u32
        cons = int(self._cons32[0])
        prod = int(self._prod64[0])  # acquire: x86 keeps the loads below after this one
        pos = cons
        spans: list[Span] = []
        got = 0
        while pos < prod and got < limit:
            header = u32[(self._page + (pos & mask)) // 4]
            if header & BUSY_BIT:
                break
            length = header & _LEN_MASK
            stride = record_space(length)
            if header & DISCARD_BIT:
                pos += stride
                continue
            count = min((prod - pos) // stride, limit - got)
            run = self._same_length_run(pos & mask, count, header, stride) if count > 1 else 1
            spans.append((pos, run, length, stride))
            got += run
            pos += run * stride
        if not spans and pos != cons:
            self._cons32[0] = pos  # only discarded records: release them
        return spans, pos

    def peek(self) -> tuple[bytes, list[Span], int] | None:
        """A copy of every committed record (their headers included, from the first record's
        header on), their runs and the position after them, *without* giving their space back:
        the caller hands them out and moves :attr:`consumer` past each one it consumed (a
        callback may stop in the middle, as libbpf's consumer does).
        None when no record is committed."""
        self._check()
        self._may_write()
        if self._held is not None:
            raise StateError(_errno.EBUSY, "a zero-copy batch of this ring is not released "
                             "yet: release() it before reading the ring again")
        spans, pos = self._spans(1 << 62)
        if not spans:
            return None
        begin = spans[0][0]
        start = self._page + (begin & self._mask)
        return self._ring[start:start + pos - begin], spans, pos

    @property
    def consumer(self) -> memoryview:
        """The consumer position as a one-item view of the ring's consumer page: writing
        ``consumer[0] = pos`` gives the space up to ``pos`` back to the producer (release: x86
        keeps the store after the copy :meth:`peek` made)."""
        self._check()
        return self._cons32

    def __enter__(self) -> RingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _map_ring(fd: int, consumer_prot: int, rest: int, what: str) -> tuple[mmap.mmap, mmap.mmap]:
    """A ring map's consumer page (``consumer_prot``) and, read-only, ``rest`` bytes from the
    producer page on; the first is closed again if the second fails.  BpfError ``what``."""
    page = mmap.PAGESIZE
    try:
        consumer = mmap.mmap(fd, page, mmap.MAP_SHARED, consumer_prot, offset=0)
        try:
            return consumer, mmap.mmap(fd, rest, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        except BaseException:
            consumer.close()
            raise
    except OSError as exc:
        raise BpfError(exc.errno or _errno.EINVAL, what) from None


class RingPositions:
    """A ring's consumer and producer positions, from read-only mappings of its two position
    pages (no data pages: any architecture, no write access).  For libbpf < 1.3, which has no
    ``ring__consumer_pos``/``ring__producer_pos``; the values are a snapshot, as libbpf's."""

    def __init__(self, fd: int) -> None:
        self._consumer, self._producer = _map_ring(
            fd, mmap.PROT_READ, mmap.PAGESIZE,
            f"failed to map the positions of ring buffer fd {fd}")
        self._cons = memoryview(self._consumer).cast("Q")
        self._prod = memoryview(self._producer).cast("Q")

    @property
    def consumer_pos(self) -> int:
        return int(self._cons[0])

    @property
    def producer_pos(self) -> int:
        return int(self._prod[0])

    def close(self) -> None:
        if self._consumer.closed:
            return
        self._cons.release()
        self._prod.release()
        self._consumer.close()
        self._producer.close()


def _spacing(offsets: array[int], sizes: array[int]) -> int | None:
    """The common distance between records of one length, or None."""
    if len(offsets) < 2:
        return None if not offsets else record_space(sizes[0])
    step = offsets[1] - offsets[0]
    first = sizes[0]
    if any(size != first for size in sizes):
        return None
    if any(offsets[i + 1] - offsets[i] != step for i in range(len(offsets) - 1)):
        return None
    return step


class _Repeat(Sequence[int]):
    """``count`` times ``value``, without a list."""

    __slots__ = ("value", "_n")

    def __init__(self, value: int, count: int) -> None:
        self.value = value
        self._n = count

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self.value] * len(range(*index.indices(self._n)))
        if not -self._n <= index < self._n:
            raise IndexError(index)
        return self.value

    def __iter__(self) -> Iterator[int]:
        for _ in range(self._n):
            yield self.value
