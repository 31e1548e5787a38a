"""The perf buffer's rings read from Python (``pylibbpf.events._perf_rings``) and the batch
drain of queue mode: the same samples, in the same order, with the same lost counts as libbpf's
own consumer (every kernel test runs on both paths), across wrap-arounds, exceptions and
cancelled ``async for`` loops."""

from __future__ import annotations

import asyncio
import os
import struct

import pytest

from pylibbpf import (
    ClosedError,
    EventsLostWarning,
    Object,
    PerfBuffer,
    PerfSample,
    RingBuffer,
    StateError,
)
from pylibbpf.events import _perf_rings
from tests.support.event_paths import (
    RAW_SIZE,
    X86,
    assert_emitted,
    calls,
    lost_record,
    sample_record,
    thread_calls,
)
from tests.support.ring_producer import emit, seq_of

SAMPLE = struct.Struct("<QII48s")





def _uses(pb: PerfBuffer, path: str) -> None:
    assert (pb._rings is not None) == (path == "python")


# --------------------------------------------------------------------------- split (no kernel)


def test_split_runs_of_records_lost_and_unknown_records() -> None:
    first = [bytes([n]) * 20 for n in range(5)]
    second = [bytes([n]) * 36 for n in range(3)]
    other = struct.pack("<IHH", 3, 0, 16) + bytes(8)  # a record type BPF output never makes
    chunk = (b"".join(map(sample_record, first)) + lost_record(5) + other
             + b"".join(map(sample_record, second)) + lost_record(2) + sample_record(b"last"))
    samples, lost = _perf_rings.split(chunk)
    assert list(samples) == first + second + [b"last"]
    assert lost == 7


def test_split_a_run_broken_by_a_different_header() -> None:
    records = [sample_record(bytes([n]) * 20) for n in range(6)]
    records[3] = sample_record(bytes([3]) * 19, size=32)  # same record size, other raw size
    samples, lost = _perf_rings.split(b"".join(records))
    assert list(samples) == [bytes([0]) * 20, bytes([1]) * 20, bytes([2]) * 20, bytes([3]) * 19,
                             bytes([4]) * 20, bytes([5]) * 20]
    assert lost == 0


def test_split_stops_at_what_is_not_a_record() -> None:
    good = sample_record(b"a" * 8)
    for bad in (struct.pack("<IHH", 9, 0, 12), struct.pack("<IHH", 9, 0, 0),
                struct.pack("<IHHI", 9, 0, 16, 200) + bytes(4),
                struct.pack("<IHH", 9, 0, 64)):  # longer than what is left
        samples, lost = _perf_rings.split(good + bad)
        assert list(samples) == [b"a" * 8] and lost == 0
    samples, lost = _perf_rings.split(b"")
    assert list(samples) == [] and lost == 0


def test_ring_cpus_matches_the_buffer_count() -> None:
    count = len(_perf_rings.ring_cpus(os.cpu_count() or 1, 4096) or [])
    assert _perf_rings.ring_cpus(count, 4096) == list(range(count)) or count == 0
    assert _perf_rings.ring_cpus(count + 1, 4096) is None


# --------------------------------------------------------------------------- against the kernel


@pytest.mark.kernel
def test_wrapping_rings_keep_every_sample_in_order(traced: Object, path: str) -> None:
    got: list[bytes] = []
    # one page: an 80-byte record does not divide 4096, so records wrap around its end
    with PerfBuffer(traced.maps["samples"], lambda cpu, d: got.append(d), page_count=1) as pb:
        _uses(pb, path)
        for _ in range(12):
            calls(37)
            pb.consume()
        assert pb.lost == 0
    assert [seq_of(d) for d in got] == list(range(12 * 37))
    assert {len(d) for d in got} == {RAW_SIZE}
    assert all(SAMPLE.unpack_from(d)[3].rstrip(b"\0") == b"p" for d in got)


@pytest.mark.kernel
def test_poll_returns_the_rings_that_had_data(traced: Object, path: str) -> None:
    got: list[int] = []
    with PerfBuffer(traced.maps["samples"], lambda cpu, d: got.append(cpu),
                    decode=seq_of) as pb:
        _uses(pb, path)
        assert pb.poll(0) == 0
        calls(5)
        assert pb.poll(1000) == 1  # every sample was written on CPU 0
        assert got == [0] * 5
        assert pb.poll(50) == 0


