"""Safe use of a libbpf buffer that another thread may close, a callback may re-enter, or a
``fork()`` may copy.

libbpf's ``ring_buffer__poll``/``perf_buffer__poll`` use the buffer for the whole call, so freeing
it from another thread while a poll runs is a use-after-free.  :class:`PollGuard` serialises the
C calls with the free: a call holds the guard's lock, ``close`` sets a flag and takes the lock.
A long or infinite wait is cut into slices of :data:`SLICE_MS`, so a closing thread waits at
most one slice and a poller blocked "forever" returns (with :class:`ClosedError`) soon after
another thread closes the buffer.  A callback that closes its own buffer (same thread, inside
the call) defers the free until the call returns.

A callback that reads its own buffer again (``poll()``/``consume()`` inside the callback) would
run libbpf's consumer loop inside itself: the outer loop then publishes a consumer position the
inner one already passed, and records are delivered twice.  The guard refuses such a call with
:class:`StateError` (``EBUSY``).

After ``fork()`` the child has one thread, and the lock may be held by a thread that only exists
in the parent.  Every live guard is reset in the child (a fresh lock) and marked as inherited:
``close()`` works and frees the child's copy, any other call raises :class:`StateError`, since
the ring's consumer position is shared memory and two processes reading one ring would split or
repeat its records.
"""

from __future__ import annotations

import errno as _errno
import functools
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import TypeVar

from ..errors import ClosedError, StateError

SLICE_MS = 100

_R = TypeVar("_R")

_live: weakref.WeakSet[PollGuard] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for guard in list(_live):
        guard._reset_after_fork()


class PollGuard:
    """Serialises a buffer's C calls with its release; refuses re-entrant and inherited use."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.Lock()
        self._closing = False
        self._owner: int | None = None  # the thread inside a guarded call
        self._deferred: Callable[[], None] | None = None
        self._parent: int | None = None  # in a fork()ed child: the process it was made in
        _live.add(self)

    @property
    def closing(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closing

    @property
    def inherited(self) -> bool:
        """True in a child process that got this buffer through ``fork()``."""
        return self._parent is not None

    def _reset_after_fork(self) -> None:
        # (no getpid() on the hot path: a BPF program may be tracing this process's getpid)
        if self._parent is None:
            self._parent = os.getppid()
        if self._owner != threading.get_ident():
            # held (if at all) by a thread the child does not have
            self._lock = threading.Lock()
            self._owner = None
        # else: fork() was called from a callback; that call releases the lock as it returns

    def refuse_inherited(self) -> None:
        if self.inherited:
            raise StateError(_errno.EPERM,
                             f"this {self._what} was inherited through fork(); it belongs to "
                             f"process {self._parent}: close() it and create a new one here")

    def call(self, fn: Callable[[], _R]) -> _R:
        """Run one C call that does not block (or blocks one slice) under the guard."""
        if self._closing:
            raise ClosedError(self._what)
        self.refuse_inherited()
        me = threading.get_ident()
        if self._owner == me:
            raise StateError(_errno.EBUSY,
                             f"this {self._what} is being read by this thread already (a "
                             f"callback or decoder cannot poll, consume or read its own "
                             f"{self._what}: records would be delivered twice)")
        lock = self._lock
        lock.acquire()
        if self._closing:
            lock.release()
            raise ClosedError(self._what)
        self._owner = me
        try:
            return fn()
        finally:
            self._owner = None
            deferred, self._deferred = self._deferred, None
            lock.release()
            if deferred is not None:
                deferred()

    def read(self, fn: Callable[[], _R]) -> _R:
        """Run a call that only reads the buffer: under the guard, or directly from inside a
        guarded call of this thread (a callback), where the buffer cannot be freed."""
        if self._owner == threading.get_ident():
            return fn()
        return self.call(fn)

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
        """Run ``release`` once no C call is in flight (or after the current call, if called
        from inside it)."""
        self._closing = True
        if self._owner == threading.get_ident():
            self._deferred = release  # a callback closing its own buffer
            return
        with self._lock:
            release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

