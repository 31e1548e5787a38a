"""Threads: ring buffer polling while another thread closes things, concurrent map updates.
Every join is bounded, so a deadlock fails the test instead of hanging the suite; anything that
could crash the interpreter runs in a child process."""

from __future__ import annotations

import errno
import os
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import pylibbpf
from pylibbpf import BpfError, ClosedError, Map, MapType, Object, RingBuffer
from tests.support.bpfbuild import compile_bpf
from tests.support.hardening import run_python
from tests.support.repetition import rounds
from tests.support.ring_producer import emit

pytestmark = pytest.mark.kernel
JOIN = 20.0


def _start(target: object) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


def test_closing_the_object_while_its_ring_buffer_polls() -> None:
    """The buffer maps the ring itself: closing the object does not disturb a poller; records
    emitted before the close are all delivered; then the buffer closes cleanly."""
    obj = Object.open_file(compile_bpf("events_ringbuf.bpf.c"))
    obj.load()
    got: list[bytes] = []
    rb = RingBuffer(obj.maps["rb"], got.append)
    stop = threading.Event()
    errors: list[BaseException] = []

    def poll() -> None:
        try:
            while not stop.is_set():
                rb.poll(10)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    poller = _start(poll)
    for _ in range(10):
        emit(obj)  # 16 records each
    obj.close()
    deadline = time.monotonic() + JOIN  # generous: a loaded machine may starve the poller
    while len(got) < 160 and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    stop.set()
    poller.join(JOIN)
    assert not poller.is_alive(), "the poller did not stop"
    rb.close()
    assert not errors
    assert len(got) == 160


def _child(code: str) -> tuple[int, str]:
    # generous: a loaded machine (CI runs tiers side by side with other work) is much slower
    proc = run_python(["-c", textwrap.dedent(code)], timeout=600)
    return proc.returncode, proc.stdout + proc.stderr[-1500:]


# Child scripts: a loaded ring producer kept busy by a thread (``producer``; None in the idle
# variant), then the test's part, then FINISH.  A child stops and joins every thread it started
# before the interpreter exits: a daemon thread still running at shutdown can kill the process
# ("Fatal Python error: _enter_buffered_busy").  Where a thread hung (the test then fails on
# the printed outcome), FINISH leaves with os._exit after flushing, for the same reason.
BUSY_RING = """
    import os, sys, threading, time
    from tests.support.bpfbuild import compile_bpf
    from tests.support.ring_producer import produce_in_background
    import pylibbpf
    obj = pylibbpf.Object.open_file(compile_bpf("events_ringbuf.bpf.c"))
    obj.load()
    producer = produce_in_background(obj)
"""
IDLE_RING = BUSY_RING.replace("produce_in_background(obj)", "None")

FINISH = """
    if producer is not None:
        producer.stop()
    obj.close()
    sys.stdout.flush()
    if any(t.is_alive() for t in threading.enumerate() if t is not threading.main_thread()):
        sys.stderr.write("a thread is still running: leaving without interpreter shutdown\\n")
        sys.stderr.flush()
        os._exit(3)
"""

RING_CLOSE = """
    from collections import Counter
    outcomes = Counter()
    for _ in range({rounds}):
        rb = pylibbpf.RingBuffer(obj.maps["rb"], lambda data: None)
        out = []
        def poll():
            try:
                while True:
                    rb.poll({timeout})
            except pylibbpf.ClosedError:
                out.append("ClosedError")
            except BaseException as exc:
                out.append(type(exc).__name__)
        t = threading.Thread(target=poll, daemon=True)
        t.start()
        time.sleep(0.001)
        rb.close()
        t.join(60)
        outcomes["hung" if t.is_alive() else out[0]] += 1
    print(dict(outcomes))
"""
# Under software emulation (the VM tiers) each round is ~20x slower: fewer rounds there.
CLOSE_ROUNDS = rounds(300, 40)


