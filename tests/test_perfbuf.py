"""PerfBuffer against a real kernel: a tracepoint on getpid() filtered by our tgid emits one
sample per call, numbered; the BPF side counts failed outputs, so lost counts are exact."""

from __future__ import annotations

import os
import struct
import traceback
from collections.abc import Iterator

import pytest

import pylibbpf
from pylibbpf import EventsLostWarning, Link, Object, PerfBuffer, PerfSample
from tests.support.ring_producer import traced_getpid

# events_perf.bpf.c counts with atomic fetch-and-add
pytestmark = pytest.mark.kernel

SAMPLE = struct.Struct("<QII48s")


@pytest.fixture
def traced() -> Iterator[tuple[Object, Link]]:
    with traced_getpid() as pair:
        yield pair


def calls(n: int) -> None:
    for _ in range(n):
        os.getpid()


def test_every_sample_in_order(traced: tuple[Object, Link]) -> None:
    obj, _link = traced
    got: list[tuple[int, int, int]] = []

    def sample(cpu: int, data: bytes) -> None:
        seq, on_cpu, _pad, payload = SAMPLE.unpack_from(data)
        assert payload.rstrip(b"\0") == b"p"
        got.append((seq, cpu, on_cpu))

    with PerfBuffer(obj.maps["samples"], sample, lambda cpu, n: None, page_count=64) as pb:
        assert pb.buffer_count == pylibbpf.num_possible_cpus() or pb.buffer_count >= 1
        calls(500)
        while len(got) < 500:
            assert pb.poll(1000) > 0
        assert pb.lost == 0
    assert [seq for seq, _cpu, _on in got] == list(range(500))
    assert {(cpu, on) for _seq, cpu, on in got} == {(0, 0)}
    assert obj.bss.get_int("produced") == 500 and obj.bss.get_int("failed") == 0


def test_lost_samples_are_counted_and_reported(traced: tuple[Object, Link]) -> None:
    obj, _link = traced
    got: list[int] = []
    lost: list[tuple[int, int]] = []
    with PerfBuffer(obj.maps["samples"], lambda cpu, d: got.append(SAMPLE.unpack_from(d)[0]),
                    lambda cpu, n: lost.append((cpu, n)), page_count=1) as pb:
        calls(1000)  # one page holds a few dozen samples: most are lost
        pb.consume()
        calls(1)  # the kernel writes the LOST record when there is room again
        pb.consume()
        failed = obj.bss.get_int("failed")
        assert failed > 0
        assert pb.lost == sum(n for _cpu, n in lost) == failed
        assert pb.lost_by_cpu == {0: failed}
        assert len(got) + failed == 1001
        assert got == sorted(got) and len(set(got)) == len(got)


def test_lost_without_callback_warns(traced: tuple[Object, Link]) -> None:
    obj, _link = traced
    with PerfBuffer(obj.maps["samples"], lambda cpu, d: None, page_count=1) as pb:
        calls(1000)
        pb.consume()
        calls(1)
        with pytest.warns(EventsLostWarning, match="lost"):
            pb.consume()
        assert pb.lost == obj.bss.get_int("failed") > 0


def test_consume_buffer_per_cpu(traced: tuple[Object, Link]) -> None:
    obj, _link = traced
    got: list[int] = []
    with PerfBuffer(obj.maps["samples"], lambda cpu, d: got.append(cpu),
                    lambda cpu, n: None) as pb:
        calls(20)
        if pb.buffer_count > 1:
            pb.consume_buffer(1)
            assert got == []
        pb.consume_buffer(0)
        assert got == [0] * 20
        assert pb.buffer_fd(0) >= 0
        with pytest.raises(ValueError, match="out of range"):
            pb.consume_buffer(pb.buffer_count)
        with pytest.raises(ValueError, match="out of range"):
            pb.buffer_fd(-1)
        with pytest.raises(TypeError):
            pb.consume_buffer("0")  # type: ignore[arg-type]


def test_exception_keeps_later_samples(traced: tuple[Object, Link]) -> None:
    obj, _link = traced
    seen: list[int] = []

    def sample(cpu: int, data: bytes) -> None:
        seq = SAMPLE.unpack_from(data)[0]
        seen.append(seq)
        if seq == 3:
            raise KeyError("sample 3")

    with PerfBuffer(obj.maps["samples"], sample, lambda cpu, n: None) as pb:
        calls(10)
        with pytest.raises(KeyError, match="sample 3") as info:
            pb.poll(1000)
        assert "sample" in [f.name for f in traceback.extract_tb(info.value.__traceback__)]
        assert seen == [0, 1, 2, 3]
        pb.consume()  # the samples libbpf read after the exception come first, none lost
        assert seen == list(range(10))


def test_queue_mode(traced: tuple[Object, Link]) -> None:
    obj, _link = traced
    with PerfBuffer(obj.maps["samples"], decode=lambda d: SAMPLE.unpack_from(d)[0]) as pb:
        calls(30)
        events = list(pb.events(1000))
        assert events == [PerfSample(0, n) for n in range(30)]


def test_bad_arguments(traced: tuple[Object, Link]) -> None:
    obj, _link = traced
    with pytest.raises(ValueError, match="power of two"):
        PerfBuffer(obj.maps["samples"], print, page_count=3)
    # size_t would truncate 2**64 to 0 and libbpf's page size times 2**63 to 0
    for bad in (0, -1, 2**63, 2**64):
        with pytest.raises(ValueError, match="page_count"):
            PerfBuffer(obj.maps["samples"], print, page_count=bad)
    with pytest.raises(TypeError, match="page_count"):
        PerfBuffer(obj.maps["samples"], print, page_count=64.0)  # type: ignore[arg-type]
    with PerfBuffer(obj.maps["samples"], print, page_count=1) as pb:
        for timeout in (-2, 2**31, 2**32 - 1):
            with pytest.raises(ValueError, match="timeout_ms"):
                pb.poll(timeout)
        with pytest.raises(TypeError, match="timeout_ms"):
            pb.poll(0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not PERF_EVENT_ARRAY"):
        PerfBuffer(obj.maps[".bss"] if ".bss" in obj.maps else obj.maps["events_p.bss"], print)
