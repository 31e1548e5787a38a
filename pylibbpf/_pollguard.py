"""Safe polling of a libbpf buffer that another thread may close.

libbpf's ``ring_buffer__poll``/``perf_buffer__poll`` use the buffer for the whole call, so freeing
it from another thread while a poll runs is a use-after-free.  :class:`PollGuard` serialises the
C calls with the free: a poll holds the guard's lock, ``close`` sets a flag and takes the lock.
A long or infinite wait is cut into slices of :data:`SLICE_MS`, so a closing thread waits at
most one slice and a poller blocked "forever" returns (with :class:`ClosedError`) soon after
another thread closes the buffer.  A callback that closes its own buffer (same thread, inside
the poll) defers the free until the poll returns.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Generic, TypeVar

from .errors import ClosedError

SLICE_MS = 100


class PollGuard:
    """Serialises a buffer's C calls with its release."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.RLock()
        self._closing = False
        self._owner: int | None = None
        self._deferred: Callable[[], None] | None = None

    @property
    def closing(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closing

    def _enter(self) -> None:
        if self._closing:
            raise ClosedError(self._what)
        self._lock.acquire()
        if self._closing and self._owner != threading.get_ident():
            self._lock.release()
            raise ClosedError(self._what)

    def _exit(self, outer: bool) -> None:
        deferred = None
        if outer:
            self._owner = None
            deferred, self._deferred = self._deferred, None
        self._lock.release()
        if deferred is not None:
            deferred()

    def call(self, fn: Callable[[], int]) -> int:
        """Run one C call that does not block (consume) under the guard."""
        self._enter()
        outer = self._owner is None
        self._owner = threading.get_ident()
        try:
            return fn()
        finally:
            self._exit(outer)

    def poll(self, fn: Callable[[int], int], timeout_ms: int) -> int:
        """Run ``fn(slice_ms)`` until it returns non-zero or ``timeout_ms`` has passed (-1:
        forever), one slice at a time, releasing the lock between slices."""
        deadline = None if timeout_ms < 0 else time.monotonic() + timeout_ms / 1000
        while True:
            if deadline is None:
                slice_ms = SLICE_MS
            else:
                slice_ms = max(0, min(SLICE_MS, int((deadline - time.monotonic()) * 1000)))
            rc = self.call(functools.partial(fn, slice_ms))
            if rc != 0 or (deadline is not None and time.monotonic() >= deadline):
                return rc

    def close(self, release: Callable[[], None]) -> None:
        """Run ``release`` once no C call is in flight (or after the current poll, if called
        from inside it)."""
        self._closing = True
        with self._lock:
            if self._owner == threading.get_ident():
                self._deferred = release  # a callback closing its own buffer
                return
            release()


_T = TypeVar("_T")


class QueuedEvents(Generic[_T]):
    """Queue mode shared by the ring and perf buffers: records their trampolines queued,
    read with :meth:`events` or ``async for``."""

    def _require_queue(self) -> deque[_T]:
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
        while queue:
            yield queue.popleft()

    def __aiter__(self) -> AsyncIterator[_T]:
        from .aio import iterate

        self._require_queue()
        return iterate(self)  # type: ignore[arg-type]
