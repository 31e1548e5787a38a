"""Events read from Python, typed runs and lazy queues: samples of a flat type decoded a run at a
time (one ``iter_unpack``, the codec's ``build`` per sample) give exactly what the codec gives
for each sample's bytes; queue mode keeps each ring's copy and makes the records as they are
taken, in order, with nothing lost across partial reads, batches, wake-ups and cancellation;
ring buffer callbacks fed from the rings' memory behave as libbpf's consumer does (every such
test runs on both paths)."""

from __future__ import annotations

import asyncio
import gc
import struct
import threading
from typing import Any

import pytest

from pylibbpf import ClosedError, Object, PerfBuffer, PerfSample, RingBuffer
from pylibbpf.elf.codec import codec
from pylibbpf.events import _perf_rings, perf
from pylibbpf.typed import decoder
from pylibbpf.typesource import Types
from tests.support.event_paths import (
    RAW_SIZE,
    X86,
    assert_emitted,
    calls,
    sample_record,
    thread_calls,
)
from tests.support.ring_producer import emit, seq_of

SAMPLE_TYPE = "struct perf_sample"  # tests/bpf/events_perf.bpf.c
SAMPLE_C = "struct perf_sample { __u64 seq; __u32 cpu; __u32 pad; char payload[48]; };"





def typed(obj: Object) -> tuple[Any, int]:
    """The codec of events_perf.bpf.c's samples (a flat type), and the number of the next
    sample (making the codec may call getpid())."""
    return decoder(obj, SAMPLE_TYPE, source=SAMPLE_C), obj.bss.get_int("seq")


def expected(c: Any, n: int) -> Any:
    """What the generic codec makes of sample ``n`` of events_perf.bpf.c."""
    raw = struct.pack("<QII48s", n, 0, 0, b"p") + bytes(RAW_SIZE - 64)
    return c._decode_generic(raw, 0)


# --------------------------------------------------------------------------- no kernel


def test_typed_runs_equal_the_codec_per_sample() -> None:
    c = codec(Types.from_c("enum kind { A = 1, B = 7 };"
                           "struct ev { unsigned long long seq; enum kind kind; char name[6];"
                           " short arr[3]; double d; };").btf, "struct ev")
    assert c.flat is not None
    one = struct.Struct("=QI6s3hd")
    assert one.size == c.size
    datas = [one.pack(n, (1, 7, 3)[n % 3], b"ev%d" % n, n, -n, 2, n / 3) for n in range(7)]
    short = datas[0][:-8]  # shorter than the type: no typed layout, the codec per sample
    chunk = (b"".join(map(sample_record, datas)) + sample_record(short)
             + b"".join(map(sample_record, datas[:2])))
    runs, lost = _perf_rings.cut(chunk)
    assert lost == 0 and [count for _pos, count, _size, _raw in runs] == [7, 1, 2]
    got = []
    for pos, count, size, raw in runs:
        layout = _perf_rings.typed_layout(c.flat.struct, size, raw)
        if raw < c.size:
            assert layout is None
            continue
        assert layout is not None
        data = _perf_rings.records(chunk, pos, count * size)
        got += [c.flat.build(t) for t in layout.iter_unpack(data)]
    want = [c._decode_generic(d, 0) for d in datas + datas[:2]]
    assert got == want
    assert [type(v["kind"]) for v in got] == [type(v["kind"]) for v in want]


def test_rest_after_a_stop_mid_run() -> None:
    datas = [bytes([n]) * 20 for n in range(6)]
    other = [bytes([n]) * 36 for n in range(2)]
    chunk = b"".join(map(sample_record, datas)) + b"".join(map(sample_record, other))
    runs, _lost = _perf_rings.cut(chunk)
    assert list(_perf_rings.rest(chunk, runs, 0, 2)) == datas[4:] + other
    assert list(_perf_rings.rest(chunk, runs, 0, 0)) == other
    assert list(_perf_rings.rest(chunk, runs, 1, 1)) == other[1:]


# --------------------------------------------------------------------------- typed samples


@pytest.mark.kernel
def test_typed_callback_values_equal_the_generic_codec(traced: Object, path: str) -> None:
    got: list[tuple[int, Any]] = []
    c, first = typed(traced)
    with PerfBuffer(traced.maps["samples"], lambda cpu, v: got.append((cpu, v)),
                    decode=c) as pb:
        assert pb._flat is not None
        calls(25)
        pb.consume()
    assert got == [(0, expected(c, first + n)) for n in range(25)]


@pytest.mark.kernel
def test_typed_callback_exception_keeps_the_rest_decoded(traced: Object, path: str) -> None:
    seen: list[Any] = []
    c, first = typed(traced)

    def sample(cpu: int, value: Any) -> None:
        seen.append(value)
        if value["seq"] - first in (3, 11):
            raise KeyError(value["seq"])

    with PerfBuffer(traced.maps["samples"], sample, decode=c) as pb:
        calls(15)
        with pytest.raises(KeyError):
            pb.consume()
        assert [v["seq"] - first for v in seen] == [0, 1, 2, 3]
        with pytest.raises(KeyError):
            pb.consume()  # the backlog first, raising again at 11
        pb.consume()
    assert seen == [expected(c, first + n) for n in range(15)]


