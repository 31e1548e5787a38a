"""The base of every object that owns a C resource or a file descriptor.

``close()`` is idempotent and releases the resource at once; a weak reference releases it if
the owner is garbage-collected first, and then emits a ``ResourceWarning`` naming what leaked;
what is still unreleased at interpreter exit is released then, newest first (as
``weakref.finalize`` does, at a third of its cost per handle).
Once closed, :meth:`Handle._check` raises :class:`~pylibbpf.errors.ClosedError`, so no method
can hand a freed pointer or a stale fd to C.

Whether a handle is still open is kept in one place, its :class:`Lifetime`.  The lifetime is
also the one interface between an owner and what borrows from it (an object's programs, maps,
global views and USDT links): they are given the object's lifetime and ask it, instead of
reaching into the object, and the object's ``close()`` reaches them only through the callbacks
they registered with :meth:`Lifetime.on_close`.
"""

from __future__ import annotations

import atexit
import errno as _errno
import gc
import os
import sys
import warnings
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import ClosedError, StateError


def _release_on_gc(release: Callable[[], None], description: str) -> None:
    try:
        warnings.warn(f"{description} was not closed; closing it in the garbage collector",
                      ResourceWarning, stacklevel=1)
    finally:
        release()  # even when warnings are errors (python -W error, pytest's filterwarnings)


# The handles not yet released, by the id of the weak reference each one's owner holds: the
# reference, what releases it on collection or at exit, and what it is.  ``dict.pop`` is one
# step under the GIL, so of close() and the collector (or the exit) exactly one takes an
# entry and releases it.
_Pending = tuple["weakref.ref[Any]", Callable[[], None], str]
_pending: dict[int, _Pending] = {}
_shutdown = False  # set at exit: a collection after it releases nothing (as weakref.finalize)


def _collected(ref: weakref.ref[Any]) -> None:
    entry = _pending.pop(id(ref), None)
    if entry is not None and not _shutdown:
        _release_on_gc(entry[1], entry[2])


def _release_at_exit() -> None:
    """Release, newest first, every handle still open (as ``weakref.finalize`` does at exit:
    what borrows from an object is made after it and goes first)."""
    global _shutdown
    reenable_gc = gc.isenabled()
    gc.disable()  # no collection may release an entry meanwhile
    try:
        while _pending:  # a release may open (and leave) another handle
            for key in reversed(list(_pending)):
                entry = _pending.pop(key, None)
                if entry is not None:
                    try:
                        _release_on_gc(entry[1], entry[2])
                    except Exception:  # noqa: BLE001 - report and go on, as finalize does
                        sys.excepthook(*sys.exc_info())
    finally:
        _shutdown = True
        if reenable_gc:
            gc.enable()


atexit.register(_release_at_exit)


_H = TypeVar("_H", bound="Handle")


