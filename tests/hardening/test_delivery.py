"""Exactly-once delivery: every way of reading a ring or perf buffer hands each record over once.

The BPF producers number their events 0..N-1 (``events_ringbuf.bpf.c``'s ``emit``, one per
round of a test run; ``events_perf.bpf.c``, one per ``getpid()``), so a test counts what arrived
and compares it with ``range(N)``: a record delivered twice or lost shows up as a difference.
The patterns that used to deliver twice (a callback reading its own buffer, a read while a
zero-copy batch is held) now raise :class:`StateError`; the tests check that, then drain the
buffer and count again.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from pylibbpf import (
    ClosedError,
    Link,
    NotSupportedError,
    Object,
    PerfBuffer,
    RingBuffer,
    StateError,
    _ffi,
)
from tests.support.ring_producer import emit, seq_of, traced_getpid

pytestmark = pytest.mark.kernel
JOIN = 30.0


def assert_once(seqs: list[int], count: int) -> None:
    """``seqs`` holds each of 0..count-1 exactly once."""
    repeated = {seq: n for seq, n in Counter(seqs).items() if n > 1}
    assert not repeated, f"delivered more than once: {repeated}"
    missing = set(range(count)) - set(seqs)
    assert not missing, f"never delivered: {sorted(missing)[:20]}"
    assert len(seqs) == count


def drain(rb: RingBuffer) -> None:
    while rb.consume():
        pass


# ------------------------------------------------------------------------ the documented ways

def read_by_poll(obj: Object, got: list[int]) -> None:
    with RingBuffer(obj.maps["rb"], lambda d: got.append(seq_of(d))) as rb:
        for _ in range(10):
            emit(obj, 100)
            rb.poll(1000)
        while rb.poll(0):
            pass


def read_by_consume(obj: Object, got: list[int]) -> None:
    with RingBuffer(obj.maps["rb"], lambda d: got.append(seq_of(d))) as rb:
        for _ in range(10):
            emit(obj, 100)
            rb.consume()


HAS_CONSUME_N = _ffi.has("ring_buffer__consume_n")


def read_by_consume_n(obj: Object, got: list[int]) -> None:
    with RingBuffer(obj.maps["rb"], lambda d: got.append(seq_of(d))) as rb:
        for _ in range(10):
            emit(obj, 100)
            if not HAS_CONSUME_N:  # libbpf < 1.5: refused before anything is read
                with pytest.raises(NotSupportedError, match="libbpf >= 1.5"):
                    rb.consume_n(7)
                rb.consume()
                continue
            while rb.consume_n(7):
                pass


def read_by_batch(obj: Object, got: list[int]) -> None:
    with RingBuffer(obj.maps["rb"]) as rb:
        for _ in range(10):
            emit(obj, 100)
            got.extend(seq_of(d) for d in rb.read_batch(max_events=37))
            got.extend(seq_of(d) for d in rb.read_batch())


def read_by_zero_copy_batch(obj: Object, got: list[int]) -> None:
    with RingBuffer(obj.maps["rb"]) as rb:
        for _ in range(10):
            emit(obj, 100)
            with rb.read_batch(max_events=60, copy=False) as batch:
                got.extend(seq_of(bytes(d)) for d in batch)
            with rb.read_batch(copy=False) as batch:
                got.extend(seq_of(bytes(batch.view(i))) for i in range(len(batch)))


def read_batches_and_callbacks_mixed(obj: Object, got: list[int]) -> None:
    with RingBuffer(obj.maps["rb"], lambda d: got.append(seq_of(d))) as rb:
        for round_ in range(10):
            emit(obj, 100)
            with rb.read_batch(max_events=round_ * 5, copy=round_ % 2 == 0) as batch:
                got.extend(seq_of(bytes(d)) for d in batch)
            rb.consume()


def read_by_events(obj: Object, got: list[int]) -> None:
    with RingBuffer(obj.maps["rb"], decode=seq_of) as rb:
        for _ in range(10):
            emit(obj, 100)
            got.extend(rb.events(1000))
        got.extend(rb.events(0))


def read_by_async_for(obj: Object, got: list[int]) -> None:
    async def main() -> None:
        with RingBuffer(obj.maps["rb"], decode=seq_of) as rb:
            loop = asyncio.get_running_loop()
            for i in range(10):
                loop.call_later(0.005 * i, emit, obj, 100)
            async for seq in rb:
                got.append(seq)
                if len(got) == 1000:
                    break
            assert rb.pending == 0 and rb.consume() == 0

    asyncio.run(asyncio.wait_for(main(), JOIN))


def read_several_rings(obj: Object, got: list[int]) -> None:
    """Two rings in one buffer, each with its callback; ring 1 partly read by batches."""
    with RingBuffer(obj.maps["rb"], lambda d: got.append(seq_of(d))) as rb:
        rb.add(obj.maps["rb2"], lambda d: got.append(seq_of(d)))
        for round_ in range(10):
            emit(obj, 50)
            emit(obj, 50, target=1)
            if round_ % 2:
                with rb.read_batch(ring="rb2", copy=round_ % 4 == 1) as batch:
                    got.extend(seq_of(bytes(d)) for d in batch)
            rb.poll(1000)
        drain(rb)


def read_by_two_threads(obj: Object, got: list[int]) -> None:
    """Two threads poll one buffer while records arrive: the guard serialises them."""
    lock = threading.Lock()

    def record(data: bytes) -> None:
        with lock:
            got.append(seq_of(data))

    with RingBuffer(obj.maps["rb"], record) as rb:
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                rb.poll(10)

        threads = [threading.Thread(target=poll, daemon=True) for _ in range(2)]
        for thread in threads:
            thread.start()
        for _ in range(10):
            emit(obj, 100)
        stop.set()
        for thread in threads:
            thread.join(JOIN)
        assert not any(thread.is_alive() for thread in threads)
        drain(rb)


@pytest.mark.parametrize("read", [
    read_by_poll, read_by_consume, read_by_consume_n, read_by_batch, read_by_zero_copy_batch,
    read_batches_and_callbacks_mixed, read_by_events, read_by_async_for, read_several_rings,
    read_by_two_threads,
], ids=lambda f: f.__name__)
def test_ring_buffer_delivers_each_record_once(producer: Object,
                                               read: Callable[[Object, list[int]], None]) -> None:
    got: list[int] = []
    read(producer, got)
    assert_once(got, 1000)
    assert producer.bss.get_int("dropped") == 0


# ------------------------------------------------------------------------ refused re-entrance

def _reenter(rb: RingBuffer, how: str) -> None:
    if how == "consume":
        rb.consume()
    elif how == "poll":
        rb.poll(0)
    elif how == "consume_n":
        rb.consume_n(1)
    elif how == "read_batch":
        rb.read_batch()
    else:
        list(rb.read_batch(ring=1, copy=False))


@pytest.mark.parametrize("how", ["consume", "poll", "consume_n", "read_batch",
                                 "read_batch of another ring"])
def test_callback_reading_its_own_buffer_is_refused(producer: Object, how: str) -> None:
    """The callback gets StateError; uncaught, it ends the poll like any callback exception;
    the records stay in the ring for the next read."""
    refused: type[Exception] = StateError
    if how == "consume_n" and not HAS_CONSUME_N:
        refused = NotSupportedError
    got: list[int] = []

    def callback(data: bytes) -> None:
        got.append(seq_of(data))
        if len(got) == 2:
            _reenter(rb, how)

    with RingBuffer(producer.maps["rb"], callback) as rb:
        rb.add(producer.maps["rb2"], callback)
        emit(producer, 8)
        with pytest.raises(refused) as info:
            rb.poll(1000)
        if isinstance(info.value, StateError):
            assert info.value.errno == errno.EBUSY
            assert "being read by this thread" in str(info.value)
        assert got == [0, 1]
        drain(rb)
    assert_once(got, 8)


def test_decoder_reading_its_own_buffer_is_refused(producer: Object) -> None:
    def decode(data: bytes) -> int:
        rb.consume()
        return seq_of(data)

    with RingBuffer(producer.maps["rb"], decode=decode) as rb:
        emit(producer, 3)
        with pytest.raises(StateError):
            list(rb.events(0))


def test_other_buffers_can_be_read_from_a_callback(producer: Object) -> None:
    """Only a buffer's own reads are refused: a callback may drain another buffer."""
    inner: list[int] = []
    outer: list[int] = []
    with RingBuffer(producer.maps["rb2"], lambda d: inner.append(seq_of(d))) as other:
        def callback(data: bytes) -> None:
            outer.append(seq_of(data))
            other.consume()

        with RingBuffer(producer.maps["rb"], callback) as rb:
            emit(producer, 5, target=1)
            emit(producer, 5)
            assert rb.consume() == 5
    assert inner == list(range(5)) and outer == list(range(5, 10))


