"""RingBuffer.ring(): one ring's map fd, size, positions and waiting bytes (libbpf's
``ring__*`` where the library has them, pylibbpf's own mapping before libbpf 1.3), and
``Ring.consume``/``consume_n`` for one ring (libbpf 1.3 / 1.5, NotSupportedError before)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import pylibbpf
from pylibbpf import Object, RingBuffer, _ffi
from tests.support.ring_producer import emit, seq_of

pytestmark = pytest.mark.needs("ringbuf")


def test_ring_facts_and_positions(producer: Object) -> None:
    got: list[int] = []
    with RingBuffer(producer.maps["rb"], lambda d: got.append(seq_of(d))) as rb:
        rb.add(producer.maps["rb2"], lambda d: None)
        first, second = rb.ring(), rb.ring("rb2")
        assert (first.index, second.index) == (0, 1) and rb.ring(1).name == second.name
        assert first.map_fd == producer.maps["rb"].fd and first.size == 1 << 20
        assert second.map_fd == producer.maps["rb2"].fd and second.size == 1 << 16
        start = first.consumer_pos
        assert first.producer_pos == start and first.avail_data_size == 0
        emit(producer, 4)
        waiting = first.avail_data_size
        assert waiting > 0 and waiting % 4 == 0 and (waiting // 4) % 8 == 0
        assert first.producer_pos - first.consumer_pos == waiting
        assert second.avail_data_size == 0
        assert rb.poll(1000) == 4 and got == [0, 1, 2, 3]
        assert first.consumer_pos == first.producer_pos == start + waiting
        assert "rb" in repr(first)
        with pytest.raises(ValueError, match="out of range"):
            rb.ring(2)
        with pytest.raises(ValueError, match="no ring named"):
            rb.ring("nope")
    uses: list[Callable[[], object]] = [lambda: first.consumer_pos, lambda: first.map_fd,
                                        lambda: first.size, lambda: first.avail_data_size,
                                        first.consume]
    for use in uses:
        with pytest.raises(pylibbpf.ClosedError):
            use()
    with pytest.raises(pylibbpf.ClosedError):
        rb.ring(0)


def test_positions_from_inside_a_callback(producer: Object) -> None:
    seen: list[tuple[int, int]] = []

    def callback(data: bytes) -> None:
        ring = rb.ring(0)
        seen.append((ring.consumer_pos, ring.producer_pos))

    with RingBuffer(producer.maps["rb"], callback) as rb:
        emit(producer, 2)
        end = rb.ring().producer_pos
        assert rb.consume() == 2
    # libbpf publishes the consumer position after each record's callback
    assert seen[0][0] < seen[1][0] < end and all(prod == end for _, prod in seen)


@pytest.mark.needs("libbpf>=1.3")
def test_consume_one_ring(producer: Object) -> None:
    got: dict[str, list[int]] = {"rb": [], "rb2": []}
    with RingBuffer(producer.maps["rb"], lambda d: got["rb"].append(seq_of(d))) as rb:
        rb.add(producer.maps["rb2"], lambda d: got["rb2"].append(seq_of(d)))
        emit(producer, 3)
        emit(producer, 2, target=1)
        assert rb.ring("rb2").consume() == 2 and got == {"rb": [], "rb2": [3, 4]}
        assert rb.ring(0).avail_data_size > 0
        assert rb.ring(0).consume() == 3 and got["rb"] == [0, 1, 2]
        assert rb.ring(0).consume() == 0 and rb.ring(0).avail_data_size == 0


@pytest.mark.needs("libbpf>=1.5")
def test_consume_n_one_ring(producer: Object) -> None:
    got: list[int] = []
    with RingBuffer(producer.maps["rb"], lambda d: got.append(seq_of(d))) as rb:
        emit(producer, 5)
        ring = rb.ring()
        assert ring.consume_n(2) == 2 and got == [0, 1]
        assert ring.consume_n(10) == 3 and got == [0, 1, 2, 3, 4]
        for bad in (0, -1, 2**31):
            with pytest.raises(ValueError, match="n "):
                ring.consume_n(bad)


def test_older_libbpf_names_the_version(producer: Object) -> None:
    with RingBuffer(producer.maps["rb"], lambda d: None) as rb:
        ring = rb.ring()
        if not _ffi.has("ring__consume"):
            with pytest.raises(pylibbpf.NotSupportedError, match=r"libbpf >= 1\.3"):
                ring.consume()
        if not _ffi.has("ring__consume_n"):
            with pytest.raises(pylibbpf.NotSupportedError, match=r"libbpf >= 1\.5"):
                ring.consume_n(1)
        emit(producer, 1)
        assert ring.avail_data_size > 0  # whichever way the positions are read
        assert rb.consume() == 1


def test_a_callback_cannot_consume_its_own_ring(producer: Object) -> None:
    errors: list[Exception] = []

    def callback(data: bytes) -> None:
        try:
            rb.ring().consume()
        except (pylibbpf.StateError, pylibbpf.NotSupportedError) as exc:
            errors.append(exc)

    with RingBuffer(producer.maps["rb"], callback) as rb:
        emit(producer, 1)
        assert rb.poll(1000) == 1
    assert len(errors) == 1