def test_closing_a_ring_buffer_while_another_thread_polls_it() -> None:
    """Documented wish: the poller gets ClosedError at its next call, the process survives."""
    rc, out = _child(BUSY_RING + RING_CLOSE.format(rounds=CLOSE_ROUNDS, timeout=5) + FINISH)
    assert rc == 0, f"child died (exit {rc}): {out}"
    assert out.strip().startswith(f"{{'ClosedError': {CLOSE_ROUNDS}}}"), out


def test_closing_a_ring_buffer_wakes_a_poller_waiting_forever() -> None:
    rc, out = _child(IDLE_RING + RING_CLOSE.format(rounds=3, timeout=-1) + FINISH)
    assert rc == 0 and "hung" not in out, out


def test_concurrent_map_updates_from_several_threads() -> None:
    """Four threads, 2000 updates each, on one HASH map (own keys) and one ARRAY (own slots):
    every value lands; the per-thread value buffers are not shared."""
    threads, per_thread = 4, 2000
    with Map.create(MapType.HASH, 4, 8, threads * per_thread) as table, \
            Map.create(MapType.ARRAY, 4, 8, threads) as slots:
        errors: list[BaseException] = []
        barrier = threading.Barrier(threads)

        def work(n: int) -> None:
            try:
                barrier.wait(JOIN)
                for i in range(per_thread):
                    key = n * per_thread + i
                    table[key] = key * 3
                    slots[n] = i
                    assert int.from_bytes(table[key], "little") == key * 3
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        workers = [_start(lambda n=n: work(n)) for n in range(threads)]
        for w in workers:
            w.join(JOIN)
        assert not any(w.is_alive() for w in workers), "a worker deadlocked"
        assert not errors, errors[0]
        items = dict(table.items())
        assert len(items) == threads * per_thread
        assert all(int.from_bytes(v, "little") == int.from_bytes(k, "little") * 3
                   for k, v in items.items())
        assert [int.from_bytes(slots[n], "little") for n in range(threads)] == \
            [per_thread - 1] * threads


def _close_while_updating(rounds: int) -> tuple[Counter[str], int]:
    outcomes: Counter[str] = Counter()
    strays = 0
    for _ in range(rounds):
        victim = Map.create(MapType.ARRAY, 4, 8, 1)
        stop = threading.Event()

        def hammer(m: Map = victim, stop: threading.Event = stop) -> None:
            try:
                while not stop.is_set():
                    m[0] = 0xDEAD
                outcomes["stopped"] += 1
            except ClosedError:
                outcomes["ClosedError"] += 1
            except BpfError as exc:
                outcomes[f"errno {exc.errno}"] += 1

        workers = [_start(hammer) for _ in range(3)]
        threading.Event().wait(0.002)
        fd = victim.fd
        victim.close()
        with Map.create(MapType.ARRAY, 4, 8, 1) as successor:
            reused = successor.fd == fd
            stop.set()
            for w in workers:
                w.join(JOIN)
            assert not any(w.is_alive() for w in workers)
            with pytest.raises(ClosedError):
                victim[0] = 1
            if reused and int.from_bytes(successor[0], "little") == 0xDEAD:
                strays += 1
    return outcomes, strays


def test_closing_a_map_while_threads_update_it() -> None:
    """Workers see ClosedError (or EBADF when the close lands mid-call), never a crash."""
    outcomes, strays = _close_while_updating(30)
    assert set(outcomes) <= {"ClosedError", "stopped", f"errno {errno.EBADF}"}, outcomes
    print(f"\nclose-while-updating: {dict(outcomes)}; stray writes into a reused fd: {strays}")


def test_no_write_reaches_a_map_that_reused_the_closed_fd() -> None:
    _outcomes, strays = _close_while_updating(100)
    assert strays == 0, f"{strays} of 100 rounds wrote into the successor map"


