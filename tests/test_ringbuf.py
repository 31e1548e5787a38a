"""RingBuffer, UserRingBuffer and the batch path against a real kernel.

``events_ringbuf.bpf.c``'s ``emit`` program (driven by ``ring_producer.emit``) writes ``count``
events numbered by a global sequence; the BPF side counts what it produced, dropped (failed
reserves) and discarded, so every count below is exact.  The user ring buffer tests use
``events_user_ringbuf.bpf.c``.
"""

from __future__ import annotations

import errno
import struct
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import pylibbpf
from pylibbpf import Object, RingBuffer, UserRingBuffer
from tests.support.ring_producer import emit, seq_of

pytestmark = [pytest.mark.kernel, pytest.mark.needs("ringbuf")]

EVENT_SIZE = 64


def counter(obj: Object, name: str) -> int:
    return obj.bss.get_int(name)


def test_callback_gets_every_event_in_order(producer: Object) -> None:
    got: list[bytes] = []
    with RingBuffer(producer.maps["rb"], got.append) as rb:
        emit(producer, 1000)
        assert rb.poll(1000) == 1000
        assert rb.poll(0) == 0
    assert [seq_of(d) for d in got] == list(range(1000))
    assert all(len(d) == EVENT_SIZE for d in got)
    cpus = {struct.unpack_from("<I", d, 8)[0] for d in got}  # where each round ran
    assert cpus and max(cpus) < pylibbpf.num_possible_cpus()
    assert counter(producer, "produced") == 1000
    assert counter(producer, "dropped") == 0


def test_two_rings_each_with_its_callback(producer: Object) -> None:
    first: list[int] = []
    second: list[int] = []
    with RingBuffer(producer.maps["rb"], lambda d: first.append(seq_of(d))) as rb:
        rb.add(producer.maps["rb2"], lambda d: second.append(seq_of(d)))
        assert rb.rings == ["map 'rb'", "map 'rb2'"]
        emit(producer, 10)
        emit(producer, 7, target=1)
        emit(producer, 5)
        total = 0
        while total < 22:
            total += rb.poll(1000)
        assert rb.epoll_fd >= 0
    assert first == list(range(10)) + list(range(17, 22))
    assert second == list(range(10, 17))


def test_overflow_reports_drops(producer: Object) -> None:
    got: list[int] = []
    with RingBuffer(producer.maps["tiny"], lambda d: got.append(seq_of(d))) as rb:
        emit(producer, 200, target=2)
        rb.consume()
    produced, dropped = counter(producer, "produced"), counter(producer, "dropped")
    # 4096 bytes hold 4096 // (64 + 8) = 56 records; the rest failed to reserve.
    assert produced == len(got) == 4096 // (EVENT_SIZE + 8)
    assert dropped == 200 - produced
    assert got == list(range(200))[:produced]


def test_discarded_records_are_skipped(producer: Object) -> None:
    got: list[int] = []
    with RingBuffer(producer.maps["rb"], lambda d: got.append(seq_of(d))) as rb:
        emit(producer, 300, discard_every=3)
        assert rb.consume() == 200
    assert counter(producer, "discarded") == 100
    assert got == [n for n in range(300) if n % 3 != 2]


def _raising_callback(data: bytes) -> None:
    if seq_of(data) == 4:
        raise ValueError("record 4 is bad")


def test_exception_in_callback_is_reraised_with_traceback(producer: Object) -> None:
    seen: list[int] = []

    def callback(data: bytes) -> None:
        seen.append(seq_of(data))
        _raising_callback(data)

    with RingBuffer(producer.maps["rb"], callback) as rb:
        emit(producer, 10)
        with pytest.raises(ValueError, match="record 4 is bad") as info:
            rb.poll(1000)
        frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
        assert "_raising_callback" in frames and "callback" in frames
        assert seen == [0, 1, 2, 3, 4]  # stopped at the record that raised
        assert rb.consume() == 5  # the others stayed in the ring
    assert seen == list(range(10))


def test_negative_return_stops_polling(producer: Object) -> None:
    seen: list[int] = []

    def callback(data: bytes) -> int:
        seen.append(seq_of(data))
        return -7 if len(seen) == 3 else 0

    with RingBuffer(producer.maps["rb"], callback) as rb:
        emit(producer, 6)
        assert rb.poll(1000) == -7
        assert seen == [0, 1, 2]
        assert rb.consume() == 3
    assert seen == list(range(6))


