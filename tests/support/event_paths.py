"""What the fast-path event tests share (their fixtures are in ``tests/events/conftest.py``):
which machines have rings read from Python, the perf producer's sample size, ways to make
samples, perf records as the kernel writes them."""

from __future__ import annotations

import os
import platform
import struct
import threading

from pylibbpf import Object
from pylibbpf.events import _perf_rings
from tests.support.ring_producer import seq_of

X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
"""Machines whose rings pylibbpf reads from Python (x86's ordering of plain loads and stores)."""

RAW_SIZE = 68
"""events_perf.bpf.c's 64-byte sample as the kernel stores it: padded so that the size field and
the data are 8-byte aligned."""


def sample_record(data: bytes, size: int | None = None) -> bytes:
    """A ``PERF_RECORD_SAMPLE`` holding ``data`` as a perf ring stores it (``size``: the record
    size, by default the smallest 8-byte multiple that holds it)."""
    raw = len(data)
    size = size or (12 + raw + 7) & ~7
    return struct.pack("<IHHI", _perf_rings.RECORD_SAMPLE, 0, size, raw) + data + bytes(
        size - 12 - raw)


def lost_record(count: int) -> bytes:
    """A ``PERF_RECORD_LOST`` reporting ``count`` lost samples."""
    return struct.pack("<IHHQQQ", _perf_rings.RECORD_LOST, 0, 32, 7, count, 0)


def calls(n: int) -> None:
    """``n`` samples of events_perf.bpf.c (one per ``getpid()`` of this process)."""
    for _ in range(n):
        os.getpid()



def thread_calls(obj: Object, n: int) -> None:
    """``n`` samples of events_perf.bpf.c loaded with ``tid=NO_THREAD``, from a thread of our
    own (so that the event loop's own getpid() calls make none)."""
    def run() -> None:
        obj.bss["target_tid"] = threading.get_native_id()
        calls(n)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


def assert_emitted(got: list[bytes], count: int, knobs: dict[str, int]) -> None:
    """``got`` is what ``emit(obj, ..., **knobs)`` wrote, ``count`` records in all: numbered in
    order, every third one missing with ``discard_every=3``, of the producer's lengths with
    ``variable=1``, each a ``bytes``."""
    seqs = [seq_of(d) for d in got]
    every = knobs.get("discard_every")
    assert seqs == [n for n in range(count) if not every or n % every != every - 1]
    if knobs.get("variable"):
        assert all(len(d) == 8 + (i % 7) * 8 + 1 for i, d in zip(seqs, got, strict=True))
    assert all(type(d) is bytes for d in got)
