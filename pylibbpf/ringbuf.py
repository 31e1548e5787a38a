"""``RingBuffer`` (BPF → Python) and ``UserRingBuffer`` (Python → BPF).

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
"""

from __future__ import annotations

import ctypes
import errno as _errno
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _ffi
from ._handle import Handle
from ._pollguard import PollGuard, QueuedEvents
from .enums import MapType
from .errors import BpfError, ClosedError, StateError, error_from_errno
from .map import Map

if TYPE_CHECKING:
    from ._ringread import EventBatch, RingReader

Callback = Callable[[bytes], "int | None"]
Decoder = Callable[[bytes], Any]

# The sample callback as libbpf calls it, with ``data`` typed as ``char *`` so that slicing it
# (``data[:size]``) makes the ``bytes`` in C; cast to the table's ``ring_buffer_sample_fn``.
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

    def call(ctx: Any, data: Any, size: int) -> int:
        if state.closing:
            return _STOP
        try:
            raw = data[:size]
            result = callback(raw if decode is None else decode(raw))
            if result is None:
                return 0
            rc = int(result)
        except BaseException as exc:  # noqa: BLE001 - nothing may cross back into C
            state.error = exc
            return _STOP
        if rc < 0:
            state.stopped = rc
        return rc if rc < 0 else 0
    return _sample_fn(call)