def test_queue_mode_events(producer: Object) -> None:
    with RingBuffer(producer.maps["rb"], decode=seq_of) as rb:
        emit(producer, 50)
        assert list(rb.events(1000)) == list(range(50))
        assert list(rb.events(0)) == []


def test_callback_and_queue_modes_do_not_mix(producer: Object) -> None:
    with RingBuffer(producer.maps["rb"], print) as rb:
        with pytest.raises(ValueError):
            rb.add(producer.maps["rb2"])
        with pytest.raises(pylibbpf.StateError):
            list(rb.events(0))


def test_wrong_map_type(producer: Object) -> None:
    with pytest.raises(ValueError, match="not RINGBUF"), \
            pylibbpf.Map.create(pylibbpf.MapType.ARRAY, 4, 8, 1) as array:
        RingBuffer(array, print)
    with pytest.raises(ValueError, match="not USER_RINGBUF"):
        UserRingBuffer(producer.maps["rb"])


def test_closed_ring_buffer_refuses_calls(producer: Object) -> None:
    rb = RingBuffer(producer.maps["rb"], print)
    rb.close()
    rb.close()
    with pytest.raises(pylibbpf.ClosedError):
        rb.poll(0)


# ----------------------------------------------------------------------------------- batch path

def test_batch_reads_every_event_in_order(producer: Object) -> None:
    with RingBuffer(producer.maps["rb"]) as rb:
        emit(producer, 5000)  # 5000 * 72 bytes: more than a quarter of the 1 MiB ring
        batch = rb.read_batch()
        assert len(batch) == 5000
        assert batch.stride == 72
        assert [seq_of(d) for d in batch] == list(range(5000))
        assert len(rb.read_batch()) == 0
        # the consumer position moved: libbpf's consume sees nothing either
        assert rb.consume() == 0
        # wrap around the end of the ring many times
        total: list[int] = []
        for _ in range(20):
            emit(producer, 4000)
            total.extend(seq_of(d) for d in rb.read_batch())
        assert total == list(range(5000, 5000 + 80000))
    assert counter(producer, "dropped") == 0


def test_zero_copy_batch_holds_the_space_until_released(producer: Object) -> None:
    with RingBuffer(producer.maps["rb"]) as rb:
        emit(producer, 300)
        with rb.read_batch(copy=False) as batch:
            assert isinstance(batch.data, memoryview)
            assert [seq_of(bytes(d)) for d in batch] == list(range(300))
            with pytest.raises(pylibbpf.StateError, match="not released") as busy:
                rb.read_batch()
            assert busy.value.errno == errno.EBUSY
            emit(producer, 10)
        # the space was given back on release; the next batch starts after it
        assert [seq_of(d) for d in rb.read_batch()] == list(range(300, 310))
        # unreleased records are not consumed: libbpf's consume still sees nothing new
        emit(producer, 5)
        held = rb.read_batch(copy=False)
        held.release()
        held.release()
        assert rb.consume() == 0


def test_close_invalidates_a_held_zero_copy_batch(producer: Object) -> None:
    np = pytest.importorskip("numpy")
    rb = RingBuffer(producer.maps["rb"])
    emit(producer, 20)
    batch = rb.read_batch(copy=False)
    first = batch.view(0)  # derived before close: keeps the mapping, never faults
    array = batch.to_numpy()
    rb.close()
    for use in (lambda: batch.data, lambda: batch[0], lambda: list(batch), lambda: batch.view(1),
                batch.to_numpy):
        with pytest.raises(pylibbpf.ClosedError):
            use()
    batch.release()  # nothing to give back: the ring is gone
    assert "closed" in repr(batch)
    assert seq_of(bytes(first)) == 0 and len(array) == 20 and np.all(array[:, 8] >= 0)
    first.release()
    del array


def test_released_batch_refuses_use(producer: Object) -> None:
    with RingBuffer(producer.maps["rb"]) as rb:
        emit(producer, 3)
        batch = rb.read_batch(copy=False)
        batch.release()
        with pytest.raises(pylibbpf.ClosedError, match="released"):
            batch[0]


