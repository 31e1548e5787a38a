"""The base of every object that owns a C resource or a file descriptor.

``close()`` is idempotent and releases the resource at once; ``weakref.finalize`` releases it if
the owner is garbage-collected first, and then emits a ``ResourceWarning`` naming what leaked.
Once closed, :meth:`Handle._check` raises :class:`~pylibbpf.errors.ClosedError`, so no method
can hand a freed pointer or a stale fd to C.
"""

from __future__ import annotations

import os
import warnings
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import ClosedError


def _release_on_gc(release: Callable[[], None], description: str) -> None:
    try:
        warnings.warn(f"{description} was not closed; closing it in the garbage collector",
                      ResourceWarning, stacklevel=1)
    finally:
        release()  # even when warnings are errors (python -W error, pytest's filterwarnings)


_H = TypeVar("_H", bound="Handle")


class Handle:
    """Owns one releasable resource; context manager; ``close()``/``closed``."""

    _what = "handle"

    def __init__(self) -> None:
        self._closed = False
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def _own(self, release: Callable[[], None], description: str,
             on_gc: Callable[[], None] | None = None) -> None:
        """Register ``release`` to run on close, or on garbage collection with a warning.

        ``on_gc``, if given, runs instead of ``release`` when the garbage collector or the
        interpreter's exit releases the handle: ``weakref.finalize`` also runs at exit, while
        a daemon thread may still be inside a C call on the resource, so a buffer that
        serialises its C calls passes the serialised form here.  Neither may refer to ``self``
        (that would keep the handle alive forever).
        """
        self._release = release
        self._finalizer = weakref.finalize(self, _release_on_gc, on_gc or release, description)

    def _check(self) -> None:
        if self._closed:
            raise ClosedError(self._what)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    def close(self) -> None:
        """Release the resource now.  Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        finalizer = self._finalizer
        if finalizer is not None and finalizer.detach() is not None:
            self._release()

    def __enter__(self: _H) -> _H:
        self._check()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def close_fd(fd: int) -> Callable[[], None]:
    """A release function that closes ``fd`` once."""

    def release() -> None:
        try:
            os.close(fd)
        except OSError:
            pass

    return release