@pytest.mark.kernel
def test_typed_queue_mode(traced: Object, path: str) -> None:
    c, first = typed(traced)
    with PerfBuffer(traced.maps["samples"], decode=c) as pb:
        calls(12)
        got = list(pb.events(0))
    assert got == [PerfSample(0, expected(c, first + n)) for n in range(12)]
    assert all(type(s) is PerfSample for s in got)


@pytest.mark.kernel
def test_an_exception_held_in_a_cycle_is_collected(traced: Object, path: str) -> None:
    """A callback's exception holds the reader's frame (its traceback) and the buffer holds
    the exception: the garbage collector must be able to free that cycle."""
    seen: list[int] = []

    def sample(cpu: int, data: bytes) -> None:
        seen.append(seq_of(data))
        if len(seen) == 2:
            raise ValueError("stop")

    with PerfBuffer(traced.maps["samples"], sample) as pb:
        calls(8)
        with pytest.raises(ValueError) as info:
            pb.consume()
        error = info.value
        del info
        gc.collect()
        pb.consume()
        del error
        gc.collect()
    assert seen == list(range(8))


# --------------------------------------------------------------------------- the lazy queue




def _seqs(samples: list[PerfSample]) -> list[int]:
    assert all(type(s) is PerfSample and s.cpu == 0 and len(s.data) == RAW_SIZE
               for s in samples)
    return [seq_of(s.data) for s in samples]


@pytest.mark.kernel
def test_partial_reads_of_a_chunk_lose_nothing(traced: Object, path: str) -> None:
    with PerfBuffer(traced.maps["samples"]) as pb:
        calls(10)
        got = []
        for sample in pb.events(0):
            got.append(sample)
            if len(got) == 3:
                break  # the rest of the ring's chunk stays queued
        calls(10)
        pb.consume()  # a second chunk behind the first
        if path == "python":  # the rest of the first chunk, and the second
            assert len(pb._require_queue()) == 2
        for sample in pb.events(0):
            got.append(sample)
            if len(got) == 12:
                break
        got += list(pb.events(0))
        assert not pb._require_queue()
    assert _seqs(got) == list(range(20))


@pytest.mark.kernel
def test_batches_after_a_partial_async_for(traced_thread: Object, path: str) -> None:
    obj = traced_thread

    async def main() -> list[PerfSample]:
        with PerfBuffer(obj.maps["samples"]) as pb:
            thread_calls(obj, 30)
            got: list[PerfSample] = []
            async for sample in pb:
                got.append(sample)
                if len(got) == 7:
                    break
            thread_calls(obj, 30)
            async for batch in pb.batches():
                assert batch
                got += batch
                if len(got) == 60:
                    break
            assert not pb._require_queue()
            return got

    assert _seqs(asyncio.run(main())) == list(range(60))


@pytest.mark.kernel
def test_lost_samples_are_counted_when_read_not_when_taken(traced: Object, path: str) -> None:
    """A full ring: the kernel's lost records are counted as the ring is read (before any
    sample is taken from the queue), and every sample not lost comes out, in order."""
    with PerfBuffer(traced.maps["samples"], page_count=1) as pb:
        calls(200)  # a 4 KiB ring holds about 50 of the 80-byte records
        pb.consume()
        calls(1)  # the kernel writes the LOST record once there is room again
        with pytest.warns(perf.EventsLostWarning, match="lost"):
            pb.consume()
        failed = traced.bss.get_int("failed")
        assert failed > 0 and pb.lost == failed and pb.lost_by_cpu == {0: failed}
        got = list(pb.events(0))
    seqs = _seqs(got)
    assert seqs == sorted(seqs) and len(seqs) + failed == 201


# --------------------------------------------------------------------------- ring callbacks

RING_EVENT_C = "struct event { __u64 seq; __u32 cpu; __u32 size; char payload[48]; };"