def _ring_fd(ring: Map | int, wanted: MapType) -> tuple[int, str, int]:
    """(fd, description, max_entries) of a ring map given as a Map or an fd."""
    if isinstance(ring, Map):
        kind = ring.type
        if kind != wanted:
            name = getattr(kind, "name", kind)
            raise ValueError(f"map {ring.name!r} is a {name} map, not {wanted.name}")
        return ring.fd, f"map {ring.name!r}", ring.max_entries
    if isinstance(ring, int) and not isinstance(ring, bool):
        from .info import MapInfo

        info = MapInfo.from_fd(ring)
        if int(info.type) != int(wanted):
            raise ValueError(f"fd {ring} is not a {wanted.name} map")
        return ring, f"map fd {ring}", info.max_entries
    raise TypeError(f"expected a Map or a map fd, not {type(ring).__name__}")


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
        self._readers: dict[int, RingReader] = {}
        fd, what, size = _ring_fd(ring, MapType.RINGBUF)
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
        keep = self._keep
        self._guard = PollGuard(self._what)
        self._own(lambda: _free_ring_buffer(ptr, keep), f"ring buffer on {what}")

    def _trampoline(self, callback: Callback | None, decode: Decoder | None) -> Any:
        queue_mode = callback is None
        if self._queue_mode is not None and self._queue_mode != queue_mode:
            raise ValueError("a ring buffer either queues every map's records (no callback) or "
                             "calls a callback for each map; it cannot mix both")
        self._queue_mode = queue_mode
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable")
        return _trampoline(callback, decode, self._state)

    @property
    def _p(self) -> Any:
        self._check()
        return self._ptr

    def add(self, ring: Map | int, callback: Callback | None = None, *,
            decode: Decoder | None = None) -> None:
        """Add another ``RINGBUF`` map with its own callback (``ring_buffer__add``)."""
        ptr = self._p
        fd, what, size = _ring_fd(ring, MapType.RINGBUF)
        tramp = self._trampoline(callback, decode)
        try:
            _ffi.lib().ring_buffer__add(ptr, fd, ctypes.cast(tramp, _sample_type()), None)
        except BpfError as exc:
            raise error_from_errno(exc.errno or _errno.EIO,
                                   f"failed to add {what} to a ring buffer") from None
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
        if rc < 0:
            if rc == -_errno.EINTR:
                return 0  # a signal: its Python handler runs as soon as we return
            raise error_from_errno(-rc, f"{what} failed")
        return rc

    def poll(self, timeout_ms: int = -1) -> int:
        """Wait up to ``timeout_ms`` (-1: forever, 0: not at all) for records and hand them to
        the callbacks (``ring_buffer__poll``).

        Returns how many records were consumed, or the negative value a callback returned to
        stop.  Re-raises an exception a callback raised.
        """
        ptr = self._p
        poll = _ffi.lib().ring_buffer__poll
        return self._finish(self._guard.poll(lambda ms: int(poll(ptr, ms)), int(timeout_ms)),
                            "ring_buffer__poll")

    def consume(self) -> int:
        """Hand every available record to the callbacks without waiting
        (``ring_buffer__consume``); returns the count like :meth:`poll`."""
        ptr = self._p
        consume = _ffi.lib().ring_buffer__consume
        return self._finish(self._guard.call(lambda: int(consume(ptr))), "ring_buffer__consume")

    def consume_n(self, n: int) -> int:
        """Consume at most ``n`` records (``ring_buffer__consume_n``, libbpf >= 1.5)."""
        ptr = self._p  # a closed buffer is ClosedError whatever the libbpf version
        if not _ffi.has("ring_buffer__consume_n"):
            from .errors import NotSupportedError

            raise NotSupportedError(f"ring_buffer__consume_n needs libbpf >= 1.5 (this is "
                                    f"{'.'.join(map(str, _ffi.version()))})")
        consume_n = _ffi.lib().ring_buffer__consume_n
        return self._finish(self._guard.call(lambda: int(consume_n(ptr, n))),
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

    def read_batch(self, ring: int | str = 0, max_events: int | None = None, *,
                   copy: bool = True) -> EventBatch:
        """Read every committed record of one ring (default: the first added) straight from
        its memory, in one Python call: see :class:`pylibbpf._ringread.EventBatch`.

        Skips discarded records and stops at the first record still being written, as
        libbpf does.  Can be mixed with :meth:`poll`/:meth:`consume` on the same thread.
        ``copy=False``: no copy, the batch views the ring until ``batch.release()`` (use
        ``with rb.read_batch(copy=False) as batch:``).
        """
        self._check()
        index = ring if isinstance(ring, int) else self.rings.index(f"map {ring!r}")
        reader = self._readers.get(index)
        if reader is None:
            from ._ringread import RingReader

            fd, _what, size, _m = self._rings[index]
            reader = RingReader(fd, size)
            self._readers[index] = reader
        return reader.read(max_events, copy=copy)

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
            Handle.close(self)

        self._guard.close(release)

    def __repr__(self) -> str:
        if self.closed:
            return "<RingBuffer closed>"
        return f"<RingBuffer {', '.join(self.rings)}>"


def _sample_type() -> Any:
    from ._ffi.types import ring_buffer_sample_fn

    return ring_buffer_sample_fn


# ------------------------------------------------------------------------------------ user ring


class UserSample:
    """A record reserved in a :class:`UserRingBuffer`: fill :attr:`buffer`, then :meth:`submit`
    (or :meth:`discard`).  As a context manager it submits on success, discards on error."""

    def __init__(self, owner: UserRingBuffer, address: int, size: int) -> None:
        self._owner = owner
        self._address: int | None = address
        self._array = (ctypes.c_char * size).from_address(address)
        self.buffer = memoryview(self._array).cast("B")

    @property
    def size(self) -> int:
        """Bytes reserved."""
        return len(self._array)

    def _take(self) -> int:
        if self._address is None:
            raise StateError(_errno.EINVAL, "this sample was already submitted or discarded")
        address, self._address = self._address, None
        self.buffer.release()
        return address

    def submit(self) -> None:
        """Publish the record to the BPF side (``user_ring_buffer__submit``)."""
        _ffi.lib().user_ring_buffer__submit(self._owner._p, self._take())

    def discard(self) -> None:
        """Give the space back unpublished (``user_ring_buffer__discard``)."""
        _ffi.lib().user_ring_buffer__discard(self._owner._p, self._take())

    def __enter__(self) -> memoryview:
        return self.buffer

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if self._address is None:
            return
        if exc_type is None:
            self.submit()
        else:
            self.discard()


class UserRingBuffer(Handle):
    """libbpf's ``user_ring_buffer`` over a ``USER_RINGBUF`` map: records written here are read
    by the BPF program's ``bpf_user_ringbuf_drain``.

    ``urb.write(data)`` reserves, copies and submits; ``with urb.reserve(n) as buf:`` fills a
    record in place.  A full ring raises :class:`~pylibbpf.BpfError` with errno ENOSPC.
    """

    _what = "user ring buffer"

    def __init__(self, ring: Map | int) -> None:
        super().__init__()
        fd, what, _size = _ring_fd(ring, MapType.USER_RINGBUF)
        try:
            ptr = _ffi.lib().user_ring_buffer__new(fd, None)
        except BpfError as exc:
            raise error_from_errno(exc.errno or _errno.EIO,
                                   f"failed to create a user ring buffer on {what}") from None
        self._ptr = ptr
        self._what_ring = what
        self._own(lambda: _ffi.lib().user_ring_buffer__free(ptr), f"user ring buffer on {what}")

    @property
    def _p(self) -> Any:
        self._check()
        return self._ptr

    def reserve(self, size: int, timeout_ms: int | None = None) -> UserSample:
        """Reserve ``size`` bytes (``user_ring_buffer__reserve``; with ``timeout_ms``,
        ``__reserve_blocking``, which waits for the BPF side to drain)."""
        if size <= 0:
            raise ValueError("a user ring buffer record needs at least one byte")
        lib = _ffi.lib()
        if timeout_ms is None:
            address = lib.user_ring_buffer__reserve(self._p, size)
        else:
            address = lib.user_ring_buffer__reserve_blocking(self._p, size, int(timeout_ms))
        if not address:
            err = ctypes.get_errno() or _errno.ENOSPC
            raise error_from_errno(err, f"cannot reserve {size} bytes in the user ring buffer "
                                   f"on {self._what_ring}")
        return UserSample(self, address, size)

    def write(self, data: bytes | bytearray | memoryview, timeout_ms: int | None = None) -> None:
        """Send one record: reserve ``len(data)`` bytes, copy ``data``, submit."""
        payload = bytes(data)
        sample = self.reserve(len(payload), timeout_ms)
        sample.buffer[:] = payload
        sample.submit()

    def __repr__(self) -> str:
        return f"<UserRingBuffer {self._what_ring}{' closed' if self.closed else ''}>"