@pytest.mark.kernel
def test_lost_counts_and_warning(traced: Object, path: str) -> None:
    got: list[int] = []
    with PerfBuffer(traced.maps["samples"], lambda cpu, d: got.append(seq_of(d)),
                    page_count=1) as pb:
        _uses(pb, path)
        calls(1000)
        pb.consume()
        calls(1)  # the kernel writes the LOST record once there is room again
        with pytest.warns(EventsLostWarning, match="lost"):
            pb.consume()
        failed = traced.bss.get_int("failed")
        assert failed > 0 and pb.lost == failed and pb.lost_by_cpu == {0: failed}
        assert len(got) + failed == 1001 and got == sorted(got)


@pytest.mark.kernel
def test_a_lost_callback_that_raises(traced: Object, path: str) -> None:
    got: list[int] = []

    def lost(cpu: int, count: int) -> None:
        raise RuntimeError(f"lost {count}")

    with PerfBuffer(traced.maps["samples"], lambda cpu, d: got.append(seq_of(d)), lost,
                    page_count=1) as pb:
        calls(1000)
        pb.consume()
        calls(1)
        with pytest.raises(RuntimeError, match="lost"):
            pb.consume()
        pb.consume()  # what was read after the exception comes now
        assert pb.lost == traced.bss.get_int("failed") > 0
        assert len(got) + pb.lost == 1001 and got == sorted(got)


@pytest.mark.kernel
def test_decoder_exception_keeps_the_rest(traced: Object, path: str) -> None:
    """A decoder raising in queue mode: the sample that raised is dropped, the ones after it
    stay queued, in order."""
    def decode(data: bytes) -> int:
        seq = seq_of(data)
        if seq == 4:
            raise ValueError("bad sample 4")
        return seq

    with PerfBuffer(traced.maps["samples"], decode=decode) as pb:
        _uses(pb, path)
        calls(10)
        with pytest.raises(ValueError, match="bad sample 4"):
            pb.consume()
        assert list(pb.events(0)) == [PerfSample(0, n) for n in range(4)]
        assert list(pb.events(0)) == [PerfSample(0, n) for n in range(5, 10)]
        assert isinstance(PerfSample(0, 1), tuple)


@pytest.mark.kernel
def test_exception_in_a_callback_with_a_decoder(traced: Object, path: str) -> None:
    seen: list[int] = []

    def sample(cpu: int, seq: int) -> None:
        seen.append(seq)
        if seq in (2, 6):
            raise KeyError(seq)

    with PerfBuffer(traced.maps["samples"], sample, decode=seq_of) as pb:
        calls(10)
        with pytest.raises(KeyError):
            pb.consume()
        assert seen == [0, 1, 2]
        with pytest.raises(KeyError):
            pb.consume()  # the backlog first: raises again at 6
        pb.consume()
        assert seen == list(range(10))


@pytest.mark.kernel
def test_a_callback_closing_its_buffer(traced: Object, path: str) -> None:
    seen: list[int] = []

    def sample(cpu: int, data: bytes) -> None:
        seen.append(seq_of(data))
        pb.close()

    pb = PerfBuffer(traced.maps["samples"], sample)
    calls(5)
    pb.consume()  # the free waits for the consume to return
    assert pb.closed and seen == list(range(5))


# --------------------------------------------------------------------------- asyncio




