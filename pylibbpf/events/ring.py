"""``RingBuffer``: BPF → Python through ``BPF_MAP_TYPE_RINGBUF`` maps.

:class:`RingBuffer` wraps libbpf's ``ring_buffer__*``: one or more ``BPF_MAP_TYPE_RINGBUF`` maps,
each with its own callback, polled together through one epoll fd::

    def handle(data: bytes) -> None:
        ...
    with RingBuffer(obj.maps["events"], handle) as rb:
        while running:
            rb.poll(100)          # ms; returns how many records the callbacks got

A callback receives each record as ``bytes`` (a copy: it stays valid after the callback).  It may
return ``None``/``0`` to go on, or a negative int to stop, as in libbpf: :meth:`RingBuffer.poll`
then returns that value.  An exception raised by a callback never crosses libbpf's C frame: the
trampoline catches it, makes libbpf stop, and :meth:`~RingBuffer.poll` re-raises it with its
original traceback.  The record that raised is consumed; the following ones stay in the ring.

Without a callback (``RingBuffer(m)``), records are queued in Python and read with
:meth:`RingBuffer.events` or ``async for`` (see :mod:`pylibbpf.aio`).  :meth:`RingBuffer.read_batch`
reads many records per call straight from the mapped ring, without a Python call per record.

:meth:`RingBuffer.ring` gives one ring (:class:`Ring`, libbpf's ``struct ring``): its map fd,
size, consumer and producer positions and the bytes waiting, and :meth:`Ring.consume` /
:meth:`Ring.consume_n` for that ring alone (libbpf >= 1.3 / 1.5).  With an older libbpf the
positions come from pylibbpf's own read-only mapping of the ring's position pages.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
import struct
from collections import deque
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from .. import _args, _ffi
from .._handle import Handle
from ..enums import MapType
from ..errors import BpfError, ClosedError, NotSupportedError, StateError, error_from_errno
from ..map import Map
from ._common import (
    HEADER_SIZE,
    Callback,
    Decoder,
    QueuedEvents,
    direct_decoder,
    poll_result,
    poll_timeout,
    ring_fd,
)
from ._guard import PollGuard

if TYPE_CHECKING:
    from ._batch import EventBatch, RingPositions, RingReader

# The sample callback as libbpf calls it, with ``data`` typed as ``char *`` so that slicing it
# (``data[:size]``) makes the ``bytes`` in C; cast to the table's ``ring_buffer_sample_fn``.
# Measured per 128-byte record: the pointer object and the slice cost less than a ``void *``
# with ``ctypes.string_at`` or ``PyBytes_FromStringAndSize`` (a foreign call each, ~1.7x).
_sample_fn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_char),
                              ctypes.c_size_t)
_STOP = -_errno.ECANCELED


class _State:
    """What the trampolines share with their buffer (never the buffer itself: no cycle)."""

    __slots__ = ("error", "stopped", "queue", "closing")

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.stopped: int | None = None
        self.queue: deque[Any] = deque()
        # Set by close() from another thread: libbpf keeps consuming while a producer keeps
        # producing, so a poll may never return on its own; the next record stops it.
        self.closing = False


def _trampoline(callback: Callback | None, decode: Decoder | None, state: _State) -> Any:
    if callback is None:
        append = state.queue.append
        if decode is None:
            def queue_raw(ctx: Any, data: Any, size: int) -> int:
                if state.closing:
                    return _STOP
                append(data[:size])
                return 0
            return _sample_fn(queue_raw)

        def queue_decoded(ctx: Any, data: Any, size: int) -> int:
            if state.closing:
                return _STOP
            try:
                append(decode(data[:size]))
            except BaseException as exc:  # noqa: BLE001 - never into C
                state.error = exc
                return _STOP
            return 0
        return _sample_fn(queue_decoded)

    def stop_or_go(result: Any) -> int:
        """What a callback that returned ``result`` (not None) tells libbpf."""
        try:
            rc = int(result)
        except BaseException as exc:  # noqa: BLE001 - nothing may cross back into C
            state.error = exc
            return _STOP
        if rc < 0:
            state.stopped = rc
            return rc
        return 0

    if decode is None:
        def call(ctx: Any, data: Any, size: int) -> int:
            if state.closing:
                return _STOP
            try:
                result = callback(data[:size])
            except BaseException as exc:  # noqa: BLE001 - nothing may cross back into C
                state.error = exc
                return _STOP
            return 0 if result is None else stop_or_go(result)
        return _sample_fn(call)

    def call_decoded(ctx: Any, data: Any, size: int) -> int:
        if state.closing:
            return _STOP
        try:
            result = callback(decode(data[:size]))
        except BaseException as exc:  # noqa: BLE001 - nothing may cross back into C
            state.error = exc
            return _STOP
        return 0 if result is None else stop_or_go(result)
    return _sample_fn(call_decoded)


def _free_ring_buffer(ptr: Any, keep: list[Any]) -> None:
    _ffi.lib().ring_buffer__free(ptr)
    keep.clear()


class RingBuffer(Handle, QueuedEvents[Any]):
    """libbpf's ``ring_buffer`` over one or more ``RINGBUF`` maps.

    ``RingBuffer(ring, callback=None, *, decode=None)``: ``ring`` is a :class:`~pylibbpf.Map`
    (or a map fd); ``callback(data)`` is called per record; without one the records are queued
    for :meth:`events` / ``async for``.  ``decode`` turns each record's bytes into the value the
    callback (or the queue) receives, e.g. a :func:`pylibbpf.typed.decoder`.  :meth:`add` adds
    more maps.
    """

    _what = "ring buffer"

    def __init__(self, ring: Map | int, callback: Callback | None = None, *,
                 decode: Decoder | None = None) -> None:
        super().__init__()
        self._state = _State()
        self._keep: list[Any] = []  # the CFUNCTYPE objects libbpf calls: alive until free
        self._rings: list[tuple[int, str, int, Map | None]] = []
        self._queue_mode: bool | None = None
        # queue mode, no decoder, rings readable from Python: consume() queues batches
        self._batched: bool | None = None
        self._readers: dict[int, RingReader] = {}
        self._positions: dict[int, RingPositions] = {}  # libbpf < 1.3: Ring's own mapping
        fd, what, size = ring_fd(ring, MapType.RINGBUF)
        tramp = self._trampoline(callback, decode)
        try:
            ptr = _ffi.lib().ring_buffer__new(fd, ctypes.cast(tramp, _sample_type()), None,
                                              None)
        except BpfError as exc:
            raise error_from_errno(exc.errno or _errno.EIO,
                                   f"failed to create a ring buffer on {what}") from None
        self._ptr = ptr
        self._keep.append(tramp)
        self._rings.append((fd, what, size, ring if isinstance(ring, Map) else None))
        keep, state = self._keep, self._state
        guard = self._guard = PollGuard(self._what)

        def release_on_gc() -> None:  # at exit a daemon thread may still be polling
            state.closing = True
            guard.close(lambda: _free_ring_buffer(ptr, keep))

        self._own(lambda: _free_ring_buffer(ptr, keep), f"ring buffer on {what}", release_on_gc)

    def _trampoline(self, callback: Callback | None, decode: Decoder | None) -> Any:
        queue_mode = callback is None
        if self._queue_mode is not None and self._queue_mode != queue_mode:
            raise ValueError("a ring buffer either queues every map's records (no callback) or "
                             "calls a callback for each map; it cannot mix both")
        self._queue_mode = queue_mode
        if not queue_mode or decode is not None:
            self._batched = False
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable")
        return _trampoline(callback, direct_decoder(decode), self._state)

    @property
    def _p(self) -> Any:
        self._check()
        return self._ptr

    def add(self, ring: Map | int, callback: Callback | None = None, *,
            decode: Decoder | None = None) -> None:
        """Add another ``RINGBUF`` map with its own callback (``ring_buffer__add``)."""
        ptr = self._p
        fd, what, size = ring_fd(ring, MapType.RINGBUF)
        tramp = self._trampoline(callback, decode)
        add = _ffi.lib().ring_buffer__add

        def add_ring() -> int:  # libbpf reallocates its ring table: never during a poll
            try:
                add(ptr, fd, ctypes.cast(tramp, _sample_type()), None)
            except BpfError as exc:
                raise error_from_errno(exc.errno or _errno.EIO,
                                       f"failed to add {what} to a ring buffer") from None
            return 0

        self._guard.call(add_ring)
        self._keep.append(tramp)
        self._rings.append((fd, what, size, ring if isinstance(ring, Map) else None))

    @property
    def rings(self) -> list[str]:
        """The rings polled, in the order they were added (their maps' names)."""
        return [what for _fd, what, _size, _m in self._rings]

    # ----------------------------------------------------------------------------- consuming

    def _finish(self, rc: int, what: str) -> int:
        state = self._state
        if state.closing:
            raise ClosedError(self._what)
        error = state.error
        if error is not None:
            state.error = None
            state.stopped = None
            raise error
        if state.stopped is not None:
            stopped, state.stopped = state.stopped, None
            return stopped
        return poll_result(rc, what)

    def _unheld(self, fn: Callable[[], int]) -> Callable[[], int]:
        """``fn``, refusing to run while a zero-copy batch is held (libbpf would read the same
        records again: the batch's space is released only by ``batch.release()``)."""
        def run() -> int:
            for index, reader in self._readers.items():
                if reader.held:
                    raise StateError(_errno.EBUSY, f"a zero-copy batch of "
                                     f"{self._rings[index][1]} is not released yet: release() "
                                     f"it before polling or consuming")
            return fn()
        return run

    def poll(self, timeout_ms: int = -1) -> int:
        """Wait up to ``timeout_ms`` (-1: forever, 0: not at all) for records and hand them to
        the callbacks (``ring_buffer__poll``).

        Returns how many records were consumed, or the negative value a callback returned to
        stop.  Re-raises an exception a callback raised.  Raises
        :class:`~pylibbpf.StateError` (EBUSY) from inside a callback of this buffer or while a
        zero-copy batch is held.
        """
        timeout_ms = poll_timeout(timeout_ms)
        ptr = self._p
        poll = _ffi.lib().ring_buffer__poll
        return self._finish(
            self._guard.poll(lambda ms: self._unheld(lambda: int(poll(ptr, ms)))(), timeout_ms),
            "ring_buffer__poll")

    def consume(self) -> int:
        """Hand every available record to the callbacks without waiting
        (``ring_buffer__consume``); returns the count like :meth:`poll`.

        In queue mode without a decoder (on x86) the records are read straight from the rings'
        memory, a batch per ring (see :meth:`read_batch`), with no Python call per record."""
        ptr = self._p
        if self._batched is not False:
            done = self._guard.call(self._queue_batches)
            if done is not None:
                return self._finish(done, "ring_buffer__consume")
        consume = _ffi.lib().ring_buffer__consume
        return self._finish(self._guard.call(self._unheld(lambda: int(consume(ptr)))),
                            "ring_buffer__consume")

    def consume_n(self, n: int) -> int:
        """Consume at most ``n`` records, ``1 <= n <= 2**31 - 1``
        (``ring_buffer__consume_n``, libbpf >= 1.5)."""
        n = _args.in_range(n, "n", 1, _args.INT_MAX)
        ptr = self._p  # a closed buffer is ClosedError whatever the libbpf version
        _need_libbpf("ring_buffer__consume_n", "1.5")
        consume_n = _ffi.lib().ring_buffer__consume_n
        return self._finish(self._guard.call(self._unheld(lambda: int(consume_n(ptr, n)))),
                            "ring_buffer__consume_n")

    @property
    def epoll_fd(self) -> int:
        """libbpf's epoll fd: readable when a ring has data (for select/asyncio)."""
        return int(_ffi.lib().ring_buffer__epoll_fd(self._p))

    def fileno(self) -> int:
        """:attr:`epoll_fd`, so that the buffer can be given to ``select``/``selectors``."""
        return self.epoll_fd

    # ----------------------------------------------------------------------------- queue mode

    def _require_queue(self) -> deque[Any]:
        if not self._queue_mode:
            raise StateError(_errno.EINVAL, "this ring buffer hands records to callbacks; "
                             "create it without a callback to iterate over its records")
        return self._state.queue

    @property
    def pending(self) -> int:
        """Records consumed from the rings but not yet taken from the queue (queue mode)."""
        return len(self._state.queue)

    # ----------------------------------------------------------------------------- batch path

    def _reader(self, index: int) -> RingReader:
        reader = self._readers.get(index)
        if reader is None:
            from ._batch import RingReader

            fd, _what, size, _m = self._rings[index]
            reader = RingReader(fd, size, self._guard.refuse_inherited)
            self._readers[index] = reader
        return reader

    def _queue_batches(self) -> int | None:
        """Queue every ring's committed records, read from its memory (under the guard);
        None where that cannot be done (off x86: the caller uses libbpf's consumer)."""
        if self._state.closing:
            return 0  # _finish raises ClosedError
        try:
            readers = [self._reader(index) for index in range(len(self._rings))]
        except NotSupportedError:
            self._batched = False
            return None
        self._batched = True
        queue = self._state.queue
        done = 0
        for reader in readers:
            batch = reader.read()
            done += len(batch)
            queue.extend(records_of(batch))
        return done

    def read_batch(self, ring: int | str = 0, max_events: int | None = None, *,
                   copy: bool = True) -> EventBatch:
        """Read every committed record of one ring (default: the first added) straight from
        its memory, in one Python call: see :class:`pylibbpf.events._batch.EventBatch`.

        Skips discarded records and stops at the first record still being written, as
        libbpf does.  Can be mixed with :meth:`poll`/:meth:`consume` (never inside one of this
        buffer's callbacks: :class:`~pylibbpf.StateError`).  ``ring`` is an index (ValueError
        when out of range) or a map name.  ``copy=False``: no copy, the batch views the ring
        until ``batch.release()`` (use ``with rb.read_batch(copy=False) as batch:``); until
        then this ring cannot be read again and :meth:`poll`/:meth:`consume` raise
        :class:`~pylibbpf.StateError` (EBUSY).  :meth:`close` invalidates a held batch.
        """
        index = self._ring_index(ring)
        if max_events is not None:
            max_events = _args.non_negative_int(max_events, "max_events")
        self._check()

        def read() -> EventBatch:
            return self._reader(index).read(max_events, copy=bool(copy))

        # under the guard: libbpf must not be consuming this ring meanwhile (a callback reading
        # its own ring, another thread polling), and close() must not unmap it mid-read
        return self._guard.call(read)

    def ring(self, ring: int | str = 0) -> Ring:
        """One of the rings (``ring_buffer__ring``): by index, in the order they were added,
        or by map name.  ``ValueError`` when there is no such ring."""
        self._check()
        return Ring(self, self._ring_index(ring))

    def _ring_index(self, ring: int | str) -> int:
        if isinstance(ring, str):
            try:
                return self.rings.index(f"map {ring!r}")
            except ValueError:
                raise ValueError(f"no ring named {ring!r}; this buffer reads "
                                 f"{', '.join(self.rings)}") from None
        index = _args.integer(ring, "ring")
        if not 0 <= index < len(self._rings):
            raise ValueError(f"ring {index} is out of range: this buffer reads "
                             f"{len(self._rings)} ring(s), numbered from 0")
        return index

    def close(self) -> None:
        """Free libbpf's ring buffer and unmap the rings.

        Safe from any thread: a poll running in another thread finishes its current slice
        (at most 100 ms) and raises :class:`~pylibbpf.ClosedError`; a callback may close the
        buffer it is called from (the free then happens when the poll returns).
        """
        if self._closed:
            return
        self._state.closing = True  # stops a poll that a busy producer would keep going

        def release() -> None:
            for reader in self._readers.values():
                reader.close()
            self._readers.clear()
            for positions in self._positions.values():
                positions.close()
            self._positions.clear()
            Handle.close(self)

        self._guard.close(release)

    def __repr__(self) -> str:
        if self.closed:
            return "<RingBuffer closed>"
        return f"<RingBuffer {', '.join(self.rings)}>"


def _need_libbpf(function: str, version: str) -> None:
    if not _ffi.has(function):
        from ..errors import NotSupportedError

        raise NotSupportedError(f"{function} needs libbpf >= {version} (this is "
                                f"{'.'.join(map(str, _ffi.version()))})")


class Ring:
    """One ring of a :class:`RingBuffer` (libbpf's ``struct ring``, ``ring_buffer__ring``).

    It borrows from its buffer: after the buffer's ``close()`` every use raises
    :class:`~pylibbpf.ClosedError`.  :attr:`map_fd` and :attr:`size` need no libbpf call; the
    positions use ``ring__consumer_pos``/``ring__producer_pos`` (libbpf >= 1.3) where the
    library has them and pylibbpf's own mapping of the ring otherwise; :meth:`consume` needs
    libbpf >= 1.3, :meth:`consume_n` >= 1.5 (:class:`~pylibbpf.NotSupportedError` naming the
    version before).
    """

    __slots__ = ("_rb", "index")

    def __init__(self, rb: RingBuffer, index: int) -> None:
        self._rb = rb
        #: the ring's position in its buffer (the order of ``RingBuffer(...)`` and ``add()``)
        self.index = index

    @property
    def name(self) -> str:
        """The ring's map, as :attr:`RingBuffer.rings` names it."""
        return self._rb.rings[self.index]

    @property
    def map_fd(self) -> int:
        """The ``RINGBUF`` map's fd (``ring__map_fd``)."""
        self._rb._check()
        return self._rb._rings[self.index][0]

    @property
    def size(self) -> int:
        """The ring's data size in bytes, its map's ``max_entries`` (``ring__size``)."""
        self._rb._check()
        return self._rb._rings[self.index][2]

    def _libbpf(self, function: str) -> int:
        ptr = self._rb._p
        lib = _ffi.lib()

        def read() -> int:
            return int(getattr(lib, function)(lib.ring_buffer__ring(ptr, self.index)))

        return self._rb._guard.read(read)

    def _own_mapping(self) -> RingPositions:
        rb = self._rb
        rb._check()
        positions = rb._positions.get(self.index)
        if positions is None:
            from ._batch import RingPositions

            positions = rb._positions[self.index] = RingPositions(self.map_fd)
        return positions

    def _position(self, which: str) -> int:
        if _ffi.has(f"ring__{which}"):
            return self._libbpf(f"ring__{which}")
        positions = self._own_mapping()
        return self._rb._guard.read(lambda: int(getattr(positions, which)))

    @property
    def consumer_pos(self) -> int:
        """Bytes consumed since the ring was created (``ring__consumer_pos``)."""
        return self._position("consumer_pos")

    @property
    def producer_pos(self) -> int:
        """Bytes reserved since the ring was created (``ring__producer_pos``)."""
        return self._position("producer_pos")

    @property
    def avail_data_size(self) -> int:
        """Bytes reserved and not consumed yet, headers included (``ring__avail_data_size``):
        read from the two positions, each a snapshot, as libbpf does."""
        if _ffi.has("ring__avail_data_size"):
            return self._libbpf("ring__avail_data_size")
        consumer = self.consumer_pos
        return self.producer_pos - consumer

    def consume(self) -> int:
        """Hand this ring's available records to its callback (``ring__consume``, libbpf >=
        1.3); returns the count like :meth:`RingBuffer.poll`."""
        rb = self._rb
        ptr = rb._p
        _need_libbpf("ring__consume", "1.3")
        lib = _ffi.lib()
        index = self.index
        return rb._finish(rb._guard.call(rb._unheld(
            lambda: int(lib.ring__consume(lib.ring_buffer__ring(ptr, index))))),
            "ring__consume")

    def consume_n(self, n: int) -> int:
        """Hand at most ``n`` of this ring's records to its callback, ``1 <= n <= 2**31 - 1``
        (``ring__consume_n``, libbpf >= 1.5)."""
        n = _args.in_range(n, "n", 1, _args.INT_MAX)
        rb = self._rb
        ptr = rb._p
        _need_libbpf("ring__consume_n", "1.5")
        lib = _ffi.lib()
        index = self.index
        return rb._finish(rb._guard.call(rb._unheld(
            lambda: int(lib.ring__consume_n(lib.ring_buffer__ring(ptr, index), n)))),
            "ring__consume_n")

    def __repr__(self) -> str:
        if self._rb.closed:
            return "<Ring of a closed ring buffer>"
        return f"<Ring {self.index}: {self.name}, {self.size} bytes>"


def records_of(batch: EventBatch) -> Iterator[bytes]:
    """The records of a copied batch as ``bytes``: cut by one ``struct.Struct.iter_unpack``
    when they are evenly spaced and of one length (no Python code per record)."""
    stride = batch.stride
    data = batch.data
    if (stride is not None and len(batch) and batch.offsets[0] == HEADER_SIZE
            and len(data) == len(batch) * stride):
        return map(_first, _record_layout(stride, batch.sizes[0]).iter_unpack(data))
    return iter(batch)


_first = itemgetter(0)


@functools.lru_cache(maxsize=64)
def _record_layout(stride: int, length: int) -> struct.Struct:
    """A ring record taking ``stride`` bytes with ``length`` bytes of data, as a ``Struct``
    whose one field is the data."""
    return struct.Struct(f"{HEADER_SIZE}x{length}s{stride - HEADER_SIZE - length}x")


def _sample_type() -> Any:
    from .._ffi.types import ring_buffer_sample_fn

    return ring_buffer_sample_fn
