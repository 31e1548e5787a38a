"""Run matrix tiers side by side: each tier is a ``python -m vmtest run`` child process.

A guest's pytest is one Python process, so a TCG guest keeps about one host core busy; two
tiers at a time use a two-core machine fully.  Tiers that test on this machine's kernel (the
host tiers and the distribution tiers, which chroot on it) never overlap one another: they would
share bpffs pins, cgroups, network devices and the tracepoints whose hits the tests count.  A
guest has a kernel of its own and runs beside anything.

Each child writes its junit XML as ``OUT/<tier>.xml`` and its output to ``OUT/<tier>.log``;
output lines are also passed to a callback with the tier's name, so the caller decides what to
show.  Interrupting the matrix (Ctrl-C, SIGTERM) kills every running tier's process group.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from vmtest.proc import ChildTimeout, run_guarded, sigterm_raises
from vmtest.tiers import CHECKOUT, DISTRO_TIERS, parse_tier

# what the matrix adds to a host libbpf tier's whole-suite run (the VM boot tests are slow)
HOST_LIBBPF_SELECTION = ("-m", "not slow")
# what the matrix runs in a guest with another libbpf (7.3-libbpf-1.7.0): the tests needing a
# kernel feature this machine's kernel lacks or refuses (no kprobes, lockdown, no modules or
# netkit: docs/kernel-matrix.md), and those needing a libbpf version.  Every other kernel test
# already runs against that libbpf on the host (host-libbpf-1.7.0) and on that kernel with the
# system libbpf (7.3): the pair adds nothing there but 10 to 15 minutes of TCG.
GUEST_LIBBPF_FEATURES = ("fentry", "iter_map_elem", "kprobe", "kprobe_multi", "kprobe_session",
                         "lsm", "module_btf", "netkit", "libbpf")
GUEST_LIBBPF_SELECTION = (f"--vmtest-needs-any={','.join(GUEST_LIBBPF_FEATURES)}",)
# what the matrix leaves out of a distribution tier's whole suite: the test that boots a 6.1
# guest under QEMU (vmtest's own end-to-end check) would set up vmtest from nothing inside the
# fresh root (apt indexes, kernel, system disk, a TCG boot) while holding this kernel's slot; the
# matrix's guest tiers boot for real and the host tier runs that test, timeout path included
DISTRO_SELECTION = ("--deselect", "tests/test_vm_runner.py::test_boot_6_1_runs_pytest_inside")
# time a tier's child gets beyond the tier's own timeout (fetching, building the disks)
GRACE_SECONDS = 600.0


@dataclass
class TierRun:
    """One finished tier: its exit code (2: it never reported one), XML and wall time."""

    label: str
    returncode: int
    junit: Path | None
    seconds: float
    log: Path


def on_this_kernel(label: str) -> bool:
    """Whether ``label`` runs its tests on this machine's kernel (host or distribution tier)."""
    kernel, _libbpf = parse_tier(label)
    return kernel == "host" or kernel in DISTRO_TIERS


def tier_command(label: str, extra: Sequence[str], timeout: float, out: Path) -> list[str]:
    """The ``python -m vmtest run`` command line of one matrix tier.

    ``host`` runs the whole suite (it is the suite's main run); a host libbpf tier the whole
    suite but for the slow tests; a guest with another libbpf the kernel tests no other tier
    covers (:data:`GUEST_LIBBPF_SELECTION`); a distribution tier its whole suite but the VM boot
    test (:data:`DISTRO_SELECTION`); a guest its default selection.
    """
    kernel, libbpf = parse_tier(label)
    cmd = [sys.executable, "-m", "vmtest", "run", "--kernel", kernel,
           "--timeout", str(timeout), "--out", str(out)]
    selection: list[str] = []
    if libbpf is not None:
        cmd += ["--libbpf", libbpf]
    if kernel == "host":
        cmd.append("--all")
        if libbpf is not None:
            selection = list(HOST_LIBBPF_SELECTION)
    elif kernel in DISTRO_TIERS:
        selection = list(DISTRO_SELECTION)
    elif libbpf is not None:
        selection = list(GUEST_LIBBPF_SELECTION)
    return cmd + ["--", *selection, *extra]