def test_batch_and_poll_arguments(producer: Object) -> None:
    with RingBuffer(producer.maps["rb"], decode=seq_of) as rb:
        rb.add(producer.maps["rb2"])
        for bad in (2, 5, -1, 2**64):
            with pytest.raises(ValueError, match=f"ring {bad} is out of range"):
                rb.read_batch(ring=bad)
        with pytest.raises(ValueError, match="no ring named 'nope'"):
            rb.read_batch(ring="nope")
        with pytest.raises(TypeError, match="ring"):
            rb.read_batch(ring=True)
        with pytest.raises(ValueError, match="max_events"):
            rb.read_batch(max_events=-1)
        emit(producer, 4, target=1)
        assert [seq_of(d) for d in rb.read_batch(ring="rb2", max_events=3)] == [0, 1, 2]
        assert len(rb.read_batch(ring=1, max_events=0)) == 0
        for timeout in (-2, 2**31, 2**32 + 100):
            with pytest.raises(ValueError, match="timeout_ms"):
                rb.poll(timeout)
        with pytest.raises(TypeError, match="timeout_ms"):
            rb.poll("100")  # type: ignore[arg-type]
        for n in (0, -1, 2**31, 2**64):
            with pytest.raises(ValueError, match="n "):
                rb.consume_n(n)
        assert rb.poll(0) == 1  # record 3 is still there: nothing above consumed it


def test_add_from_a_callback_is_refused(producer: Object) -> None:
    errors: list[pylibbpf.StateError] = []

    def callback(data: bytes) -> None:
        try:
            rb.add(producer.maps["rb2"], print)
        except pylibbpf.StateError as exc:
            errors.append(exc)

    with RingBuffer(producer.maps["rb"], callback) as rb:
        emit(producer, 1)
        assert rb.poll(1000) == 1
        assert len(errors) == 1 and errors[0].errno == errno.EBUSY
        assert rb.rings == ["map 'rb'"]


def test_batch_skips_discarded_records(producer: Object) -> None:
    with RingBuffer(producer.maps["rb"]) as rb:
        emit(producer, 999, discard_every=4)
        batch = rb.read_batch()
        assert [seq_of(d) for d in batch] == [n for n in range(999) if n % 4 != 3]
        assert batch.stride is None  # uneven gaps where discarded records were


def test_batch_variable_length_records(producer: Object) -> None:
    with RingBuffer(producer.maps["rb"]) as rb:
        emit(producer, 700, variable=1)
        batch = rb.read_batch()
        assert len(batch) == 700
        for i, data in enumerate(batch):
            assert seq_of(data) == i
            assert len(data) == 8 + (i % 7) * 8 + 1 == data[8]


def test_batch_max_events_and_mixing_with_libbpf(producer: Object) -> None:
    got: list[int] = []
    with RingBuffer(producer.maps["rb"], lambda d: got.append(seq_of(d))) as rb:
        emit(producer, 100)
        first = rb.read_batch(max_events=30)
        assert [seq_of(d) for d in first] == list(range(30))
        assert rb.consume() == 70
        assert got == list(range(30, 100))


def test_batch_to_numpy(producer: Object) -> None:
    np = pytest.importorskip("numpy")
    dtype = np.dtype([("seq", "<u8"), ("cpu", "<u4"), ("size", "<u4"), ("payload", "S48")])
    with RingBuffer(producer.maps["rb"]) as rb:
        emit(producer, 2000)
        events = rb.read_batch().to_numpy(dtype)
        assert events["seq"].tolist() == list(range(2000))
        assert set(events["size"].tolist()) == {EVENT_SIZE}
        assert events["payload"][27] == b"b"  # 'a' + 27 % 26
        emit(producer, 100, discard_every=2)
        gapped = rb.read_batch().to_numpy(dtype)
        assert gapped["seq"].tolist() == list(range(2000, 2100, 2))


# ----------------------------------------------------------------------------------- user ring

@pytest.fixture
def user_obj(bpf_object_path: Callable[..., Path]) -> Iterator[Object]:
    with Object.open_file(bpf_object_path("events_user_ringbuf.bpf.c")) as o:
        o.load()
        yield o


