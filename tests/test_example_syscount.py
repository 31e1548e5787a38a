"""examples/syscount end to end: a child makes known system calls a known number of times; the
tool counts them under their names, with the time spent, and counts only the failures with -x."""

from __future__ import annotations

import re

import pytest

from tests.support.repetition import rounds
from tests.support.tools import trace_child

pytestmark = [pytest.mark.kernel, pytest.mark.needs("tracepoint")]

GETPPID = rounds(700, 70)
RMDIR = rounds(300, 30)
# getppid always succeeds; rmdir of a missing folder fails with ENOENT; write succeeds
CHILD = ("import os, sys\nsys.stdin.readline()\n"
         f"for _ in range({GETPPID}):\n    os.getppid()\n"
         f"for _ in range({RMDIR}):\n"
         "    try:\n        os.rmdir('/nonexistent-pylibbpf-syscount')\n"
         "    except FileNotFoundError:\n        pass\n")


def _count(*args: str) -> dict[str, list[str]]:
    """syscount on a child making the calls; its rows by the first column."""
    out, _ = trace_child(CHILD, "syscount", "--pid", "{pid}", "--top", "0", *args,
                         ready="Tracing")
    lines = out.splitlines()
    assert lines[0].startswith("Tracing syscalls"), out
    assert re.match(r"SYSCALL\s+COUNT", lines[1]), out
    return {row[0]: row[1:] for row in (line.split() for line in lines[2:]) if row}


def test_syscount_counts_by_name_with_latency() -> None:
    rows = _count("-L")
    assert rows["getppid"][0] == str(GETPPID), rows
    assert rows["rmdir"][0] == str(RMDIR), rows
    assert float(rows["getppid"][1]) > 0.0            # TIME (us), summed


# a filter set through .rodata, the same program with one branch taken: the host tiers run
# it; guests (where a new interpreter costs seconds) leave it out with the other slow tests
@pytest.mark.slow
def test_syscount_failures_only() -> None:
    rows = _count("-x")
    assert rows["rmdir"] == [str(RMDIR)], rows
    assert "getppid" not in rows, rows


# a filter set through .rodata, the same program with one branch taken: the host tiers run
# it; guests (where a new interpreter costs seconds) leave it out with the other slow tests
@pytest.mark.slow
def test_syscount_one_errno() -> None:
    """``-e ENOENT``: calls failing with that error only."""
    rows = _count("-e", "ENOENT")
    assert rows["rmdir"] == [str(RMDIR)], rows
    assert "getppid" not in rows and "read" not in rows, rows
