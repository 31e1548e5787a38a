"""The suite's own rule: with CI=true a skipped kernel test fails the run, except a `needs`
skip for a feature this kernel is not expected to have (the VM tiers run those)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

INNER = '''
import pytest

@pytest.mark.kernel
def test_kernel_skip():
    pytest.skip("something missing")

def test_plain_skip():
    pytest.skip("not a kernel test")

@pytest.mark.needs("bpf")
def test_needs_expected_feature():
    pass
'''


def run_inner(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text((TESTS / "conftest.py").read_text())
    for helper in ("features.py", "bpfbuild.py"):
        (tmp_path / helper).write_text((TESTS / helper).read_text())
    (tmp_path / "test_inner.py").write_text(INNER)
    env = {**os.environ, "CI": ci}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-o", "markers=kernel\nneeds(*f)", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def test_ci_turns_kernel_skips_into_failures(tmp_path: Path) -> None:
    proc = run_inner(tmp_path, "true")
    assert "1 failed" in proc.stdout, proc.stdout
    assert "kernel test skipped in CI" in proc.stdout
    assert "1 skipped" in proc.stdout  # the plain skip stays a skip
    assert "1 passed" in proc.stdout


def test_outside_ci_kernel_skips_stay_skips(tmp_path: Path) -> None:
    proc = run_inner(tmp_path, "")
    assert "2 skipped" in proc.stdout and "failed" not in proc.stdout, proc.stdout