# seconds each tier is expected to take in a full matrix run (two at a time, so with a
# neighbour), what the planner orders the tiers by when no earlier run's ``tiers.json`` says
# better: the last full runs' times less the cuts measured since (the guests' open-validation
# builds, about 90 s each, and compat run's translation tests, about 70 s each; the guest libbpf
# tier's selection, 164 s measured; the distribution tier's VM boot test)
ESTIMATES: dict[str, float] = {
    "host": 450, "host-libbpf-1.4.6": 350, "host-libbpf-1.5": 350, "host-libbpf-1.7.0": 350,
    "debian13": 500, "7.3-libbpf-1.7.0": 200, "7.3": 640, "6.12": 590, "6.1": 590,
    "5.10": 540,
}
# a tier in neither: a guest, or a tier on this kernel
DEFAULT_GUEST_SECONDS = 750.0
DEFAULT_HOST_SECONDS = 400.0


def estimates(previous: Path | None = None) -> dict[str, float]:
    """Each tier's expected seconds: :data:`ESTIMATES`, updated with the times an earlier
    matrix run wrote into ``previous`` (its ``tiers.json``) for the tiers that passed."""
    known = dict(ESTIMATES)
    if previous is None or not previous.exists():
        return known
    try:
        runs = json.loads(previous.read_text())
        for run in runs:
            if run.get("returncode") == 0 and float(run.get("seconds") or 0) > 0:
                known[str(run["name"])] = float(run["seconds"])
    except (ValueError, TypeError, KeyError, AttributeError):
        return dict(ESTIMATES)  # unreadable: the static table
    return known


def expected_seconds(label: str, known: Mapping[str, float]) -> float:
    """``known[label]``, else the default for a guest or a tier on this kernel."""
    if label in known:
        return known[label]
    return DEFAULT_HOST_SECONDS if on_this_kernel(label) else DEFAULT_GUEST_SECONDS


@dataclass(frozen=True)
class Planned:
    """One tier in a simulated schedule."""

    label: str
    slot: int
    start: float
    end: float


def simulate(order: Sequence[str], seconds: Mapping[str, float], jobs: int) -> list[Planned]:
    """The schedule :func:`run_tiers` makes of ``order`` if every tier takes ``seconds[label]``:
    whenever a slot is free it starts the first pending tier allowed (one on this kernel at a
    time), as :class:`_Slots` does."""
    jobs = max(1, jobs)
    pending = list(order)
    running: list[Planned] = []
    done: list[Planned] = []
    now = 0.0
    while pending or running:
        busy_slots = {r.slot for r in running}
        host_busy = any(on_this_kernel(r.label) for r in running)
        started = False
        if len(running) < jobs:
            for label in pending:
                if not (host_busy and on_this_kernel(label)):
                    slot = min(set(range(jobs)) - busy_slots)
                    running.append(Planned(label, slot, now, now + seconds[label]))
                    pending.remove(label)
                    started = True
                    break
        if started:
            continue
        first = min(running, key=lambda r: (r.end, r.slot))
        running.remove(first)
        done.append(first)
        now = first.end
    return sorted(done, key=lambda r: (r.start, r.slot))


def _merges(a: Sequence[str], b: Sequence[str]) -> Iterator[list[str]]:
    """Every interleaving of ``a`` and ``b`` that keeps each one's own order."""
    n = len(a) + len(b)
    for where in itertools.combinations(range(n), len(a)):
        ai, bi = iter(a), iter(b)
        chosen = set(where)
        yield [next(ai) if i in chosen else next(bi) for i in range(n)]


def plan(labels: Sequence[str], seconds: Mapping[str, float], jobs: int) -> list[str]:
    """The order to start ``labels`` in so that, by ``seconds``, the matrix ends soonest.

    Guests go longest first; the tiers on this kernel, which take turns in one slot, are tried
    in every order, and both lists in every interleaving (a few tens of thousands of simulated
    schedules for ten tiers, well under a second), keeping the first with the shortest total
    (ties: the one starting ``host`` soonest, the suite's main run).  Short tiers on this
    kernel typically end up last, filling the slot a long guest leaves.
    """
    if len(labels) <= 1 or jobs <= 1:
        return list(labels)
    times = {label: expected_seconds(label, seconds) for label in labels}
    guests = sorted((t for t in labels if not on_this_kernel(t)), key=lambda t: -times[t])
    local = sorted((t for t in labels if on_this_kernel(t)), key=lambda t: -times[t])
    best: list[str] = list(labels)
    best_key = _score(best, times, jobs)
    seen: set[tuple[float, ...]] = set()
    orders = itertools.permutations(local) if len(local) <= 6 else iter([tuple(local)])
    for local_order in orders:
        shape = tuple(times[t] for t in local_order)
        if shape in seen:  # tiers of equal length swapped: the same schedule
            continue
        seen.add(shape)
        for order in _merges(guests, local_order):
            key = _score(order, times, jobs)
            if key < best_key:
                best, best_key = order, key
    return best


