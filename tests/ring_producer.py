"""Drive ``events_ringbuf.bpf.c``'s producer: one ``BPF_PROG_TEST_RUN`` of the tc program
``emit`` with ``repeat=count`` writes ``count`` events (one per round), numbered by the BPF
side's global ``seq``.  Knobs (``discard_every``, ``variable``, ``target``, ``wakeup_flags``) are
zero-initialised BPF globals (``.bss``), set before the run."""

from __future__ import annotations

import contextlib
import struct
import threading
from collections.abc import Iterator

from bpfbuild import compile_bpf

from pylibbpf import Object

PACKET = bytes(64)  # a tc test run needs at least an Ethernet header of input
KNOBS = ("discard_every", "variable", "target", "wakeup_flags")


@contextlib.contextmanager
def loaded_producer() -> Iterator[Object]:
    """``events_ringbuf.bpf.c``, compiled (cached), opened and loaded; closed on exit."""
    with Object.open_file(compile_bpf("events_ringbuf.bpf.c")) as obj:
        obj.load()
        yield obj


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


def produce_in_background(obj: Object) -> threading.Event:
    """Emit batches of 16 events from a daemon thread until the returned event is set."""
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set():
            emit(obj)

    threading.Thread(target=produce, daemon=True).start()
    return stop
