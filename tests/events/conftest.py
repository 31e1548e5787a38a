"""Fixtures of the event tests that run both consumers (the perf buffer's rings read from
Python where the machine allows it, or libbpf's ``perf_buffer__consume`` with a ctypes
callback), and the producers loaded for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pylibbpf import Object
from pylibbpf.events import perf
from tests.support.event_paths import X86
from tests.support.ring_producer import NO_THREAD, loaded_producer, traced_getpid


@pytest.fixture(params=["python", "libbpf"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which consumer the test's perf buffers use: ``"python"`` (x86 only; skipped elsewhere)
    or ``"libbpf"``."""
    if request.param == "libbpf":
        monkeypatch.setattr(perf, "_python_rings", lambda ptr, page_count: None)
    elif not X86:
        pytest.skip("the perf rings are read from Python on x86 only")
    return str(request.param)


@pytest.fixture
def traced(path: str) -> Iterator[Object]:
    """events_perf.bpf.c loaded and attached (a sample per ``getpid()``), for each ``path``."""
    with traced_getpid() as (obj, _link):
        yield obj


@pytest.fixture
def ring_producer() -> Iterator[Object]:
    """events_ringbuf.bpf.c loaded (its ``emit`` program writes numbered records)."""
    with loaded_producer() as obj:
        yield obj


@pytest.fixture
def traced_thread(path: str) -> Iterator[Object]:
    """events_perf.bpf.c tracing one thread only, none yet (``thread_calls`` picks it)."""
    with traced_getpid(tid=NO_THREAD) as (obj, _link):
        yield obj