@pytest.fixture(params=["python", "libbpf"])
def ring_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Callbacks fed from the rings' memory (x86) or by libbpf's consumer."""
    if request.param == "libbpf":
        monkeypatch.setattr(RingBuffer, "_direct_ready", lambda self: False)
    elif not X86:
        pytest.skip("the rings are read from Python on x86 only")
    return str(request.param)



def _ring_uses(rb: RingBuffer, path: str) -> None:
    assert bool(rb._direct) is (path == "python")


@pytest.mark.kernel
@pytest.mark.parametrize("knobs", [{}, {"discard_every": 3}, {"variable": 1}])
def test_ring_callbacks_order_discards_and_lengths(ring_producer: Object, ring_path: str,
                                                   knobs: dict[str, int]) -> None:
    got: list[bytes] = []
    with RingBuffer(ring_producer.maps["rb"], got.append) as rb:
        total = 0
        for _round in range(3):
            emit(ring_producer, 150, **knobs)
            total += rb.consume()
            _ring_uses(rb, ring_path)
        assert total == len(got) and rb.consume() == 0
    assert_emitted(got, 450, knobs)


@pytest.mark.kernel
@pytest.mark.parametrize("knobs", [{}, {"discard_every": 4}])
def test_ring_typed_callback_equals_the_generic_codec(ring_producer: Object, ring_path: str,
                                                      knobs: dict[str, int]) -> None:
    c = decoder(ring_producer, "struct event", source=RING_EVENT_C)
    assert c.flat is not None
    got: list[Any] = []
    with RingBuffer(ring_producer.maps["rb"], got.append, decode=c) as rb:
        emit(ring_producer, 60, **knobs)
        assert rb.consume() == len(got)
        _ring_uses(rb, ring_path)
    every = knobs.get("discard_every", 0)
    assert [v["seq"] for v in got] == [n for n in range(60) if not every or n % every != every - 1]
    for value in got:
        n = value["seq"]
        raw = struct.pack("<QII48s", n, value["cpu"], 64, bytes([97 + n % 26]))
        assert value == c._decode_generic(raw, 0)


@pytest.mark.kernel
@pytest.mark.parametrize("typed", [False, True])
def test_ring_stop_exception_and_positions(ring_producer: Object, ring_path: str,
                                           typed: bool) -> None:
    """A negative return stops at its record, an exception at its record (both consumed),
    the rest stay in the ring; the consumer position moves after each record's callback.
    Typed: the same through the loop compiled for the flat type."""
    seen: list[int] = []
    positions: list[int] = []
    decode = decoder(ring_producer, "struct event", source=RING_EVENT_C) if typed else None

    def callback(data: Any) -> int:
        n = data["seq"] if typed else seq_of(data)
        seen.append(n)
        positions.append(rb.ring().consumer_pos)
        if n == 2:
            return -7
        if n == 5:
            raise LookupError("record 5")
        return 0

    with RingBuffer(ring_producer.maps["rb"], callback, decode=decode) as rb:
        emit(ring_producer, 9)
        assert rb.poll(1000) == -7
        assert seen == [0, 1, 2]
        with pytest.raises(LookupError, match="record 5"):
            rb.consume()
        assert seen == list(range(6))
        assert rb.consume() == 3
        _ring_uses(rb, ring_path)
    assert seen == list(range(9))
    assert positions == sorted(positions) and len(set(positions)) == 9


@pytest.mark.kernel
@pytest.mark.parametrize("typed", [False, True])
def test_ring_callback_closing_its_buffer(ring_producer: Object, ring_path: str,
                                          typed: bool) -> None:
    seen: list[int] = []
    decode = decoder(ring_producer, "struct event", source=RING_EVENT_C) if typed else None

    def callback(data: Any) -> None:
        seen.append(data["seq"] if typed else seq_of(data))
        if len(seen) == 3:
            rb.close()

    rb = RingBuffer(ring_producer.maps["rb"], callback, decode=decode)
    emit(ring_producer, 10)
    with pytest.raises(ClosedError):
        rb.consume()
    assert rb.closed and seen == [0, 1, 2]


@pytest.mark.kernel
def test_ring_two_rings_and_poll_wakes(ring_producer: Object, ring_path: str) -> None:
    first: list[int] = []
    second: list[int] = []
    with RingBuffer(ring_producer.maps["rb"], lambda d: first.append(seq_of(d))) as rb:
        rb.add(ring_producer.maps["tiny"], lambda d: second.append(seq_of(d)))
        emit(ring_producer, 4)
        emit(ring_producer, 3, target=2)
        assert rb.consume() == 7
        assert first == [0, 1, 2, 3] and second == [4, 5, 6]
        timer = threading.Timer(0.05, emit, (ring_producer, 5))
        timer.start()
        try:
            # woken by the epoll fd, then read: the first wake-up reads at least one record.
            # The producer's five runs may be preempted between commits (a busy machine), and a
            # read ends where the committed records end, as libbpf's does: poll until all five.
            got = [rb.poll(5000)]
            while got[0] >= 1 and sum(got) < 5 and len(got) < 50:
                got.append(rb.poll(5000))
        finally:
            timer.join()
        assert got[0] >= 1 and sum(got) == 5, got
        assert first == [0, 1, 2, 3, 7, 8, 9, 10, 11]
        _ring_uses(rb, ring_path)


@pytest.mark.kernel
def test_ring_queue_pending_across_partial_reads(ring_producer: Object) -> None:
    with RingBuffer(ring_producer.maps["rb"]) as rb:
        emit(ring_producer, 40)
        assert rb.consume() == 40 and rb.pending == 40
        got = []
        for data in rb.events(0):
            got.append(seq_of(data))
            if len(got) == 15:
                break
        assert rb.pending == 25
        emit(ring_producer, 10)
        assert rb.consume() == 10 and rb.pending == 35
        got += [seq_of(d) for d in rb.events(0)]
        assert rb.pending == 0
    assert got == list(range(50))
