"""``PerfBuffer.read_batch()``: one perf ring's samples in one call, with no callback per sample.

What the kernel wrote comes out whole and in order (numbered samples of
``events_perf.bpf.c``, one per ``getpid()`` of the traced thread, all on CPU 0), as ``bytes`` per
sample and as one NumPy array; lost samples are counted as ``poll()`` counts them; samples kept
after a callback's exception come first (``read_batch()`` refuses until they are handed out);
and where libbpf's consumer reads the rings, ``read_batch()`` says so."""

from __future__ import annotations

import errno
import struct
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from pylibbpf import ClosedError, NotSupportedError, Object, PerfBuffer, StateError
from pylibbpf.events import _perf_rings, perf
from tests.support.event_paths import RAW_SIZE, X86, lost_record, sample_record, thread_calls
from tests.support.ring_producer import NO_THREAD, seq_of, traced_getpid


@pytest.fixture
def traced_python() -> Iterator[Object]:
    """events_perf.bpf.c tracing one thread only, none yet (``thread_calls`` picks it), its
    perf buffers' rings read from Python (x86: the machines read_batch() is for)."""
    if not X86:
        pytest.skip("the perf rings are read from Python on x86 only")
    with traced_getpid(tid=NO_THREAD) as (obj, _link):
        yield obj

#: events_perf.bpf.c's ``struct perf_sample`` as a NumPy dtype
SAMPLE_FIELDS = [("seq", "<u8"), ("cpu", "<u4"), ("pad", "<u4"), ("payload", "S48")]
RECORD_SIZE = 80  # a sample record: 12 bytes of header and size, 68 of padded data


def _seqs(batch: Any) -> list[int]:
    return [seq_of(data) for data in batch]


# --------------------------------------------------------------------------- no kernel


def test_batch_of_runs_locates_every_sample() -> None:
    one = [bytes([n]) * 20 for n in range(4)]
    two = [bytes([10 + n]) * 36 for n in range(3)]
    chunk = (b"".join(map(sample_record, one)) + lost_record(2)
             + b"".join(map(sample_record, two)))
    runs, lost = _perf_rings.cut(chunk)
    assert lost == 2 and len(runs) == 2
    got = _perf_rings.batch(chunk, runs, 3)
    assert got.cpu == 3 and len(got) == 7 and got.stride is None
    # libbpf hands on the padded raw data: 20 bytes are stored as 20 (12 + 20 = 32), 36 as 36
    assert list(got) == one + two and list(got.sizes) == [20] * 4 + [36] * 3
    assert [bytes(got.view(i)) for i in range(7)] == one + two
    assert got[1:3] == one[1:3]
    with pytest.raises(ValueError, match="different lengths"):
        got.to_numpy()

    single = _perf_rings.batch(chunk, runs[:1], 0)
    assert single.stride == 32 and isinstance(single.offsets, range)
    assert list(single) == one
    assert "CPU 0: 4 samples" in repr(single)

    empty = _perf_rings.batch(b"", [], 1)
    assert len(empty) == 0 and list(empty) == [] and empty.cpu == 1


def test_batch_to_numpy_with_gaps_between_runs() -> None:
    pytest.importorskip("numpy")
    same = [struct.pack("<Q", n) + bytes(12) for n in range(5)]  # 20 bytes each
    # a LOST record between two runs of one layout: the samples are no longer evenly spaced
    chunk = (b"".join(map(sample_record, same[:2])) + lost_record(1)
             + b"".join(map(sample_record, same[2:])))
    runs, lost = _perf_rings.cut(chunk)
    got = _perf_rings.batch(chunk, runs, 0)
    assert lost == 1 and got.stride is None
    array = got.to_numpy([("n", "<u8"), ("rest", "V12")])
    assert array["n"].tolist() == [0, 1, 2, 3, 4]


# --------------------------------------------------------------------------- kernel


