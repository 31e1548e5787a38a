"""Drive ``events_ringbuf.bpf.c``'s producer: one ``BPF_PROG_TEST_RUN`` of the tc program
``emit`` with ``repeat=count`` writes ``count`` events (one per round), numbered by the BPF
side's global ``seq``.  Knobs (``discard_every``, ``variable``, ``target``, ``wakeup_flags``) are
zero-initialised BPF globals (``.bss``), set before the run."""

from __future__ import annotations

from pylibbpf import Object

PACKET = bytes(64)  # a tc test run needs at least an Ethernet header of input
KNOBS = ("discard_every", "variable", "target", "wakeup_flags")


def emit(obj: Object, count: int = 16, **knobs: int) -> None:
    """Write ``count`` events; knobs not given are reset to 0."""
    unknown = set(knobs) - set(KNOBS)
    if unknown:
        raise TypeError(f"unknown producer knobs: {sorted(unknown)}")
    for name in KNOBS:
        obj.bss[name] = knobs.get(name, 0)
    obj.programs["emit"].test_run(PACKET, repeat=count)
