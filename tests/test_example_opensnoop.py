"""examples/opensnoop end to end: this process opens a file with known flags and a missing file;
the tool shows the fd and the flags of the first and ENOENT for the second."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from tests.support.tools import Tool

# Python adds O_CLOEXEC to every os.open (PEP 446): the flags the kernel sees include it
pytestmark = [pytest.mark.kernel, pytest.mark.needs("tracepoint", "perf_event")]


def _rows(out: str, needle: str) -> list[list[str]]:
    """Output lines naming ``needle``, split as PID COMM FD ERR FLAGS PATH."""
    rows = [line.split(None, 5) for line in out.splitlines()[2:]]
    return [row for row in rows if len(row) == 6 and needle in row[5]]


def test_opensnoop_flags_fds_and_errors(tmp_path: Path) -> None:
    made = tmp_path / "made-by-opensnoop-test"
    missing = tmp_path / "missing"
    with Tool("opensnoop", "--pid", str(os.getpid()), ready="    PID") as tool:
        fd = os.open(made, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        os.close(fd)
        with pytest.raises(FileNotFoundError):
            os.open(missing, os.O_RDONLY | os.O_DIRECTORY)
        time.sleep(0.5)
        out = tool.stop()
    assert out.startswith("Tracing open()s"), out

    (row,) = _rows(out, str(made))
    pid, _, shown_fd, err, flags, path = row
    assert (pid, shown_fd, err, path) == (str(os.getpid()), str(fd), "0", str(made))
    assert flags == "O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC"

    (row,) = _rows(out, str(missing))
    assert row[2:] == ["-1", str(errno.ENOENT), "O_RDONLY|O_DIRECTORY|O_CLOEXEC", str(missing)], row


# a filter set through .rodata, the same program with one branch taken: the host tiers run
# it; guests (where a new interpreter costs seconds) leave it out with the other slow tests
@pytest.mark.slow
def test_opensnoop_failed_only(tmp_path: Path) -> None:
    """``-x``: the BPF side drops successful opens before they reach the perf buffer."""
    present = tmp_path / "present"
    present.write_text("")
    with Tool("opensnoop", "-x", "--pid", str(os.getpid()), ready="    PID") as tool:
        os.close(os.open(present, os.O_RDONLY))
        with pytest.raises(FileNotFoundError):
            os.open(tmp_path / "absent", os.O_RDWR)
        time.sleep(0.5)
        out = tool.stop()
    assert _rows(out, str(present)) == [], out
    (row,) = _rows(out, str(tmp_path / "absent"))
    assert row[2:5] == ["-1", str(errno.ENOENT), "O_RDWR|O_CLOEXEC"], row