def _score(order: Sequence[str], times: Mapping[str, float], jobs: int) -> tuple[float, float]:
    """(total, when ``host`` starts) of ``order``'s simulated schedule: lower is better."""
    planned = simulate(order, times, jobs)
    host = [p.start for p in planned if p.label == "host"]
    return makespan(planned), (host[0] if host else 0.0)


def makespan(schedule: Sequence[Planned]) -> float:
    """When the last tier of a simulated schedule ends."""
    return max((p.end for p in schedule), default=0.0)


def describe(schedule: Sequence[Planned]) -> list[str]:
    """A simulated schedule as lines: each tier's slot, start and end, then the total."""
    lines = [f"  slot {p.slot}: {p.start:6.0f} s - {p.end:6.0f} s  {p.label}" for p in schedule]
    return lines + [f"  expected total {makespan(schedule):.0f} s "
                    f"({makespan(schedule) / 60:.1f} min)"]


class _Slots:
    """Which tiers may start: at most ``jobs`` at once, one of them on this kernel."""

    def __init__(self, labels: Sequence[str], jobs: int) -> None:
        self.pending = list(labels)
        self.jobs = max(1, jobs)
        self.running: set[str] = set()
        self.cond = threading.Condition()

    def _pick(self) -> str | None:
        if len(self.running) >= self.jobs:
            return None
        host_busy = any(on_this_kernel(r) for r in self.running)
        for label in self.pending:
            if not (host_busy and on_this_kernel(label)):
                return label
        return None

    def take(self) -> str | None:
        """Block until a tier may start and return it; None once nothing is pending."""
        with self.cond:
            while self.pending:
                label = self._pick()
                if label is not None:
                    self.pending.remove(label)
                    self.running.add(label)
                    return label
                self.cond.wait()
            return None

    def cancel(self) -> None:
        """Start nothing more."""
        with self.cond:
            self.pending.clear()
            self.cond.notify_all()

    def done(self, label: str) -> None:
        with self.cond:
            self.running.discard(label)
            self.cond.notify_all()


def run_tiers(
    labels: Sequence[str], extra: Sequence[str], *, jobs: int, timeout: float, out: Path,
    on_line: Callable[[str, str], None], on_done: Callable[[TierRun], None],
) -> list[TierRun]:
    """Run ``labels`` (``jobs`` at a time, in this order as far as the rule above allows).

    ``on_line(label, line)`` gets every output line, ``on_done`` each tier as it ends (both from
    worker threads, one call at a time).  Returns the runs in ``labels`` order.
    """
    out.mkdir(parents=True, exist_ok=True)
    slots = _Slots(labels, jobs)
    finished: dict[str, TierRun] = {}
    pids: dict[str, int] = {}
    report_lock = threading.Lock()

    def work() -> None:
        while (label := slots.take()) is not None:
            junit, log = out / f"{label}.xml", out / f"{label}.log"
            junit.unlink(missing_ok=True)  # never read a previous run's XML
            started = time.monotonic()
            with open(log, "w", buffering=1) as sink:
                def line(text: str, label: str = label, sink: TextIO = sink) -> None:
                    sink.write(text + "\n")
                    with report_lock:
                        on_line(label, text)

                def started_as(pid: int, label: str = label) -> None:
                    pids[label] = pid

                try:
                    rc = run_guarded(tier_command(label, extra, timeout, out),
                                     timeout=timeout + GRACE_SECONDS, on_line=line,
                                     cwd=str(CHECKOUT), on_start=started_as)
                except ChildTimeout as e:
                    line(f"vmtest: tier {label}: {e}")
                    rc = 2
                except OSError as e:
                    line(f"vmtest: tier {label} could not start: {e}")
                    rc = 2
            pids.pop(label, None)
            run = TierRun(label, rc, junit if junit.exists() else None,
                          time.monotonic() - started, log)
            with report_lock:
                finished[label] = run
                on_done(run)
            slots.done(label)

    workers = [threading.Thread(target=work, name=f"tier-{i}", daemon=True)
               for i in range(min(slots.jobs, len(labels)))]
    for w in workers:
        w.start()
    try:
        with sigterm_raises():
            for w in workers:
                while w.is_alive():
                    w.join(timeout=0.5)
    finally:  # interrupted: take every running tier down with us (each cleans up on SIGTERM)
        slots.cancel()
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 0.0)):
            for pid in list(pids.values()):
                try:
                    os.killpg(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            deadline = time.monotonic() + wait
            while pids and time.monotonic() < deadline:
                time.sleep(0.1)
    return [finished[label] for label in labels if label in finished]


def default_jobs() -> int:
    """Two tiers at a time on a machine with two or more cores, else one."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1