# ------------------------------------------------------------------------ held zero-copy batches

@pytest.mark.parametrize("how", ["consume", "poll", "consume_n", "events", "read_batch"])
def test_reads_while_a_zero_copy_batch_is_held_are_refused(producer: Object, how: str) -> None:
    if how == "consume_n" and not HAS_CONSUME_N:
        how = "consume"  # libbpf < 1.5 has no consume_n (NotSupportedError, tested above)
    got: list[int] = []
    queue_mode = how == "events"
    rb = RingBuffer(producer.maps["rb"], None if queue_mode else lambda d: got.append(seq_of(d)))
    with rb:
        emit(producer, 4)
        batch = rb.read_batch(copy=False)
        got.extend(seq_of(bytes(d)) for d in batch)
        emit(producer, 4)
        with pytest.raises(StateError, match="not released") as info:
            if how == "consume":
                rb.consume()
            elif how == "poll":
                rb.poll(100)
            elif how == "consume_n":
                rb.consume_n(10)
            elif how == "events":
                list(rb.events(0))
            else:
                rb.read_batch()
        assert info.value.errno == errno.EBUSY
        batch.release()
        if queue_mode:
            got.extend(seq_of(d) for d in rb.events(0))
        else:
            drain(rb)
    assert_once(got, 8)


