"""A test-only tracer of pylibbpf's resources, in the spirit of cilium/ebpf's fd tracer.

It wraps, by monkeypatching (no change to the library), the points where pylibbpf takes
ownership of a C resource or an fd: ``Handle._own`` (objects, maps, links, ring/perf buffers, tc
and perf-event attachments) and ``close_fd`` (standalone maps).  Each owned resource records
where it was created (the first frames outside pylibbpf) and its fd when it has one.  When the
garbage collector releases one (``_handle._release_on_gc``) instead of ``close()``/context exit,
the tracer records that, still releases it, and the test fails naming the creation site.

Used two ways:

* ``tests/hardening/conftest.py`` applies it to every hardening test (autouse fixture);
* for the whole suite: ``python -m pytest -p tests.support.fdtracer`` (a plugin): every test
  that lets the garbage collector close a handle fails, except those listed in
  ``EXPECTED_GC_CLOSES`` (tests of the finalizer itself).
"""

from __future__ import annotations

import gc
import os
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import pylibbpf

# Tests that leak a handle on purpose to check the finalizer's warning.
EXPECTED_GC_CLOSES = frozenset({"test_garbage_collected_handles_warn"})

_PACKAGE = os.path.abspath(pylibbpf.__path__[0])


@dataclass
class Record:
    """One owned resource: what it is, its fd (or -1) and where it was created."""

    kind: str
    description: str
    fd: int
    site: list[str]
    gc_closed: bool = False

    def __str__(self) -> str:
        fd = f" fd {self.fd}" if self.fd >= 0 else ""
        return f"{self.kind} ({self.description}){fd}, created at:\n    " + "\n    ".join(
            self.site)


def _creation_site() -> list[str]:
    frames = traceback.extract_stack()[:-3]
    outside = [f for f in frames if not os.path.abspath(f.filename).startswith(_PACKAGE)
               and "fdtracer" not in f.filename and "/_pytest/" not in f.filename
               and "/pluggy/" not in f.filename]
    return [f"{f.filename}:{f.lineno} in {f.name}: {f.line}" for f in outside[-3:]]


class _TracedRelease:
    """The release function handed to ``weakref.finalize``, tagged with its record."""

    __slots__ = ("release", "record", "tracer")

    def __init__(self, release: Callable[[], None], record: Record, tracer: FdTracer) -> None:
        self.release = release
        self.record = record
        self.tracer = tracer

    def __call__(self) -> None:
        self.tracer.live.pop(id(self.record), None)
        self.release()


@dataclass
class FdTracer:
    """Records every resource pylibbpf owns while installed."""

    live: dict[int, Record] = field(default_factory=dict)
    gc_closed: list[Record] = field(default_factory=list)
    created: int = 0
    warn: bool = True  # keep the library's ResourceWarning (plugin mode) or let the tracer
    # alone report it (hardening tests: the warning would be an unraisable-exception error)

    def install(self, patch: Callable[[Any, str, Any], None]) -> None:
        """Install with ``patch(owner, name, value)`` (``monkeypatch.setattr`` or a plain
        setattr for the whole session)."""
        from pylibbpf import _handle

        original_own = _handle.Handle._own
        original_close_fd = _handle.close_fd
        tracer = self

        def close_fd(fd: int) -> Callable[[], None]:
            release = original_close_fd(fd)
            release.traced_fd = fd  # type: ignore[attr-defined]
            return release

        def own(handle: Any, release: Callable[[], None], description: str,
                on_gc: Callable[[], None] | None = None) -> None:
            owner_slot = getattr(release, "__self__", None)  # a standalone map's _FdSlot
            fd = getattr(release, "traced_fd", getattr(owner_slot, "fd", -1))
            if fd < 0 and type(handle).__name__ == "Link" and handle._ptr:
                from pylibbpf import _ffi

                fd = int(_ffi.lib().bpf_link__fd(handle._ptr))
            record = Record(type(handle).__name__, description, fd, _creation_site())
            tracer.live[id(record)] = record
            tracer.created += 1
            original_own(handle, _TracedRelease(release, record, tracer), description,
                         None if on_gc is None else _TracedRelease(on_gc, record, tracer))

        def release_on_gc(release: Callable[[], None], description: str) -> None:
            try:
                if isinstance(release, _TracedRelease):
                    release.record.gc_closed = True
                    tracer.gc_closed.append(release.record)
                if tracer.warn:
                    warnings.warn(f"{description} was not closed; closing it in the garbage "
                                  "collector", ResourceWarning, stacklevel=1)
            finally:
                release()  # the resource is freed even when warnings are errors

        patch(_handle.Handle, "_own", own)
        patch(_handle, "close_fd", close_fd)
        patch(_handle, "_release_on_gc", release_on_gc)

    def collect(self) -> list[Record]:
        """Run the garbage collector; return (and forget) what it had to close."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        found, self.gc_closed = self.gc_closed, []
        return found


def report(records: list[Record]) -> str:
    """The failure message for handles the garbage collector closed."""
    return (f"{len(records)} handle(s) closed by the garbage collector instead of close() or "
            "a with block:\n" + "\n".join(f"  - {r}" for r in records))


# ------------------------------------------------------------------------------ plugin mode

_SESSION: FdTracer | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Plugin mode (``-p tests.support.fdtracer``): trace the whole session."""
    global _SESSION
    if _SESSION is None:
        _SESSION = FdTracer()
        _SESSION.install(setattr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Plugin mode: fail a test after which the garbage collector closed a handle."""
    result = yield
    if _SESSION is not None:
        leaked = _SESSION.collect()
        if leaked and item.name.split("[")[0] not in EXPECTED_GC_CLOSES:
            pytest.fail(report(leaked), pytrace=False)
    return result
