"""Drive ``events_ringbuf.bpf.c``'s producer: one ``BPF_PROG_TEST_RUN`` of the tc program
``emit`` with ``repeat=count`` writes ``count`` events (one per round), numbered by the BPF
side's global ``seq``.  Knobs (``discard_every``, ``variable``, ``target``, ``wakeup_flags``) are
zero-initialised BPF globals (``.bss``), set before the run.

:func:`traced_getpid` is the perf buffer's producer: ``events_perf.bpf.c`` emits one numbered
sample per ``getpid()`` call of this process."""

from __future__ import annotations

import contextlib
import os
import struct
import threading
from collections.abc import Iterator

from pylibbpf import Link, Object
from tests.support.bpfbuild import compile_bpf

PACKET = bytes(64)  # a tc test run needs at least an Ethernet header of input
KNOBS = ("discard_every", "variable", "target", "wakeup_flags")


@contextlib.contextmanager
def loaded_producer() -> Iterator[Object]:
    """``events_ringbuf.bpf.c``, compiled (cached), opened and loaded; closed on exit."""
    with Object.open_file(compile_bpf("events_ringbuf.bpf.c")) as obj:
        obj.load()
        yield obj


# a ``target_tid`` no thread has
NO_THREAD = 0xFFFFFFFF


@contextlib.contextmanager
def traced_getpid(*, this_thread_only: bool = False, tid: int | None = None
                  ) -> Iterator[tuple[Object, Link]]:
    """``events_perf.bpf.c`` loaded and attached: a sample per ``getpid()`` call of this
    process (of this thread only, if asked, or of thread ``tid``: :data:`NO_THREAD` counts
    none until the test sets ``target_tid``), with this thread pinned to CPU 0 meanwhile so
    that every sample lands in CPU 0's ring."""
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        with Object.open_file(compile_bpf("events_perf.bpf.c")) as obj:
            obj.load()
            obj.bss["target_tgid"] = os.getpid()
            if this_thread_only:
                obj.bss["target_tid"] = threading.get_native_id()
            elif tid is not None:
                obj.bss["target_tid"] = tid
            link = obj.programs["on_getpid"].attach()
            try:
                yield obj, link
            finally:
                link.destroy()
    finally:
        os.sched_setaffinity(0, cpus)


def seq_of(data: bytes) -> int:
    """The sequence number an event (ring record or perf sample) starts with."""
    return int(struct.unpack_from("<Q", data)[0])


def emit(obj: Object, count: int = 16, **knobs: int) -> None:
    """Write ``count`` events; knobs not given are reset to 0."""
    unknown = set(knobs) - set(KNOBS)
    if unknown:
        raise TypeError(f"unknown producer knobs: {sorted(unknown)}")
    for name in KNOBS:
        obj.bss[name] = knobs.get(name, 0)
    obj.programs["emit"].test_run(PACKET, repeat=count)


class BackgroundProducer:
    """A thread emitting batches of 16 events until :meth:`stop`, which joins it.

    The thread never writes to stderr: an exception it meets is kept and re-raised by
    :meth:`stop`.  (A daemon thread still writing while the interpreter exits kills the process
    with "Fatal Python error: _enter_buffered_busy".)
    """

    def __init__(self, obj: Object) -> None:
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self.batches = 0
        self._thread = threading.Thread(target=self._run, args=(obj,), daemon=True,
                                        name="ring-producer")
        self._thread.start()

    def _run(self, obj: Object) -> None:
        try:
            while not self._stop.is_set():
                emit(obj)
                self.batches += 1
        except BaseException as exc:  # noqa: BLE001 - re-raised by stop()
            self.error = exc

    def stop(self, timeout: float = 120.0) -> None:
        """Stop producing and wait for the thread (at most ``timeout`` s, generous: one batch
        is a single test run, but a loaded machine may not schedule us for a while)."""
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"the producer thread did not stop within {timeout} s")
        if self.error is not None:
            raise self.error


def produce_in_background(obj: Object) -> BackgroundProducer:
    """Emit batches of 16 events from a thread until ``.stop()`` (which joins it)."""
    return BackgroundProducer(obj)