def test_async_for_refuses_while_a_batch_is_held(producer: Object) -> None:
    async def main() -> list[int]:
        got: list[int] = []
        with RingBuffer(producer.maps["rb"], decode=seq_of) as rb:
            emit(producer, 4)
            batch = rb.read_batch(copy=False)
            got.extend(seq_of(bytes(d)) for d in batch)
            emit(producer, 4)
            with pytest.raises(StateError):
                async for seq in rb:
                    got.append(seq)
            batch.release()
            async for seq in rb:
                got.append(seq)
                if len(got) == 8:
                    break
        return got

    assert_once(asyncio.run(asyncio.wait_for(main(), JOIN)), 8)


# ------------------------------------------------------------------------ racing close()

@pytest.mark.parametrize("copy", [True, False], ids=["copy", "zero-copy"])
def test_read_batch_racing_close_raises_closed_error(producer: Object, copy: bool) -> None:
    """A reader thread and a closing thread: the reader sees records or ClosedError, never a
    released memoryview's ValueError or an EBADF BpfError; what it read was read once."""
    outcomes: Counter[str] = Counter()
    for _ in range(30):
        got: list[int] = []
        rb = RingBuffer(producer.maps["rb"])
        emit(producer, 200)
        started = threading.Event()

        def read(rb: RingBuffer = rb, got: list[int] = got,
                 started: threading.Event = started) -> None:
            try:
                while True:
                    started.set()
                    with rb.read_batch(max_events=3, copy=copy) as batch:
                        got.extend(seq_of(bytes(d)) for d in batch)
            except ClosedError:
                outcomes["ClosedError"] += 1
            except BaseException as exc:  # noqa: BLE001 - reported below
                outcomes[f"{type(exc).__name__}: {exc}"] += 1

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        started.wait(JOIN)
        rb.close()
        thread.join(JOIN)
        assert not thread.is_alive()
        assert len(got) == len(set(got)) and set(got) <= set(range(200))
        # what the reader did not get is still in the ring for the next reader
        with RingBuffer(producer.maps["rb"], decode=seq_of) as again:
            rest = list(again.events(0))
        if copy:
            assert_once(got + rest, 200)
        else:  # a batch invalidated by close() was not released: its records are read again
            assert set(got) | set(rest) == set(range(200))
        producer.bss["seq"] = 0
    assert set(outcomes) == {"ClosedError"}, outcomes


# ------------------------------------------------------------------------ perf buffers