@pytest.mark.kernel
def test_read_batch_says_so_where_libbpf_reads_the_rings(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setattr(perf, "_python_rings", lambda ptr, page_count: None)
    with traced_getpid(tid=NO_THREAD) as (obj, _link), PerfBuffer(obj.maps["samples"]) as pb:
        thread_calls(obj, 3)
        with pytest.raises(NotSupportedError, match="callback") as info:
            pb.read_batch(0)
        assert info.value.errno == errno.EOPNOTSUPP
        pb.consume()  # the samples are still there for libbpf's consumer
        assert _seqs(sample.data for sample in pb.events(0)) == [0, 1, 2]


@pytest.mark.kernel
def test_read_batch_hands_every_sample_in_order(traced_python: Object) -> None:
    with PerfBuffer(traced_python.maps["samples"], lambda cpu, data: None) as pb:
        thread_calls(traced_python, 40)
        got = pb.read_batch(0)
        assert isinstance(got, _perf_rings.PerfBatch) and got.cpu == 0
        assert _seqs(got) == list(range(40))
        assert list(got.sizes) == [RAW_SIZE] * 40 and got.stride == RECORD_SIZE
        assert all(type(data) is bytes for data in got)
        empty = pb.read_batch(0)
        assert len(empty) == 0 and empty.cpu == 0
        for index in range(1, pb.buffer_count):  # the other CPUs' rings hold nothing
            other = pb.read_batch(index)
            assert len(other) == 0 and other.cpu == index
        assert pb.lost == 0


@pytest.mark.kernel
def test_read_batch_to_numpy(traced_python: Object) -> None:
    np = pytest.importorskip("numpy")
    with PerfBuffer(traced_python.maps["samples"], lambda cpu, data: None) as pb:
        thread_calls(traced_python, 25)
        array = pb.read_batch(0).to_numpy(np.dtype(SAMPLE_FIELDS))
        assert array["seq"].tolist() == list(range(25))
        assert array["cpu"].tolist() == [0] * 25
        assert set(array["payload"].tolist()) == {b"p"}
        raw = pb.read_batch(0).to_numpy()
        assert raw.shape == (0,)


@pytest.mark.kernel
def test_read_batch_mixes_with_consume_and_the_queue(traced_python: Object) -> None:
    with PerfBuffer(traced_python.maps["samples"]) as pb:
        thread_calls(traced_python, 10)
        pb.consume()  # queued: 0..9
        thread_calls(traced_python, 5)
        assert _seqs(pb.read_batch(0)) == list(range(10, 15))
        thread_calls(traced_python, 3)
        pb.consume()
        assert _seqs(sample.data for sample in pb.events(0)) == list(range(10)) + [15, 16, 17]


@pytest.mark.kernel
@pytest.mark.parametrize("with_callback", [False, True])
def test_read_batch_counts_lost_samples(traced_python: Object, with_callback: bool) -> None:
    told: list[tuple[int, int]] = []
    lost_cb = (lambda cpu, count: told.append((cpu, count))) if with_callback else None
    with PerfBuffer(traced_python.maps["samples"], lambda cpu, data: None, lost_cb,
                    page_count=1) as pb:
        thread_calls(traced_python, 200)  # a 4 KiB ring holds about 50 of the 80-byte records
        kept = _seqs(pb.read_batch(0))
        failed = traced_python.bss.get_int("failed")
        assert failed > 0 and kept == list(range(len(kept)))
        thread_calls(traced_python, 2)  # the kernel writes the LOST record once there is room
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            after = pb.read_batch(0)
        assert len(after) == 2 and pb.lost == failed and pb.lost_by_cpu == {0: failed}
        if with_callback:
            assert told == [(0, failed)] and not caught
        else:
            assert [w.category for w in caught] == [perf.EventsLostWarning]
            assert caught[0].filename == __file__  # names the caller's line
            assert f"lost {failed} samples" in str(caught[0].message)


@pytest.mark.kernel
@pytest.mark.parametrize("queue", [False, True])
def test_samples_kept_after_an_exception_come_first(traced_python: Object,
                                                    queue: bool) -> None:
    """A ``lost`` callback raising in read_batch(), or a ``sample`` callback raising in
    consume(): the samples read with it are kept, and read_batch() refuses (EAGAIN) until
    poll()/consume() has handed them out."""
    got: list[int] = []

    def lost(cpu: int, count: int) -> None:
        raise RuntimeError("lost callback")

    sample = None if queue else (lambda cpu, data: got.append(seq_of(data)))
    with PerfBuffer(traced_python.maps["samples"], sample, lost, page_count=1) as pb:
        thread_calls(traced_python, 200)
        assert len(pb.read_batch(0)) < 200  # the ring was full
        thread_calls(traced_python, 3)  # a LOST record, then three samples
        with pytest.raises(RuntimeError, match="lost callback"):
            pb.read_batch(0)
        with pytest.raises(StateError, match="consume") as info:
            pb.read_batch(0)
        assert info.value.errno == errno.EAGAIN
        pb.consume()
        if queue:
            got = [seq_of(s.data) for s in pb.events(0)]
        assert got == [200, 201, 202]  # seq counts the failed outputs too
        assert len(pb.read_batch(0)) == 0  # nothing waits any more


@pytest.mark.kernel
def test_read_batch_after_a_sample_callback_raised(traced_python: Object) -> None:
    got: list[int] = []

    def sample(cpu: int, data: bytes) -> None:
        got.append(seq_of(data))
        if len(got) == 2:
            raise KeyError("second sample")

    with PerfBuffer(traced_python.maps["samples"], sample) as pb:
        thread_calls(traced_python, 6)
        with pytest.raises(KeyError):
            pb.consume()
        thread_calls(traced_python, 1)
        with pytest.raises(StateError) as info:
            pb.read_batch(0)
        assert info.value.errno == errno.EAGAIN
        pb.consume()  # the four kept, then the new one
        assert got == [0, 1, 2, 3, 4, 5, 6]


@pytest.mark.kernel
def test_read_batch_refuses_inside_a_callback_bad_indexes_and_a_closed_buffer(
        traced_python: Object) -> None:
    errors: list[BaseException] = []

    def sample(cpu: int, data: bytes) -> None:
        try:
            pb.read_batch(0)
        except StateError as exc:
            errors.append(exc)

    pb = PerfBuffer(traced_python.maps["samples"], sample)
    thread_calls(traced_python, 1)
    pb.consume()
    assert len(errors) == 1 and getattr(errors[0], "errno", None) == errno.EBUSY
    for bad in (-1, pb.buffer_count):
        with pytest.raises(ValueError, match="out of range"):
            pb.read_batch(bad)
    with pytest.raises(TypeError):
        pb.read_batch("0")  # type: ignore[arg-type]
    pb.close()
    with pytest.raises(ClosedError):
        pb.read_batch(0)
