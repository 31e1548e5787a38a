"""examples/execsnoop end to end: the exec()s of known commands appear with their argv (records
of variable length, cut where the BPF side cuts them), a failed one with its error; through a
ring buffer, and through the perf buffer the map becomes before load where rings are missing."""

from __future__ import annotations

import errno
import os
import subprocess
import time

import pytest

from tests.support.tools import Tool

pytestmark = pytest.mark.kernel

TAG = f"pylibbpf-execsnoop-{os.getpid()}"


def _trace(buffer: str) -> list[list[str]]:
    """Run execsnoop on this process's children while it runs three commands; its output
    lines split as PCOMM PID PPID RET ARGS."""
    with Tool("execsnoop", "-x", "--ppid", str(os.getpid()), "--buffer", buffer,
              ready="PCOMM") as tool:
        subprocess.run(["/bin/echo", TAG, "two words", "", "x" * 200],
                       stdout=subprocess.DEVNULL, check=True)
        subprocess.run(["/bin/true", TAG, *(f"a{i}" for i in range(30))], check=True)
        with pytest.raises(FileNotFoundError):
            subprocess.run([f"/nonexistent/{TAG}", "arg"])
        time.sleep(0.5)
        out = tool.stop()
    assert out.startswith(f"Tracing exec()s through a {'perf' if buffer == 'perf' else 'ring'}"
                          " buffer"), out
    rows = [line.split(None, 4) for line in out.splitlines()[2:]]
    return [row for row in rows if len(row) == 5 and TAG in row[4]]


def _check(rows: list[list[str]]) -> None:
    me = str(os.getpid())
    by_comm = {row[0]: row for row in rows}
    assert len(rows) == 3 and len(by_comm) == 3, rows

    _, _, ppid, ret, args = by_comm["echo"]
    assert (ppid, ret) == (me, "0")
    # every argument as exec() got it (the empty one too); the long one cut to 127 bytes
    assert args == f"/bin/echo {TAG} two words  {'x' * 127}", args

    # 20 arguments copied (the file name, the tag and a0..a17), then "..." for the rest
    assert by_comm["true"][3] == "0"
    assert by_comm["true"][4] == (f"/bin/true {TAG} " + " ".join(f"a{i}" for i in range(18))
                                  + " ..."), by_comm["true"]

    # the failed exec: the forked child still has the test's comm
    (failed,) = [row for row in rows if row[0] not in ("echo", "true")]
    assert failed[2:] == [me, str(-errno.ENOENT), f"/nonexistent/{TAG} arg"], failed


@pytest.mark.needs("tracepoint", "ringbuf")
def test_execsnoop_ring_buffer() -> None:
    """``--buffer auto`` on a kernel with ring buffers: a ring buffer."""
    _check(_trace("auto"))


@pytest.mark.needs("tracepoint")
def test_execsnoop_perf_buffer_fallback() -> None:
    """The map made a PERF_EVENT_ARRAY before load (what ``--buffer auto`` does where the
    kernel has no ring buffers): the same records, the same output."""
    _check(_trace("perf"))
