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

On x86 the callbacks' records are read straight from the rings' memory (``_batch``: one copy of
every committed record of a ring, cut by ``struct`` in C) instead of through a ctypes callback
per record from libbpf's consumer, with libbpf's rules kept: records still being written end
the read, discarded ones are skipped, the consumer position moves past each record handed out
(so a callback that stops or raises leaves the following ones in the ring), and a ring is read
again until no new record came meanwhile.  A typed decoder of a flat type then decodes a run of
records with one ``iter_unpack``.  Elsewhere libbpf's consumer calls the trampolines.

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
import os
import select
import struct
from collections import deque
from collections.abc import Callable, Iterator
from operator import itemgetter, length_hint
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
_CHUNK = 256  # records per chunk of the queue (see _queue_batches)


class _State:
    """What the trampolines share with their buffer (never the buffer itself: no cycle)."""

    __slots__ = ("error", "stopped", "queue", "closing")

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.stopped: int | None = None
        # queue mode: chunks of records in order, each an iterator (see QueuedEvents): a
        # batch read from a ring's memory, or one record from libbpf's consumer
        self.queue: deque[Iterator[Any]] = deque()
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
                append(iter((data[:size],)))
                return 0
            return _sample_fn(queue_raw)

        def queue_decoded(ctx: Any, data: Any, size: int) -> int:
            if state.closing:
                return _STOP
            try:
                append(iter((decode(data[:size]),)))
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
    for held in keep:  # this process's own epoll object on libbpf's epoll instance
        if isinstance(held, select.epoll):
            held.close()
    _ffi.lib().ring_buffer__free(ptr)
    keep.clear()


class _Handler:
    """What one ring's records go to when the ring is read from Python: the callback, and
    how each record becomes its argument."""

    __slots__ = ("callback", "decode", "flat", "layouts", "hand")

    def __init__(self, callback: Callback, decode: Decoder | None) -> None:
        from ..elf.codec import Codec

        self.callback = callback
        self.flat = decode.flat if isinstance(decode, Codec) else None
        self.decode = direct_decoder(decode)
        self.layouts: dict[tuple[int, int], struct.Struct | None] = {}
        #: a flat type's loop over unpacked records, each value made inline (see _HAND)
        self.hand: Callable[..., tuple[int, int]] | None = None if self.flat is None else \
            self.flat.inline(_HAND, "hand", STOP=_STOP, stop_or_go=_stop_or_go)

    def _part(self, data: bytes, start: int, count: int, stride: int) -> bytes:
        if start == 0 and count * stride == len(data):
            return data
        return data[start:start + count * stride]  # bytes, never a view (_perf_rings.records)

    def typed(self, data: bytes, start: int, count: int, length: int,
              stride: int) -> Iterator[tuple[Any, ...]] | None:
        """The unpacked tuples of ``count`` records of ``data`` from byte ``start`` on (at
        their headers) for :attr:`hand`, or None (no flat type, or records too short)."""
        flat = self.flat
        if flat is None:
            return None
        key = (length, stride)
        if key in self.layouts:
            layout = self.layouts[key]
        else:
            layout = self.layouts[key] = _typed_record_layout(flat.struct, length, stride)
        return None if layout is None else layout.iter_unpack(
            self._part(data, start, count, stride))

    def values(self, data: bytes, start: int, count: int, length: int,
               stride: int) -> Iterator[Any]:
        """What the callback gets for each of ``count`` records of ``data`` from byte
        ``start`` on (at their headers)."""
        part = self._part(data, start, count, stride)
        records = map(_first, _record_layout(stride, length).iter_unpack(part))
        decode = self.decode
        return records if decode is None else map(decode, records)


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
        # callback mode, rings readable from Python (x86): poll() and consume() read them
        self._direct: bool | None = None
        self._handlers: list[_Handler | None] = []  # per ring, in callback mode
        self._waiter: select.epoll | None = None  # on libbpf's epoll instance, for poll()
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
        self._handlers.append(None if callback is None else _Handler(callback, decode))
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
        self._handlers.append(None if callback is None else _Handler(callback, decode))

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
        if self._direct or (self._direct is None and self._guard.call(self._direct_ready)):
            return self._finish(self._guard.poll(self._unheld_slice, timeout_ms),
                                "ring_buffer__poll")
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
        if self._direct or (self._direct is None and self._guard.call(self._direct_ready)):
            return self._finish(self._guard.call(self._unheld(self._consume_all)),
                                "ring_buffer__consume")
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

    # ----------------------------------------------------------------------------- read from Python

    def _direct_ready(self) -> bool:
        """Whether poll()/consume() read the rings from Python (callback mode, x86), their
        readers and epoll object made on first use (under the guard)."""
        if self._direct is None:
            if self._queue_mode or self._state.closing:
                self._direct = False
                return False
            try:
                for index in range(len(self._rings)):
                    self._reader(index)
                fd = int(_ffi.lib().ring_buffer__epoll_fd(self._ptr))
                self._waiter = select.epoll.fromfd(os.dup(fd))
            except (NotSupportedError, OSError, BpfError):
                self._direct = False
                return False
            self._keep.append(self._waiter)
            self._direct = True
        return self._direct

    def _unheld_slice(self, slice_ms: int) -> int:
        return self._unheld(lambda: self._poll_slice(slice_ms))()

    def _poll_slice(self, slice_ms: int) -> int:
        """Wait up to ``slice_ms`` on libbpf's epoll instance, then read the rings that woke
        it (what ``ring_buffer__poll`` does in C: each ring is registered with its index)."""
        assert self._waiter is not None
        total = 0
        for index, _events in self._waiter.poll(slice_ms / 1000):
            done = self._consume_ring(index)
            if done < 0:
                return done
            total += done
        return total

    def _consume_all(self) -> int:
        total = 0
        for index in range(len(self._rings)):
            done = self._consume_ring(index)
            if done < 0:
                return done
            total += done
        return total

    def _consume_ring(self, index: int) -> int:
        """Hand ring ``index``'s records to its callback, read from the ring's memory, as
        libbpf's consumer does: the count, or the negative value that stopped it (a callback's
        return value, or ``_STOP`` after an exception, kept in the state, or on close)."""
        handler = self._handlers[index]
        assert handler is not None
        reader = self._reader(index)
        consumer = reader.consumer  # published after each record's callback, as libbpf does
        callback = handler.callback
        state = self._state
        total = 0
        while not state.closing:  # again until no record came meanwhile, as libbpf does
            taken = reader.peek()
            if taken is None:
                return total
            data, spans, end = taken
            begin = spans[0][0]
            for first, count, length, stride in spans:
                source = handler.typed(data, first - begin, count, length, stride)
                pos = first
                try:
                    if source is not None:
                        assert handler.hand is not None
                        pos, rc = handler.hand(source, callback, state, consumer, pos, stride)
                        if rc < 0:
                            return rc
                        total += count
                        continue
                    values = handler.values(data, first - begin, count, length, stride)
                    for value in values:
                        if state.closing:  # close() from a callback: stop at this record
                            return _STOP
                        pos += stride
                        result = callback(value)
                        consumer[0] = pos  # release: the record was copied out before
                        if result is not None:
                            rc = _stop_or_go(state, result)
                            if rc < 0:
                                return rc
                except BaseException as exc:  # noqa: BLE001 - re-raised by poll()
                    # the record that raised (in the decoder or the callback) is consumed,
                    # the following ones stay in the ring
                    state.error = exc
                    if source is not None:  # (its loop's position: from the records left)
                        pos = first + (count - length_hint(source)) * stride
                    consumer[0] = pos
                    return _STOP
                total += count
            consumer[0] = end  # (discarded records after the last one handed out)
        return _STOP

    # ----------------------------------------------------------------------------- queue mode

    def _require_queue(self) -> deque[Iterator[Any]]:
        if not self._queue_mode:
            raise StateError(_errno.EINVAL, "this ring buffer hands records to callbacks; "
                             "create it without a callback to iterate over its records")
        return self._state.queue

    @property
    def pending(self) -> int:
        """Records consumed from the rings but not yet taken from the queue (queue mode)."""
        return sum(map(_remaining, self._state.queue))

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
            if not len(batch):
                continue
            records = records_of(batch)
            if isinstance(records, map):  # made as they are taken, from the batch's copy
                queue.append(records)
                continue
            # gaps or lengths that differ: made now, in chunks of a bounded size (a reader
            # that took a chunk's last record holds the chunk until its next step)
            made = list(records)
            queue.extend(iter(made[i:i + _CHUNK]) for i in range(0, len(made), _CHUNK))
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

        A record committed while the read runs (or while a zero-copy batch is held) sends no
        wake-up of its own (the kernel wakes a reader only once it has caught up): after
        waiting on :attr:`epoll_fd`, call this until it returns an empty batch, as :meth:`poll`
        does with libbpf's consumer.
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


