"""examples/profile end to end: a child burns CPU in the kernel (reading /dev/zero) while the
tool samples it on a cpu-clock perf event per CPU; its kernel stacks, named from kallsyms,
show the read path; a hardware event where no PMU counts it is a clean error."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from tests.support.repetition import rounds
from tests.support.tools import ROOT, trace_child

pytestmark = [pytest.mark.kernel, pytest.mark.needs("perf_event")]

BURN_S = rounds(2, 4)   # a guest runs slower, so its seconds hold fewer reads but more samples
BURNER = ("import sys, time\nsys.stdin.readline()\n"
          f"end = time.monotonic() + {BURN_S}\n"
          "with open('/dev/zero', 'rb', buffering=0) as f:\n"
          "    while time.monotonic() < end:\n        f.read(1 << 20)\n")


def _profile(*args: str) -> Counter[str]:
    """profile -f on a burning child: its folded stacks and their sample counts."""
    out, _ = trace_child(BURNER, "profile", "-p", "{pid}", "-F", "199", "-f", *args,
                         ready="Sampling cpu-clock at 199 Hz")
    stacks: Counter[str] = Counter()
    for line in out.splitlines()[1:]:
        path, _, count = line.rpartition(" ")
        stacks[path] += int(count)
    return stacks


def test_profile_kernel_stacks_name_the_read_path() -> None:
    stacks = _profile("-K")
    total = sum(stacks.values())
    # 199 Hz for BURN_S seconds: generous bounds, the machine may be loaded
    assert total >= 10, stacks
    # one process: the child (its command name is the interpreter's, "python3" or, under a
    # libbpf tier's wrapper Python, the dynamic loader's)
    assert len({path.split(";")[0] for path in stacks}) == 1, stacks
    reading = sum(n for path, n in stacks.items()
                  if ";vfs_read;" in path and ("read_zero" in path or "read_iter_zero" in path))
    assert reading >= total // 2, stacks


def test_profile_user_and_kernel_stacks() -> None:
    """Both stacks by default: user frames (addresses) below the kernel's."""
    stacks = _profile()
    with_user = [path for path in stacks if ";0x" in path and ";vfs_read;" in path]
    assert with_user, stacks
    frames = with_user[0].split(";")
    assert frames.index("vfs_read") > max(i for i, f in enumerate(frames) if f.startswith("0x"))


# a hardware event: no guest has a PMU under TCG, so a guest would repeat the host's error
# path; guests (where a new interpreter costs seconds) leave it out with the other slow tests
@pytest.mark.slow
def test_profile_on_a_hardware_event() -> None:
    """``--event cycles`` samples where a PMU counts cycles; elsewhere (most virtual machines,
    this project's hosts and guests among them) the tool says so and exits with 1."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "examples.profile", "--event", "cycles",
                           "--duration", "1"], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    if os.path.isdir("/sys/bus/event_source/devices/cpu"):
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("Sampling cycles at 49 Hz")
    else:
        assert done.returncode == 1, done.stdout + done.stderr
        assert "profile: " in done.stderr and "no PMU here counts this event" in done.stderr