@pytest.fixture
def traced() -> Iterator[tuple[Object, Link]]:
    with traced_getpid(this_thread_only=True) as pair:
        yield pair


def calls(n: int) -> None:
    for _ in range(n):
        os.getpid()


def perf_by_poll(pb: PerfBuffer, got: list[int]) -> None:
    for _ in range(5):
        calls(100)
        pb.poll(1000)
    while pb.poll(0):
        pass


def perf_by_consume(pb: PerfBuffer, got: list[int]) -> None:
    for _ in range(5):
        calls(100)
        pb.consume()


def perf_by_consume_buffer(pb: PerfBuffer, got: list[int]) -> None:
    for _ in range(5):
        calls(100)
        for index in range(pb.buffer_count):
            pb.consume_buffer(index)


@pytest.mark.parametrize("read", [perf_by_poll, perf_by_consume, perf_by_consume_buffer],
                         ids=lambda f: f.__name__)
def test_perf_buffer_delivers_each_sample_once(traced: tuple[Object, Link],
                                               read: Callable[[PerfBuffer, list[int]], None]
                                               ) -> None:
    obj, _link = traced
    got: list[int] = []
    with PerfBuffer(obj.maps["samples"], lambda cpu, d: got.append(seq_of(d)),
                    lambda cpu, n: None) as pb:
        read(pb, got)
        assert pb.lost == 0
    assert_once(got, 500)


def calls_in_thread(obj: Object, n: int) -> None:
    """``n`` traced calls from a thread of their own (asyncio calls getpid() too)."""
    def run() -> None:
        obj.bss["target_tid"] = threading.get_native_id()
        calls(n)
        obj.bss["target_tid"] = 0xFFFFFFFF  # nobody
    thread = threading.Thread(target=run)
    thread.start()
    thread.join(JOIN)


def test_perf_buffer_events_and_async_for(traced: tuple[Object, Link]) -> None:
    obj, _link = traced
    obj.bss["target_tid"] = 0xFFFFFFFF
    got: list[int] = []
    with PerfBuffer(obj.maps["samples"], None, lambda cpu, n: None, decode=seq_of) as pb:
        calls_in_thread(obj, 200)
        got.extend(sample.data for sample in pb.events(1000))

        async def main() -> None:
            asyncio.get_running_loop().call_later(0.01, calls_in_thread, obj, 300)
            async for sample in pb:
                got.append(sample.data)
                if len(got) == 500:
                    break

        asyncio.run(asyncio.wait_for(main(), JOIN))
        assert list(pb.events(0)) == []
    assert_once(got, 500)


@pytest.mark.parametrize("how", ["consume", "poll", "consume_buffer"])
def test_perf_callback_reading_its_own_buffer_is_refused(traced: tuple[Object, Link],
                                                         how: str) -> None:
    obj, _link = traced
    got: list[int] = []

    def sample(cpu: int, data: bytes) -> None:
        got.append(seq_of(data))
        if len(got) == 2:
            if how == "consume":
                pb.consume()
            elif how == "poll":
                pb.poll(0)
            else:
                pb.consume_buffer(0)

    with PerfBuffer(obj.maps["samples"], sample, lambda cpu, n: None) as pb:
        calls(10)
        with pytest.raises(StateError, match="being read by this thread"):
            pb.poll(1000)
        assert got[:2] == [0, 1]
        pb.consume()  # the samples libbpf read after the refusal come first
    assert_once(got, 10)


def test_perf_callback_reading_during_the_backlog_is_refused(traced: tuple[Object, Link]
                                                              ) -> None:
    """The backlog (samples libbpf read after a callback raised) is handed over under the
    same rule: a callback reading its own buffer meanwhile is refused."""
    obj, _link = traced
    got: list[int] = []
    reenter = [False]

    def sample(cpu: int, data: bytes) -> None:
        got.append(seq_of(data))
        if len(got) == 2:
            raise KeyError("first")
        if reenter[0]:
            reenter[0] = False
            pb.consume()

    with PerfBuffer(obj.maps["samples"], sample, lambda cpu, n: None) as pb:
        calls(10)
        with pytest.raises(KeyError):
            pb.poll(1000)
        reenter[0] = True
        with pytest.raises(StateError):
            pb.consume()
        pb.consume()
    assert_once(got, 10)