# _consume_ring's loop over a run of records of a flat type, compiled per type with the value's
# expression inline: (position after the last record handed out, 0 or the negative stop value)
_HAND = """
def hand(source, callback, state, consumer, pos, stride):
    for {t} in source:
        if state.closing:
            return pos, STOP
        pos += stride
        result = callback({value})
        consumer[0] = pos
        if result is not None:
            rc = stop_or_go(state, result)
            if rc < 0:
                return pos, rc
    return pos, 0
"""


def _stop_or_go(state: _State, result: Any) -> int:
    """What a callback that returned ``result`` (not None) means: 0 to go on, or the negative
    value that stops the read (kept in ``state``); ``int()`` raising is the callback's error."""
    rc = int(result)
    if rc < 0:
        state.stopped = rc
        return rc
    return 0


def _remaining(chunk: Iterator[Any]) -> int:
    """The records a chunk of the queue still holds: a ``map`` cutting a batch (see
    :func:`records_of`) tells it through the unpack iterator under it."""
    if type(chunk) is map:
        return length_hint(chunk.__reduce__()[1][1])
    return length_hint(chunk)


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


def _typed_record_layout(flat: struct.Struct, length: int, stride: int) -> struct.Struct | None:
    """A ring record taking ``stride`` bytes with ``length`` bytes of data, as a ``Struct``
    whose fields are those of ``flat`` (a flat codec's, whose ``build`` takes the tuple); None
    when the data is shorter than ``flat`` (the decoder then says what is wrong, per record)."""
    if length < flat.size:
        return None
    return struct.Struct(f"={HEADER_SIZE}x{flat.format[1:]}{stride - HEADER_SIZE - flat.size}x")


def _sample_type() -> Any:
    from .._ffi.types import ring_buffer_sample_fn

    return ring_buffer_sample_fn
