"""pylibbpf.perf_event's general events: PerfEventAttr, open_event, open_per_cpu,
attach_per_cpu.  Software events (cpu-clock, task-clock, page-faults) per CPU and per task, read
as counters or sampled by a PERF_EVENT program that counts its runs; hardware events where the
machine has a PMU for them; exclusions accepted or refused as the kernel decides."""

from __future__ import annotations

import errno
import mmap
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import pylibbpf
from pylibbpf import ProgType, perf_event
from pylibbpf.perf_event import PerfEventAttr, PerfType, SoftwareEvent
from tests.support import unprivileged
from tests.test_perf_event import Counter

MSR_PMU = Path("/sys/bus/event_source/devices/msr")


def spin_cpu(seconds: float) -> float:
    """Run on the CPU for ``seconds`` of this thread's CPU time; returns the CPU time used."""
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        pass
    return time.thread_time() - start


def spin_user(rounds: int) -> int:
    """Busy-loop in user space: no clock is read (a clock read may be a system call, in a
    virtual machine even through the vDSO)."""
    total = 0
    for i in range(rounds):
        total += i
    return total


# ----------------------------------------------------------------------------- no kernel

def test_attr_reaches_the_c_struct() -> None:
    attr = PerfEventAttr.named("cpu-clock", frequency=99, exclude_user=True, inherit=True,
                               precise_ip=2, config1=7)
    c = attr.to_c()
    assert (c.type, c.size, c.config) == (PerfType.SOFTWARE, 128, SoftwareEvent.CPU_CLOCK)
    assert (c.freq, c.sample_freq, c.exclude_user, c.inherit, c.precise_ip) == (1, 99, 1, 1, 2)
    assert (c.exclude_kernel, c.disabled, c.config1, c.read_format) == (0, 0, 7, 3)
    if sys.byteorder == "little":  # the flags word as the kernel reads it
        flags = int.from_bytes(bytes(c)[40:48], "little")
        assert flags == (1 << 10) | (1 << 4) | (1 << 1) | (2 << 15)
    period = PerfEventAttr(PerfType.SOFTWARE, SoftwareEvent.TASK_CLOCK, period=1000).to_c()
    assert (period.freq, period.sample_period) == (0, 1000)
    assert not PerfEventAttr.named("page-faults").sampling
    assert PerfEventAttr.named("cycles").describe() == "cpu-cycles"
    assert PerfEventAttr(77, 5).describe() == "type 77 config 0x5"


