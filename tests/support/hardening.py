"""Shared helpers of the hardening tests: where the fuzz inputs are kept, running code as an
unprivileged user, counting open fds."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HARDENING = ROOT / "tests" / "hardening"
REGRESSIONS = HARDENING / "regressions"


@dataclass(frozen=True)
class KnownBug:
    """A kept fuzz input whose bug is reported but not fixed yet."""

    path: str  # "<target>/<file>"
    signature: str
    reason: str


def known_bugs() -> dict[str, KnownBug]:
    """``regressions/known.txt`` by input path."""
    out: dict[str, KnownBug] = {}
    for line in (REGRESSIONS / "known.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        path, signature, reason = line.split(maxsplit=2)
        out[path] = KnownBug(path, signature, reason)
    return out


def kept_inputs() -> list[tuple[str, Path]]:
    """Every kept fuzz input as (target, path)."""
    return [(p.parent.name, p) for p in sorted(REGRESSIONS.glob("*/*")) if p.is_file()]


def python_env() -> dict[str, str]:
    """The environment for a child Python that imports this checkout."""
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def run_python(args: list[str], timeout: float = 120, **kwargs: object
               ) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` (this interpreter) in the checkout."""
    proc: subprocess.CompletedProcess[str] = subprocess.run(  # type: ignore[call-overload]
        [sys.executable, *args], capture_output=True, text=True, env=python_env(),
        timeout=timeout, cwd=ROOT, **kwargs)
    return proc


def fd_count() -> int:
    """Open fds of this process."""
    return len(os.listdir("/proc/self/fd"))
