"""What the ring, user ring and perf buffers share: the callback types, the check of the map they
are given, whether their memory can be read from Python, the argument and result conventions of
their C calls, the record layout of a ring, and queue mode."""

from __future__ import annotations

import errno as _errno
import platform
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, TypeVar

from .. import _args
from ..enums import MapType
from ..errors import NotSupportedError, error_from_errno
from ..map import Map

Callback = Callable[[bytes], "int | None"]
Decoder = Callable[[bytes], Any]


#: machines whose plain loads and stores through an ``mmap`` are acquire and release (total store
#: order): the only ones where a ring's memory is read from Python
_TSO_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})


def require_ordered_memory(what: str, instead: str) -> None:
    """:class:`~pylibbpf.NotSupportedError` unless reading a ring's memory from Python is safe
    on this machine (x86: the reader's plain loads and stores keep their order with the
    kernel's); ``what`` names the reader, ``instead`` what to use elsewhere."""
    machine = platform.machine()
    if machine.lower() not in _TSO_MACHINES:
        raise NotSupportedError(f"{what} is only safe on x86 (total store order); on "
                                f"{machine} {instead}")


def direct_decoder(decode: Decoder | None) -> Decoder | None:
    """The function that does ``decode``'s work, called once per record: a
    :class:`~pylibbpf.typed.Codec` is called through its ``decoder`` attribute (its compiled
    function), which saves the lookup of ``Codec.__call__`` per record."""
    if decode is None:
        return None
    from ..elf.codec import Codec

    return decode.decoder if isinstance(decode, Codec) else decode

#: a ring record's header: length and flags, then the kernel's page offset (``_batch`` has the
#: whole layout)
HEADER_SIZE = 8


def record_space(length: int) -> int:
    """The bytes a record of ``length`` takes in a ring: header and data, 8-byte aligned."""
    return (length + HEADER_SIZE + 7) & ~7


def ring_fd(ring: Map | int, wanted: MapType) -> tuple[int, str, int]:
    """(fd, description, max_entries) of a ring map given as a Map or an fd."""
    if isinstance(ring, Map):
        kind = ring.type
        if kind != wanted:
            name = getattr(kind, "name", kind)
            raise ValueError(f"map {ring.name!r} is a {name} map, not {wanted.name}")
        return ring.fd, f"map {ring.name!r}", ring.max_entries
    if isinstance(ring, int) and not isinstance(ring, bool):
        from ..info import MapInfo

        info = MapInfo.from_fd(ring)
        if int(info.type) != int(wanted):
            raise ValueError(f"fd {ring} is not a {wanted.name} map")
        return ring, f"map fd {ring}", info.max_entries
    raise TypeError(f"expected a Map or a map fd, not {type(ring).__name__}")


def poll_timeout(timeout_ms: int) -> int:
    """A poll timeout in ms: -1 (forever) or ``0 <= timeout_ms <= 2**31 - 1``."""
    return _args.in_range(timeout_ms, "timeout_ms", -1, _args.INT_MAX)


def poll_result(rc: int, what: str) -> int:
    """What a poll or consume call of libbpf returned (``what`` names it): the count, 0 after a
    signal, an exception for any other error."""
    if rc < 0:
        if rc == -_errno.EINTR:
            return 0  # a signal: its Python handler runs as soon as we return
        raise error_from_errno(-rc, f"{what} failed")
    return rc


def release_view(data: bytes | memoryview) -> None:
    """Release a view of a ring's mapping (``bytes`` need nothing)."""
    if isinstance(data, memoryview):
        try:
            data.release()
        except BufferError:
            pass  # an array made from it still uses it: the mapping stays until it goes


_T = TypeVar("_T")


def take_chunks(queue: deque[Iterator[_T]]) -> Iterator[_T]:
    """The records of a queue of chunks (iterators of records), in order: a chunk leaves the
    queue once its last record was taken, so a reader that stops early (``break``, an
    exception) leaves the rest where the next reader finds them."""
    while queue:
        head = queue[0]
        yield from head
        if queue and queue[0] is head:  # not taken meanwhile by another reader
            queue.popleft()


class QueuedEvents(Generic[_T]):
    """Queue mode shared by the ring and perf buffers: records their readers queued, read with
    :meth:`events` or ``async for``.

    The queue holds chunks of records in order: iterators over a batch read from a ring (the
    perf buffer's make each sample only as it is taken, so the samples are made and freed while
    their memory is hot instead of all at once), or over one record.  Readers take records
    from the first chunk and drop it once it is empty (:func:`take_chunks`); stepping an
    iterator costs less than a ``popleft`` per record.
    """

    def _require_queue(self) -> deque[Iterator[_T]]:
        raise NotImplementedError

    def consume(self) -> int:
        raise NotImplementedError

    def poll(self, timeout_ms: int = -1) -> int:
        raise NotImplementedError

    def events(self, timeout_ms: int = -1) -> Iterator[_T]:
        """Queue mode: yield the records available now; if there are none, wait up to
        ``timeout_ms`` once.  ``for event in buffer.events(100): ...``"""
        queue = self._require_queue()
        if not queue:
            self.consume()
        if not queue and timeout_ms != 0:
            self.poll(timeout_ms)
        yield from take_chunks(queue)

    def __aiter__(self) -> AsyncIterator[_T]:
        from .aio import iterate

        self._require_queue()
        return iterate(self)  # type: ignore[arg-type]

    def batches(self, limit: int | None = None) -> AsyncIterator[list[_T]]:
        """Queue mode, asyncio: the records as they arrive, in lists of at most ``limit``
        (``None``: :data:`pylibbpf.aio.BATCH_LIMIT`; see :func:`pylibbpf.aio.batches`):
        ``async for batch in buffer.batches(): ...``.  A bad ``limit`` raises here."""
        from .aio import batches

        return batches(self, limit)  # type: ignore[arg-type]