@pytest.mark.parametrize(("fields", "error"), [
    ({"period": 10, "frequency": 10}, ValueError),
    ({"period": 0}, ValueError),
    ({"precise_ip": 4}, ValueError),
    ({"config": -1}, ValueError),
    ({"exclude_user": 1}, TypeError),
])
def test_attr_refuses(fields: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        PerfEventAttr(PerfType.SOFTWARE, **fields)


def test_refused_before_the_kernel() -> None:
    with pytest.raises(ValueError, match="no generic perf event"):
        PerfEventAttr.named("cpu-clocks")
    with pytest.raises(ValueError, match="cannot both be -1"):
        perf_event.open_event(PerfEventAttr.named("task-clock"))
    with pytest.raises(ValueError, match="never samples"):
        perf_event.attach_per_cpu(0, PerfEventAttr.named("cpu-clock"))
    with pytest.raises(TypeError):
        perf_event.open_event("cpu-clock", pid=0)  # type: ignore[arg-type]


def test_online_cpus_are_the_ones_we_may_run_on() -> None:
    cpus = perf_event.online_cpus()
    assert cpus == sorted(set(cpus))
    assert os.sched_getaffinity(0) <= set(cpus)


# ----------------------------------------------------------------------------- counters

@pytest.mark.needs("perf_event")
def test_task_clock_counts_this_threads_cpu_time() -> None:
    fd = perf_event.open_event(PerfEventAttr.named("task-clock"), pid=0)
    try:
        used = spin_cpu(0.1)
        value = perf_event.read_counter(fd)
    finally:
        os.close(fd)
    assert 0.8 * used * 1e9 <= value.value <= 1.2 * used * 1e9 + 10e6
    assert value.time_enabled >= value.time_running > 0
    assert value.scaled == value.value  # one software event: never multiplexed


@pytest.mark.needs("perf_event")
def test_disabled_enable_disable_reset() -> None:
    fd = perf_event.open_event(PerfEventAttr.named("task-clock", disabled=True), pid=0)
    try:
        spin_cpu(0.02)
        assert perf_event.read_counter(fd).value == 0
        perf_event.enable(fd)
        spin_cpu(0.02)
        perf_event.disable(fd)
        stopped = perf_event.read_counter(fd).value
        assert stopped >= 10e6
        spin_cpu(0.02)
        assert perf_event.read_counter(fd).value == stopped
        perf_event.reset(fd)
        assert perf_event.read_counter(fd).value == 0
    finally:
        os.close(fd)


@pytest.mark.needs("perf_event")
def test_cpu_clock_on_every_online_cpu() -> None:
    events = perf_event.open_per_cpu(PerfEventAttr.named("cpu-clock"))
    with events:
        assert events.cpus == perf_event.online_cpus() and len(events) == len(events.cpus)
        events.reset()
        start = time.monotonic()
        time.sleep(0.1)
        values = events.read()
        elapsed = time.monotonic() - start
        # a per-CPU clock counts the wall time it was enabled on its CPU, busy or idle
        for cpu, value in values.items():
            assert 0.5 * elapsed * 1e9 <= value.value <= 1.5 * elapsed * 1e9, cpu
        assert events.total() >= sum(v.value for v in values.values())
    assert events.closed
    with pytest.raises(pylibbpf.ClosedError):
        events.read()


@pytest.mark.needs("perf_event")
def test_page_faults_with_and_without_exclude_user() -> None:
    """Touching fresh pages faults in user mode: counted, unless user events are excluded."""
    pages = 512
    counts = {}
    for exclude_user in (False, True):
        attr = PerfEventAttr.named("page-faults", exclude_user=exclude_user)
        fd = perf_event.open_event(attr, pid=0)
        try:
            with mmap.mmap(-1, pages * mmap.PAGESIZE) as memory:
                for offset in range(0, pages * mmap.PAGESIZE, mmap.PAGESIZE):
                    memory[offset] = 1
            counts[exclude_user] = perf_event.read_counter(fd).value
        finally:
            os.close(fd)
    assert counts[False] >= pages
    assert counts[True] < pages // 10


@pytest.mark.needs("perf_event")
def test_per_pid_counter_and_inherit() -> None:
    """A counter on another process, with and without its children (``inherit``)."""
    script = textwrap.dedent("""
        import os, sys, time
        print("ready", flush=True)
        sys.stdin.readline()
        def spin():
            start = time.thread_time()
            while time.thread_time() - start < 1.0:
                pass
        if os.fork() == 0:
            spin()
            os._exit(0)
        os.wait()
    """)
    values = {}
    for inherit in (False, True):
        child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE)
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == b"ready\n"  # its start-up is not measured
            fd = perf_event.open_event(PerfEventAttr.named("task-clock", inherit=inherit),
                                       pid=child.pid)
            try:
                assert child.stdin is not None
                child.stdin.write(b"go\n")
                child.stdin.close()
                assert child.wait(60) == 0
                values[inherit] = perf_event.read_counter(fd).value
            finally:
                os.close(fd)
        finally:
            child.kill()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
    # the child forks and waits; its child spins for 1 s, counted in only with inherit (what
    # the child itself uses varies: its fork and exit take tenths of a second in a TCG guest)
    assert values[True] >= 0.9e9
    assert values[True] - values[False] >= 0.5e9


@pytest.mark.needs("perf_event")
def test_hardware_events_follow_the_pmu() -> None:
    """Where a CPU PMU exists, instructions count; where none does (most VMs), opening one is
    NotSupportedError and no fd is left behind."""
    has_pmu = any((Path("/sys/bus/event_source/devices") / name / "events").is_dir()
                  for name in ("cpu", "cpu_core", "armv8_pmuv3"))
    attr = PerfEventAttr.named("instructions", exclude_kernel=True)
    if has_pmu:
        fd = perf_event.open_event(attr, pid=0)
        try:
            spin_cpu(0.01)
            assert perf_event.read_counter(fd).scaled > 100_000
        finally:
            os.close(fd)
    else:
        before = len(os.listdir("/proc/self/fd"))
        with pytest.raises(pylibbpf.NotSupportedError) as missing:
            perf_event.open_event(attr, pid=0)
        assert missing.value.errno in (errno.ENOENT, errno.EOPNOTSUPP)
        assert "PMU" in str(missing.value)
        assert len(os.listdir("/proc/self/fd")) == before


@pytest.mark.needs("perf_event")
def test_exclusions_accepted_or_refused_by_the_pmu() -> None:
    """The software PMU honours every exclusion; a PMU that cannot exclude (x86's msr PMU,
    PERF_PMU_CAP_NO_EXCLUDE) refuses each with EINVAL.  pylibbpf passes them unchanged."""
    for flag in ("exclude_user", "exclude_kernel", "exclude_hv", "exclude_idle",
                 "exclude_host", "exclude_guest"):
        attr = PerfEventAttr.named("cpu-clock", frequency=99, **{flag: True})
        os.close(perf_event.open_event(attr, cpu=perf_event.online_cpus()[0]))
    if not (MSR_PMU / "type").is_file():
        return  # no such PMU on this machine (not x86): the software half is the test
    msr = int((MSR_PMU / "type").read_text())
    os.close(perf_event.open_event(PerfEventAttr(msr, 0), cpu=0))     # tsc, no exclusion
    for flag in ("exclude_user", "exclude_kernel", "exclude_hv"):
        with pytest.raises(pylibbpf.BpfError) as refused:
            perf_event.open_event(PerfEventAttr(msr, 0, **{flag: True}), cpu=0)
        assert refused.value.errno == errno.EINVAL, flag


