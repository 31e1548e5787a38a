"""The matrix's scheduler: tiers side by side, never two on this machine's kernel at once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from vmtest import schedule


def test_tiers_on_this_kernel_are_the_host_and_distribution_ones() -> None:
    assert schedule.on_this_kernel("host")
    assert schedule.on_this_kernel("host-libbpf-1.7.0")
    assert schedule.on_this_kernel("debian13")
    assert not schedule.on_this_kernel("6.1")
    assert not schedule.on_this_kernel("7.3-libbpf-1.7.0")


def test_tier_commands() -> None:
    out = Path("/o")
    host = schedule.tier_command("host", ["-x"], 100, out)
    assert host[1:] == ["-m", "vmtest", "run", "--kernel", "host", "--timeout", "100",
                        "--out", "/o", "--all", "--", "-x"]
    lib = schedule.tier_command("host-libbpf-1.5", [], 100, out)
    assert lib[lib.index("--libbpf") + 1] == "1.5"
    assert "--all" in lib and lib[lib.index("--"):] == ["--", "-m", "not slow"]
    guest = schedule.tier_command("7.3-libbpf-1.7.0", ["-x"], 100, out)
    assert guest[guest.index("--kernel") + 1] == "7.3" and "--all" not in guest
    assert guest[guest.index("--"):] == ["--", *schedule.GUEST_LIBBPF_SELECTION, "-x"]
    plain = schedule.tier_command("6.1", [], 100, out)
    assert plain[-1] == "--" and "--libbpf" not in plain
    distro = schedule.tier_command("debian13", [], 100, out)
    assert distro[distro.index("--"):] == ["--", *schedule.DISTRO_SELECTION]


def test_the_guest_libbpf_tier_keeps_what_no_other_tier_runs() -> None:
    """The selection keeps the kernel tests needing a feature this machine's kernel lacks or a
    libbpf version; the plugin's --vmtest-needs-any does the keeping."""
    from vmtest.pytest_plugin import needs_any

    wanted = set(schedule.GUEST_LIBBPF_FEATURES)
    assert needs_any(["kprobe_session", "libbpf>=1.5"], wanted)
    assert needs_any(["libbpf>=1.6"], wanted) and needs_any(["ringbuf", "fentry"], wanted)
    assert not needs_any(["ringbuf"], wanted) and not needs_any([], wanted)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "vmtest.pytest_plugin",
         "-p", "no:cacheprovider", *schedule.GUEST_LIBBPF_SELECTION,
         "tests/test_vm_runner.py", "tests/test_maps.py"],
        cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    kept = [line for line in proc.stdout.splitlines() if "::" in line]
    assert kept == ["tests/test_vm_runner.py::test_kprobe_session_runs_on_entry_and_return"]
    assert "deselected" in proc.stdout.splitlines()[-1]


def _fake_tiers(monkeypatch: pytest.MonkeyPatch, seconds: float, codes: dict[str, int]) -> None:
    """Each tier becomes a child that prints its name, writes its XML, sleeps and exits."""
    def command(label: str, extra: object, timeout: float, out: Path) -> list[str]:
        code = (f"import time, pathlib; print('start {label}', flush=True); "
                f"pathlib.Path({str(out / (label + '.xml'))!r}).write_text('<x/>'); "
                f"time.sleep({seconds}); print('end {label}'); raise SystemExit({codes[label]})")
        return [sys.executable, "-c", code]

    monkeypatch.setattr(schedule, "tier_command", command)