class Lifetime:
    """Whether a resource is open (and, for an object, prepared or loaded), shared with what
    borrows from it.

    ``check()`` raises :class:`~pylibbpf.errors.ClosedError` once closed; the ``require_*``
    methods add the object's state (:class:`~pylibbpf.errors.StateError`).  An object is
    *opened*, then *prepared* (libbpf >= 1.6's ``bpf_object__prepare``: its maps exist, its
    programs are not loaded yet), then *loaded*; ``prepare`` may be skipped, ``load`` does both.
    ``on_close`` registers what a borrower must do when the owner closes (drop a cache, unmap a
    view, destroy a link); ``close()`` runs those callbacks once, in registration order.
    """

    __slots__ = ("what", "name", "closed", "prepared", "loaded", "_closers", "__weakref__")

    def __init__(self, what: str, name: str = "") -> None:
        self.what = what          # "BPF object", "BPF link": the subject of ClosedError
        self.name = name          # the object's name, for StateError messages
        self.closed = False
        self.prepared = False     # the maps exist (prepare() or load() made them)
        self.loaded = False
        self._closers: list[Callable[[], Any]] = []

    def check(self) -> None:
        """Raise :class:`~pylibbpf.errors.ClosedError` if the owner is closed."""
        if self.closed:
            raise ClosedError(self.what)

    @property
    def state(self) -> str:
        """``"opened"``, ``"prepared"`` or ``"loaded"`` (what the messages say)."""
        return "loaded" if self.loaded else "prepared" if self.prepared else "opened"

    def require_open(self, what: str) -> None:
        """Raise unless the owner is open and not yet loaded (program setters: libbpf accepts
        them until load, prepared or not)."""
        self.check()
        if self.loaded:
            raise StateError(_errno.EBUSY, f"{what} can only be changed before load(); "
                             f"object {self.name!r} is already loaded")

    def require_no_maps(self, what: str) -> None:
        """Raise unless the object's maps are not created yet (map setters, initial values):
        ``prepare()`` and ``load()`` create them."""
        self.check()
        if self.prepared or self.loaded:
            raise StateError(_errno.EBUSY, f"{what} can only be changed before load() (and "
                             f"before prepare(), which creates the maps); object "
                             f"{self.name!r} is already {self.state}")

    def require_maps(self, what: str) -> None:
        """Raise unless the object's maps exist (after ``prepare()`` or ``load()``)."""
        self.check()
        if not (self.prepared or self.loaded):
            raise StateError(_errno.EINVAL, f"{what} needs the object's maps, which "
                             f"prepare() or load() creates; call one of them on "
                             f"{self.name!r} first")

    def require_loaded(self, what: str) -> None:
        """Raise unless the owner is open and loaded."""
        self.check()
        if not self.loaded:
            detail = (" (it is only prepared: its maps exist, its programs are not loaded)"
                      if self.prepared else "")
            raise StateError(_errno.EINVAL, f"{what} needs the object to be loaded; "
                             f"call load() on {self.name!r} first{detail}")

    def on_close(self, callback: Callable[[], Any], *, weak: bool = False) -> None:
        """Run ``callback`` when the owner closes.  ``weak=True`` (a bound method only) does not
        keep the method's object alive: a borrower the owner must not keep alive (a link)
        registers that way, and is skipped if it is gone by then."""
        if weak:
            ref = weakref.WeakMethod(callback)

            def call_if_alive() -> None:
                method = ref()
                if method is not None:
                    method()

            self._closers.append(call_if_alive)
        else:
            self._closers.append(callback)

    def close(self) -> None:
        """Mark the owner closed after running the borrowers' callbacks (each once)."""
        if self.closed:
            return
        if not self._closers:  # nothing borrowed from the owner (an open + load + close)
            self.closed = True
            return
        closers, self._closers = self._closers, []
        try:
            for callback in closers:
                callback()
        finally:
            self.closed = True


class Handle:
    """Owns one releasable resource; context manager; ``close()``/``closed``."""

    _what = "handle"

    def __init__(self) -> None:
        self._life = Lifetime(self._what)
        # The weak reference whose id keys the handle's entry in _pending (held here, so that
        # no other handle's reference can take that id while this handle lives).
        self._finalizer: weakref.ref[Any] | None = None

    def _own(self, release: Callable[[], None], description: str,
             on_gc: Callable[[], None] | None = None) -> None:
        """Register ``release`` to run on close, or on garbage collection with a warning.

        ``on_gc``, if given, runs instead of ``release`` when the garbage collector or the
        interpreter's exit releases the handle: the exit releases what is still open while
        a daemon thread may still be inside a C call on the resource, so a buffer that
        serialises its C calls passes the serialised form here.  Neither may refer to ``self``
        (that would keep the handle alive forever).
        """
        self._release = release
        ref = weakref.ref(self, _collected)
        _pending[id(ref)] = (ref, on_gc or release, description)
        self._finalizer = ref

    def _check(self) -> None:
        if self._life.closed:
            raise ClosedError(self._what)

    @property
    def _closed(self) -> bool:
        return self._life.closed

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._life.closed

    def close(self) -> None:
        """Release the resource now (after the borrowers' close callbacks).  Calling it again
        does nothing."""
        if self._life.closed:
            return
        self._life.close()
        ref = self._finalizer
        if ref is not None:
            # dropped, so that the reference dies first and the collection of the handle
            # calls nothing (another thread's close() that read it still holds it: no id reuse)
            self._finalizer = None
            if _pending.pop(id(ref), None) is not None:
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