UNPRIVILEGED_OPENS = """
from pylibbpf import perf_event
attr = perf_event.PerfEventAttr.named
for name, kwargs in (("own", dict(pid=0)), ("own_user_only", dict(pid=0)),
                     ("cpu", dict(cpu=0))):
    try:
        fd = perf_event.open_event(attr("task-clock" if name != "cpu" else "cpu-clock",
                                        exclude_kernel=name == "own_user_only"), **kwargs)
        print(name, "ok")
    except OSError as exc:
        print(name, exc.errno, type(exc).__name__)
"""


@pytest.mark.needs("perf_event")
def test_unprivileged_opens_follow_perf_event_paranoid() -> None:
    """As user nobody without capabilities, what ``kernel.perf_event_paranoid`` allows opens
    and the rest is a permission error (EACCES)."""
    paranoid = int(Path("/proc/sys/kernel/perf_event_paranoid").read_text())
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
           unprivileged.python(), "-c", UNPRIVILEGED_OPENS]
    run = subprocess.run(cmd, capture_output=True, text=True, env=unprivileged.env(),
                         timeout=60, cwd="/")
    assert run.returncode == 0, run.stderr
    got = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    denied = f"{errno.EACCES} BpfPermissionError"
    expect = {
        "own": "ok" if paranoid <= 1 else denied,
        "own_user_only": "ok" if paranoid <= 2 else denied,
        "cpu": "ok" if paranoid <= 0 else denied,
    }
    assert got == expect, f"perf_event_paranoid={paranoid}"


# ----------------------------------------------------------------------------- sampling

@pytest.mark.needs("perf_event")
def test_attach_per_cpu_counts_samples() -> None:
    counter = Counter(ProgType.PERF_EVENT, os.getpid())
    try:
        attr = PerfEventAttr.named("cpu-clock", frequency=1000)
        with perf_event.attach_per_cpu(counter.prog_fd, attr) as links:
            assert links.cpus == perf_event.online_cpus()
            assert all(link.perf_fd >= 0 for link in links)
            used = spin_cpu(0.3)
            assert set(links.read()) == set(links.cpus)
        samples = counter.value
        # 1000 Hz on a clock event is a 1 ms period: ~300 samples of this process (a TCG guest's
        # emulated timer fires late and gets about half)
        assert 0.25 * used * 1000 <= samples <= 1.5 * used * 1000 + 20
        spin_cpu(0.05)
        assert counter.value == samples  # detached everywhere
        assert links.closed and all(link.closed for link in links._links.values())
    finally:
        counter.close()


@pytest.mark.needs("perf_event")
def test_sample_period_and_frequency() -> None:
    """One thread sampled by task-clock every 2 ms, then at 50 Hz (20 ms): ~10 times fewer.

    The upper bounds are tight (a frequency taken for a period would sample every 50 ns); the
    lower ones leave room for a TCG guest, whose emulated timer fires late."""
    counts = {}
    for name, fields in (("period", {"period": 2_000_000}), ("frequency", {"frequency": 50})):
        counter = Counter(ProgType.PERF_EVENT, os.getpid())
        try:
            attr = PerfEventAttr.named("task-clock", **fields)
            with perf_event.attach_event(counter.prog_fd, attr, pid=0):
                used = spin_cpu(0.4)
            counts[name] = (counter.value, used)
        finally:
            counter.close()
    (by_period, used_p), (by_freq, used_f) = counts["period"], counts["frequency"]
    assert 0.3 * used_p * 500 <= by_period <= 1.4 * used_p * 500 + 10
    assert 0.3 * used_f * 50 <= by_freq <= 1.4 * used_f * 50 + 3
    assert 4 <= by_period / by_freq <= 14


@pytest.mark.needs("perf_event")
def test_exclude_user_on_a_sampled_clock() -> None:
    """A user-space busy loop is hardly sampled by a clock that excludes user mode."""
    counts = {}
    for exclude_user in (False, True):
        counter = Counter(ProgType.PERF_EVENT, os.getpid())
        try:
            attr = PerfEventAttr.named("task-clock", period=200_000,
                                       exclude_user=exclude_user)
            with perf_event.attach_event(counter.prog_fd, attr, pid=0):
                spin_user(1_000_000)
            counts[exclude_user] = counter.value
        finally:
            counter.close()
    assert counts[False] >= 50
    assert counts[True] <= counts[False] // 5


@pytest.mark.needs("perf_event")
def test_per_cpu_set_attach_failure_closes_everything() -> None:
    """A program of the wrong type is refused; the set's events are all closed."""
    counter = Counter(ProgType.TRACEPOINT, None)
    try:
        before = len(os.listdir("/proc/self/fd"))
        events = perf_event.open_per_cpu(PerfEventAttr.named("cpu-clock", frequency=99))
        fds = list(events.fds.values())
        with pytest.raises(pylibbpf.BpfError):
            events.attach(counter.prog_fd)
        assert events.closed
        for fd in fds:
            with pytest.raises(OSError):
                os.fstat(fd)
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        counter.close()