def test_two_at_a_time_and_one_on_this_kernel(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    labels = ["host", "host-libbpf-1.5", "6.1", "5.10", "debian13"]
    _fake_tiers(monkeypatch, 0.6, {label: 0 for label in labels} | {"5.10": 3})
    running: set[str] = set()
    overlap: list[set[str]] = []
    lock = threading.Lock()
    lines: list[tuple[str, str]] = []

    def on_line(label: str, line: str) -> None:
        lines.append((label, line))
        with lock:
            if line.startswith("start"):
                running.add(label)
                overlap.append(set(running))
            elif line.startswith("end"):
                running.discard(label)

    done: list[str] = []
    runs = schedule.run_tiers(labels, [], jobs=2, timeout=60, out=tmp_path, on_line=on_line,
                              on_done=lambda run: done.append(run.label))
    assert [r.label for r in runs] == labels and sorted(done) == sorted(labels)
    assert {r.label: r.returncode for r in runs}["5.10"] == 3
    assert all(r.returncode == 0 for r in runs if r.label != "5.10")
    assert all(r.junit == tmp_path / f"{r.label}.xml" for r in runs)
    assert (tmp_path / "6.1.log").read_text().splitlines() == ["start 6.1", "end 6.1"]
    assert max(len(s) for s in overlap) == 2  # side by side ...
    for together in overlap:  # ... but never two tiers on this kernel
        assert sum(schedule.on_this_kernel(t) for t in together) <= 1, together
    assert ("host", "start host") in lines


def test_a_stale_xml_is_not_taken_for_this_run(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    (tmp_path / "6.1.xml").write_text("<old/>")
    monkeypatch.setattr(schedule, "tier_command",
                        lambda *_a: [sys.executable, "-c", "raise SystemExit(2)"])
    runs = schedule.run_tiers(["6.1"], [], jobs=2, timeout=60, out=tmp_path,
                              on_line=lambda *_: None, on_done=lambda _r: None)
    assert runs[0].returncode == 2 and runs[0].junit is None


def test_a_tier_past_its_time_is_killed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(schedule, "GRACE_SECONDS", 0.0)
    _fake_tiers(monkeypatch, 120, {"6.1": 0})
    began = time.monotonic()
    runs = schedule.run_tiers(["6.1"], [], jobs=1, timeout=1, out=tmp_path,
                              on_line=lambda *_: None, on_done=lambda _r: None)
    assert runs[0].returncode == 2 and time.monotonic() - began < 60
    assert "still running after" in runs[0].log.read_text()


def test_simulate_follows_the_slot_rule() -> None:
    seconds = {"host": 4.0, "host-libbpf-1.5": 3.0, "6.1": 10.0, "5.10": 2.0}
    planned = schedule.simulate(["host", "host-libbpf-1.5", "6.1", "5.10"], seconds, 2)
    at = {p.label: (p.start, p.end) for p in planned}
    # host and 6.1 first; the libbpf tier waits for host (this kernel), 5.10 for a free slot
    assert at == {"host": (0, 4), "6.1": (0, 10), "host-libbpf-1.5": (4, 7), "5.10": (7, 9)}
    assert schedule.makespan(planned) == 10
    assert schedule.simulate(["6.1", "5.10"], seconds, 1)[1].start == 10  # one slot: in turn
    assert schedule.describe(planned)[-1].strip().startswith("expected total 10 s")


def test_plan_puts_short_tiers_on_this_kernel_last_to_fill_the_other_slot() -> None:
    seconds = {"host": 4.0, "host-libbpf-1.4.6": 3.0, "host-libbpf-1.7.0": 3.0,
               "7.3": 10.0, "6.1": 6.0}
    labels = list(seconds)
    given = schedule.makespan(schedule.simulate(labels, seconds, 2))
    order = schedule.plan(labels, seconds, 2)
    best = schedule.makespan(schedule.simulate(order, seconds, 2))
    assert sorted(order) == sorted(labels)
    assert best == 13 < given  # 7.3 then host-libbpf-1.7.0 | host, 6.1, host-libbpf-1.4.6
    assert order[0] == "7.3"  # the longest guest starts at once
    assert schedule.plan(["6.1"], seconds, 2) == ["6.1"]
    assert schedule.plan(labels, seconds, 1) == labels


def test_estimates_come_from_the_last_run_that_passed(tmp_path: Path) -> None:
    assert schedule.estimates(None) == schedule.ESTIMATES
    assert schedule.estimates(tmp_path / "missing.json") == schedule.ESTIMATES
    index = tmp_path / "tiers.json"
    index.write_text('[{"name": "6.1", "returncode": 0, "seconds": 123.0},'
                     ' {"name": "5.10", "returncode": 1, "seconds": 5.0},'
                     ' {"name": "9.9", "returncode": 0, "seconds": 7.0}]')
    known = schedule.estimates(index)
    assert known["6.1"] == 123 and known["5.10"] == schedule.ESTIMATES["5.10"]
    assert known["9.9"] == 7  # a tier the table does not know
    index.write_text("not json")
    assert schedule.estimates(index) == schedule.ESTIMATES
    assert schedule.expected_seconds("host-libbpf-1.5", {}) == schedule.DEFAULT_HOST_SECONDS
    assert schedule.expected_seconds("6.1", {}) == schedule.DEFAULT_GUEST_SECONDS


def test_guests_leave_the_host_only_tests_unless_named() -> None:
    from vmtest import tiers

    args = tiers.guest_exclusions([])
    assert [f"--ignore={p}" for p in tiers.GUEST_IGNORE] == args[:len(tiers.GUEST_IGNORE)]
    assert [f"--deselect={t}" for t in tiers.GUEST_DESELECT] == args[len(tiers.GUEST_IGNORE):]
    named = tiers.guest_exclusions(["tests/compat_run/test_run_legacy.py", "-k", "zcore"])
    assert not any("test_run_legacy" in a for a in named)
    assert "--ignore=tests/test_hostile_args.py" in named
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         *tiers.guest_exclusions([]), "tests/compat_run/test_run_legacy.py"],
        cwd=tiers.CHECKOUT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    kept = {line.split("::")[1].split("[")[0] for line in proc.stdout.splitlines()
            if "::" in line}
    assert kept == {"test_maps_test_rcore", "test_prog_test_rcore", "test_prog_test_zcore"}
