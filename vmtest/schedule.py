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

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from vmtest.proc import ChildTimeout, run_guarded, sigterm_raises
from vmtest.tiers import CHECKOUT, DISTRO_TIERS, parse_tier

# what the matrix adds to a host libbpf tier's whole-suite run (the VM boot tests are slow)
HOST_LIBBPF_SELECTION = ("-m", "not slow")
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
    suite but for the slow tests; a guest or distribution tier its default selection.
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
    return cmd + ["--", *selection, *extra]


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
