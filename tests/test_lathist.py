"""The lathist demo end to end: it prints per-CPU log2 histograms whose counts grow."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.kernel
ROOT = Path(__file__).resolve().parent.parent


def _totals(output: str) -> list[int]:
    """Total count of each printed round (all CPUs together); rounds start with '--- '."""
    rounds = output.split("\n--- ")[1:]
    return [sum(int(m) for m in re.findall(r"-> \d+\s+: (\d+)", r)) for r in rounds]


def test_lathist_prints_growing_histograms() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "examples.lathist", "--duration", "3",
                           "--interval", "1"], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("lathist: syscall latency")
    assert "nsecs               : count     distribution" in out
    totals = _totals(out)
    assert len(totals) >= 2, out
    assert totals[0] > 0
    assert totals == sorted(totals) and totals[-1] > totals[0]


@pytest.mark.needs("kprobe")
def test_lathist_kprobe_variant() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # the demo writes its own output after attaching, so vfs_write always has samples
    proc = subprocess.run([sys.executable, "-m", "examples.lathist", "--kprobe", "vfs_write",
                           "--duration", "3", "--interval", "1"], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "vfs_write() latency (kprobe/kretprobe)" in proc.stdout
    assert sum(_totals(proc.stdout)[-1:]) > 0, proc.stdout