@pytest.mark.kernel
@pytest.mark.parametrize("decoded", [True, False])
def test_async_for_across_wakeups_and_cancellation(traced_thread: Object, path: str,
                                                   decoded: bool) -> None:
    """Bursts arriving while ``async for`` runs come out in order; a task cancelled in the
    middle of a batch (of decoded samples, or of a queued ring copy made into samples as they
    are taken) loses nothing: the next iteration starts where it stopped."""
    obj = traced_thread

    def seq(sample: PerfSample) -> int:
        assert sample.cpu == 0
        if decoded:
            return int(sample.data)
        assert type(sample) is PerfSample and len(sample.data) == RAW_SIZE
        return seq_of(sample.data)

    async def main() -> list[int]:
        got: list[int] = []
        with PerfBuffer(obj.maps["samples"], decode=seq_of if decoded else None) as pb:
            _uses(pb, path)
            loop = asyncio.get_running_loop()
            for burst in range(4):
                loop.call_later(0.02 * (burst + 1), thread_calls, obj, 50)

            async def take(n: int) -> None:
                async for sample in pb:
                    got.append(seq(sample))
                    if len(got) == n:
                        await asyncio.sleep(10)  # cancelled here, mid-batch

            task = asyncio.create_task(take(30))
            while len(got) < 30:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            async for sample in pb:
                got.append(seq(sample))
                if len(got) == 200:
                    break
            assert pb.lost == 0
        return got

    assert asyncio.run(main()) == list(range(200))


@pytest.mark.kernel
def test_events_after_a_partial_async_for(traced_thread: Object, path: str) -> None:
    obj = traced_thread

    async def main() -> list[PerfSample]:
        with PerfBuffer(obj.maps["samples"]) as pb:
            thread_calls(obj, 40)
            got = []
            async for sample in pb:
                got.append(sample)
                if len(got) == 15:
                    break
            got += list(pb.events(0))
            return got

    got = asyncio.run(main())
    assert [seq_of(s.data) for s in got] == list(range(40))
    assert all(type(s) is PerfSample and s.cpu == 0 and len(s.data) == RAW_SIZE for s in got)


# --------------------------------------------------------------------------- ring queue mode


@pytest.fixture(params=["batched", "libbpf"])
def ring_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Queue mode read in batches from the rings' memory, or by libbpf's consumer."""
    if request.param == "libbpf":
        monkeypatch.setattr(RingBuffer, "_queue_batches", lambda self: None)
    elif not X86:
        pytest.skip("the rings are read from Python on x86 only")
    return str(request.param)



@pytest.mark.kernel
@pytest.mark.parametrize("knobs", [{}, {"discard_every": 3}, {"variable": 1}])
def test_ring_queue_mode_order_discards_and_lengths(ring_producer: Object, ring_path: str,
                                                     knobs: dict[str, int]) -> None:
    with RingBuffer(ring_producer.maps["rb"]) as rb:
        for _round in range(3):
            emit(ring_producer, 150, **knobs)
            before = rb.pending
            assert rb.consume() == rb.pending - before
            assert rb._batched is (True if ring_path == "batched" else None)
        got = list(rb.events(0))
    assert_emitted(got, 450, knobs)


@pytest.mark.kernel
def test_ring_queue_mode_two_rings_and_a_held_batch(ring_producer: Object,
                                                   ring_path: str) -> None:
    with RingBuffer(ring_producer.maps["rb"]) as rb:
        rb.add(ring_producer.maps["tiny"])
        emit(ring_producer, 10)
        emit(ring_producer, 5, target=2)  # into "tiny"
        assert rb.consume() == 15
        assert [seq_of(d) for d in rb.events(0)] == list(range(15))
        emit(ring_producer, 4)
        with rb.read_batch(copy=False) as batch:
            assert len(batch) == 4
            with pytest.raises(StateError):
                rb.consume()
        assert rb.consume() == 0  # the batch's records were consumed by its release


@pytest.mark.kernel
def test_ring_queue_mode_with_a_decoder_keeps_libbpf(ring_producer: Object) -> None:
    with RingBuffer(ring_producer.maps["rb"], decode=seq_of) as rb:
        emit(ring_producer, 20)
        assert rb.consume() == 20
        assert rb._batched is False
        assert list(rb.events(0)) == list(range(20))


@pytest.mark.kernel
def test_ring_async_for_in_batches(ring_producer: Object, ring_path: str) -> None:
    async def main() -> list[int]:
        got: list[int] = []
        with RingBuffer(ring_producer.maps["rb"]) as rb:
            loop = asyncio.get_running_loop()
            for burst in range(3):
                loop.call_later(0.02 * (burst + 1), emit, ring_producer, 100)
            async for data in rb:
                got.append(seq_of(data))
                if len(got) == 300:
                    break
            with pytest.raises(ClosedError):
                rb.close()
                rb.consume()
        return got

    assert asyncio.run(main()) == list(range(300))
