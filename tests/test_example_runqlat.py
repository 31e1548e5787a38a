"""examples/runqlat end to end: a child that sleeps N times is woken N times; the histogram of
that process counts at least N run-queue waits, with tp_btf (chosen by probing) and with the
raw_tp fallback."""

from __future__ import annotations

import re

import pytest

from tests.support.repetition import rounds
from tests.support.tools import trace_child

pytestmark = pytest.mark.kernel

SLEEPS = rounds(200, 40)
SLEEPER = ("import sys, time\nsys.stdin.readline()\n"
           f"for _ in range({SLEEPS}):\n    time.sleep(0.001)\n")


def _histogram_of_sleeper(*args: str) -> tuple[str, int, dict[int, int]]:
    """runqlat -P on a sleeping child; (output, the child's pid, its histogram: low -> count)."""
    out, pid = trace_child(SLEEPER, "runqlat", "-P", "--pid", "{pid}", *args, ready="Tracing")
    section = out.partition(f"pid = {pid} ")[2]
    assert section, out
    counts = {int(low): int(count) for low, count in
              re.findall(r"^\s*(\d+) -> \d+\s*: (\d+)", section.split("\npid = ")[0], re.M)}
    return out, pid, counts


def _check(out: str, pid: int, counts: dict[int, int]) -> None:
    # one histogram (one process: the filter), in microseconds; a wake-up of the child is
    # followed by a switch to it, and a few more waits (start-up, preemptions) may count.  On
    # a loaded machine a sleep's timer can fire before the child has switched out (its vCPU
    # was descheduled between arming the timer and blocking): the wake-up then finds it still
    # running, no switch follows, and the next wake-up replaces that start time, so a few of
    # the sleeps may count no wait of their own.
    assert out.count("\npid = ") == 1, out
    assert "usecs               : count     distribution" in out
    assert SLEEPS - SLEEPS // 20 <= sum(counts.values()) <= 20 * SLEEPS, out


@pytest.mark.needs("tp_btf")
def test_runqlat_probes_and_loads_tp_btf() -> None:
    out, pid, counts = _histogram_of_sleeper()
    assert "probe: tp_btf on sched_switch: supported" in out
    assert "Tracing run queue latency (tp_btf)" in out
    _check(out, pid, counts)


@pytest.mark.needs("raw_tp")
def test_runqlat_raw_tp_fallback() -> None:
    out, pid, counts = _histogram_of_sleeper("--variant", "raw_tp")
    assert "probe:" not in out and "Tracing run queue latency (raw_tp)" in out
    _check(out, pid, counts)
