"""The fuzzers: every kept input replays cleanly (or is a reported, known bug), and every target
runs under atheris for a few seconds without a new finding.

Replaying needs no atheris (``python -m fuzz.targets TARGET --replay``), so the kept inputs run
everywhere; only the fuzzing test itself skips without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.hardening import REGRESSIONS, kept_inputs, known_bugs, run_python

KNOWN = known_bugs()
TARGETS = ("open_mem", "elf", "insn", "attr", "legacy_load")
KERNEL_TARGETS = {"open_mem", "attr", "legacy_load"}


def _param(target: str, path: Path) -> object:
    key = f"{target}/{path.name}"
    marks = [pytest.mark.kernel] if target in KERNEL_TARGETS else []
    bug = KNOWN.get(key)
    if bug is not None:
        marks.append(pytest.mark.xfail(strict=True, reason=bug.reason))
    return pytest.param(target, path, id=key, marks=marks)


# target -> {kept input path: its replay line}, from one child per target (see _replayed)
_BATCHES: dict[str, dict[str, str]] = {}


def _replayed(target: str, path: Path) -> str:
    """The replay line (``OK path`` or ``FAIL path: ...``) of one kept input.

    All kept inputs of a target replay in one child (a Python start per input costs seconds in
    a guest); an input the batch did not report, because the child died on it or on one
    before it, replays alone, so a crash is still pinned on the input that caused it.
    """
    if target not in _BATCHES:
        paths = [str(p) for t, p in kept_inputs() if t == target]
        proc = run_python(["-m", "fuzz.targets", target, "--replay", *paths], timeout=600)
        _BATCHES[target] = {line.split(" ", 1)[1].split(":", 1)[0]: line
                            for line in proc.stdout.splitlines()
                            if line.startswith(("OK ", "FAIL ")) and " " in line}
    line = _BATCHES[target].get(str(path))
    if line is not None:
        return line
    proc = run_python(["-m", "fuzz.targets", target, "--replay", str(path)])
    if proc.returncode < 0 or not proc.stdout:
        return f"exit {proc.returncode}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return proc.stdout.strip()


@pytest.mark.parametrize("target, path", [_param(t, p) for t, p in kept_inputs()])
def test_kept_input_replays_cleanly(target: str, path: Path) -> None:
    """Each input a fuzzer once crashed on, replayed in a child process (a segfault cannot take
    pytest down): the target must accept or refuse it with a documented exception."""
    line = _replayed(target, path)
    assert line == f"OK {path}", line


def test_known_bugs_are_the_bugs_described() -> None:
    """Every known.txt entry names a kept input that still fails with its recorded signature,
    so an xfail can never hide a different failure."""
    files = {f"{t}/{p.name}" for t, p in kept_inputs()}
    assert set(KNOWN) <= files, f"known.txt names missing inputs: {set(KNOWN) - files}"
    for key, bug in KNOWN.items():
        target = key.split("/", 1)[0]
        if target in KERNEL_TARGETS and not Path("/sys/fs/bpf").exists():
            continue
        proc = run_python(["-m", "fuzz.targets", target, "--replay", str(REGRESSIONS / key)])
        if proc.stdout.startswith("OK"):
            continue  # fixed: its xfail(strict) test reports XPASS
        assert bug.signature in proc.stdout, f"{key}: {proc.stdout[-1500:]}{proc.stderr[-800:]}"


@pytest.mark.kernel
@pytest.mark.slow
def test_every_target_fuzzes_briefly_without_new_findings(tmp_path: Path) -> None:
    """``python -m fuzz --seconds 2``: each target in its own process, bounded in time; the
    bugs already reported (known.txt) are tolerated, anything new fails this test."""
    pytest.importorskip("atheris")
    known = tmp_path / "known"
    known.write_text("\n".join(bug.signature for bug in KNOWN.values()) + "\n")
    out = tmp_path / "results.json"
    proc = run_python(["-m", "fuzz", "--seconds", "2", "--known", str(known), "--json",
                       str(out), *TARGETS], timeout=300,
                      )
    results = {r["target"]: r for r in json.loads(out.read_text())} if out.exists() else {}
    assert set(results) == set(TARGETS), proc.stdout + proc.stderr
    for target, r in results.items():
        assert r["status"] == "ok", f"{target}: {r['signatures']} {r['detail'][-2000:]}"
        assert r["executions"] > 0, target
        assert r["seconds"] < 2 + 30
    assert proc.returncode == 0, proc.stdout