@pytest.mark.needs("user_ringbuf")
def test_user_ring_buffer_to_bpf(user_obj: Object) -> None:
    obj = user_obj
    values = [3, 1 << 40, 12345, 7]
    with UserRingBuffer(obj.maps["urb"]) as urb:
        for value in values[:3]:
            urb.write(struct.pack("<Q", value))
        with urb.reserve(8) as buf:
            buf[:] = struct.pack("<Q", values[3])
        with pytest.raises(RuntimeError), urb.reserve(8) as buf:
            buf[:] = struct.pack("<Q", 1000)
            raise RuntimeError("discarded, not sent")
        obj.programs["drain_user"].test_run(repeat=0)
    assert counter(obj, "user_count") == 4
    assert counter(obj, "user_total") == sum(values)
    assert counter(obj, "user_bad") == 0


@pytest.mark.needs("user_ringbuf")
def test_user_ring_buffer_sizes_are_checked_before_c(user_obj: Object) -> None:
    obj = user_obj
    with UserRingBuffer(obj.maps["urb"]) as urb:
        assert urb.capacity == 1 << 16 and urb.max_record_size == (1 << 16) - 8
        # libbpf takes a __u32: 2**32 + 8 would reserve 8 bytes behind a 4 GiB buffer
        for bad in (2**32 + 8, 2**64, urb.capacity, urb.max_record_size + 1, 0, -1):
            with pytest.raises(ValueError, match=f"size {bad} does not fit.*65536 bytes"):
                urb.reserve(bad)
        for wrong in ("8", 8.0, True, None):
            with pytest.raises(TypeError, match="size"):
                urb.reserve(wrong)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="size 0"):
            urb.write(b"")
        for timeout in (-2, 2**31, 2**32 + 10):
            with pytest.raises(ValueError, match="timeout_ms"):
                urb.reserve(8, timeout)
        with urb.reserve(urb.max_record_size, timeout_ms=-1) as buf:
            assert len(buf) == urb.max_record_size
            buf[:8] = struct.pack("<Q", 5)
        obj.programs["drain_user"].test_run(repeat=0)
        urb.write(struct.pack("<Q", 6), timeout_ms=1000)
        obj.programs["drain_user"].test_run(repeat=0)
    assert counter(obj, "user_count") == 2 and counter(obj, "user_total") == 11


@pytest.mark.needs("user_ringbuf")
def test_user_sample_invalidated_by_close(user_obj: Object) -> None:
    obj = user_obj
    urb = UserRingBuffer(obj.maps["urb"])
    sample = urb.reserve(16)
    other = urb.reserve(8)
    derived = memoryview(other.buffer)[2:]  # a view of its own: keeps the mapping alive
    urb.close()
    with pytest.raises(pylibbpf.ClosedError):
        sample.buffer[0] = 1
    with pytest.raises(pylibbpf.ClosedError):
        sample.submit()
    with pytest.raises(pylibbpf.ClosedError):
        other.discard()
    with pytest.raises(pylibbpf.ClosedError), sample:
        pass
    derived[0] = 1  # no fault: the ring is still mapped for it
    derived.release()
    obj.programs["drain_user"].test_run(repeat=0)
    assert counter(obj, "user_count") == 0


@pytest.mark.needs("user_ringbuf")
def test_user_sample_after_submit(user_obj: Object) -> None:
    with UserRingBuffer(user_obj.maps["urb"]) as urb:
        sample = urb.reserve(8)
        sample.buffer[:] = struct.pack("<Q", 9)
        buffer = sample.buffer
        sample.submit()
        with pytest.raises(ValueError):
            buffer[0] = 1  # released
        with pytest.raises(pylibbpf.StateError, match="already submitted"):
            sample.buffer[0] = 1
        with pytest.raises(pylibbpf.StateError, match="already submitted"):
            sample.discard()
        np = pytest.importorskip("numpy")
        exported = urb.reserve(8)
        array = np.frombuffer(exported.buffer, dtype=np.uint8)  # an export of the buffer itself
        array[:] = 0
        array[0] = 3
        exported.submit()  # its view cannot be released; the mapping stays for the array
        user_obj.programs["drain_user"].test_run(repeat=0)
    array[1] = 1  # no fault after close either
    del array
    assert counter(user_obj, "user_total") == 12


@pytest.mark.needs("user_ringbuf")
def test_user_ring_buffer_full(user_obj: Object) -> None:
    with UserRingBuffer(user_obj.maps["urb"]) as urb:
        with pytest.raises(pylibbpf.BpfError) as info:
            for _ in range(1 << 16):
                urb.write(bytes(1000))
        assert info.value.errno == errno.ENOSPC