def test_ring_buffer_and_map_traffic_together(tmp_path: Path) -> None:
    """A poller thread and two map-writer threads at once, for a bounded time; all stop."""
    with Object.open_file(compile_bpf("events_ringbuf.bpf.c")) as obj:
        obj.load()
        got: list[bytes] = []
        stop = threading.Event()
        with RingBuffer(obj.maps["rb"], got.append) as rb, \
                Map.create(MapType.HASH, 8, 8, 1024) as table:
            def poll() -> None:
                while not stop.is_set():
                    rb.poll(5)

            def write(base: int) -> None:
                i = 0
                while not stop.is_set():
                    table[base + i % 512] = i
                    i += 1

            workers = [_start(poll), _start(lambda: write(0)), _start(lambda: write(512))]
            for _ in range(20):
                emit(obj)
            threading.Event().wait(0.3)
            stop.set()
            for w in workers:
                w.join(JOIN)
            assert not any(w.is_alive() for w in workers)
            rb.consume()
        assert len(got) == 20 * 16
        assert os.getpid() > 0 and pylibbpf.num_possible_cpus() >= 1


# The poll's own timeout is POLL_S; a busy producer would keep it inside libbpf's loop beyond
# that.  close() ends it after the current slice (100 ms on an idle machine): the bound is half
# the poll timeout, generous for a loaded machine yet impossible without close() doing it.
POLL_S = 60
RING_BUSY_CLOSE = """
    seen = []
    def slow_consumer(data):
        seen.append(1)
        time.sleep(0.0005)
    rb = pylibbpf.RingBuffer(obj.maps["rb"], slow_consumer)
    result = []
    def poll():
        try:
            rb.poll({poll_ms})  # one call that a busy producer keeps inside libbpf's loop
            result.append("returned")
        except pylibbpf.ClosedError:
            result.append("ClosedError")
    t = threading.Thread(target=poll)
    t.start()
    while not seen and t.is_alive():  # the poll is consuming (however slowly we are run)
        time.sleep(0.01)
    time.sleep(0.3)
    started = time.monotonic()
    rb.close()
    t.join({join_s})
    print("hung" if t.is_alive() else result[0], len(seen) > 0,
          round(time.monotonic() - started, 2))
"""


def test_close_stops_a_poll_that_a_busy_producer_keeps_going() -> None:
    """libbpf consumes as long as records keep coming; close() must still end the poll."""
    script = RING_BUSY_CLOSE.format(poll_ms=POLL_S * 1000, join_s=POLL_S * 2)
    rc, out = _child(BUSY_RING + script + FINISH)
    state, saw_records, seconds = out.split()[:3]
    assert state == "ClosedError", out
    assert saw_records == "True"
    assert float(seconds) < POLL_S / 2, out
    assert rc == 0, out


# Interpreter exit while a daemon thread is inside a buffer's C call: weakref.finalize frees
# every unclosed handle at exit, and before the fix the perf buffer was freed under the
# polling thread (SIGSEGV in 5 of 5 runs).  The free now waits for the guard, as close() does.
EXIT_WHILE_POLLING = """
    import os, sys, threading, time
    from tests.support.bpfbuild import compile_bpf
    import pylibbpf
    obj = pylibbpf.Object.open_file(compile_bpf({source!r}))
    obj.load()
    {setup}
    def use():
        try:
            while True:
                {call}
        except pylibbpf.ClosedError:
            pass  # closed under it at exit: a thread that stops quietly, as a user's would
    threading.Thread(target=use, daemon=True).start()
    time.sleep(0.3)
    print("exiting", flush=True)
    raise SystemExit(7)
"""


@pytest.mark.parametrize(("source", "setup", "call"), [
    ("events_perf.bpf.c",
     "obj.bss['target_tgid'] = os.getpid(); link = obj.programs['on_getpid'].attach(); "
     "buf = pylibbpf.PerfBuffer(obj.maps['samples'], lambda cpu, d: None, page_count=8)",
     "buf.poll(1000); os.getpid()"),
    ("events_ringbuf.bpf.c", "buf = pylibbpf.RingBuffer(obj.maps['rb'], lambda d: None)",
     "buf.poll(1000)"),
], ids=["PerfBuffer", "RingBuffer"])
def test_interpreter_exit_while_a_daemon_thread_polls(source: str, setup: str,
                                                        call: str) -> None:
    rc, out = _child(EXIT_WHILE_POLLING.format(source=source, setup=setup, call=call))
    assert rc == 7, out  # the script's own exit status: no signal, no fatal error
    assert "exiting" in out and "Fatal Python error" not in out, out
