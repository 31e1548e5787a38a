"""Privileges: each API family run as user nobody (setpriv) with no capability, and with only
CAP_BPF + CAP_PERFMON.  Every refusal must be a BpfPermissionError (a PermissionError with
errno) whose message names the missing capability, or says capabilities are not the cause."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import unprivileged
from tests.support.bpfbuild import compile_bpf

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(shutil.which("setpriv") is None, reason="no setpriv")]


@pytest.fixture(scope="module")
def pin_dir() -> Iterator[Path]:
    """A bpffs folder user nobody may write to (the machine's own /sys/fs/bpf mode varies)."""
    path = Path("/sys/fs/bpf") / f"hardening-{os.getpid()}"
    path.mkdir()
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _run_as_nobody(caps: str, pin_dir: Path) -> dict[str, str]:
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", f"--inh-caps={caps}"]
    if caps != "-all":
        cmd.append(f"--ambient-caps={caps}")
    script = Path(__file__).parent / "privileged_calls.py"
    cmd += [unprivileged.python(), str(unprivileged.share(script)),
            str(unprivileged.share(compile_bpf("minimal.bpf.c"))),
            str(unprivileged.share(compile_bpf("events_infer.bpf.c"))), str(pin_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=unprivileged.env(),
                          timeout=120, cwd="/")
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert set(lines) == {"map_create", "load", "attach", "ring_buffer", "pin", "map_from_id"}
    return lines


def test_without_any_capability_every_call_names_cap_bpf(pin_dir: Path) -> None:
    result = _run_as_nobody("-all", pin_dir)
    for name, line in result.items():
        assert line.startswith("BpfPermissionError 1 "), f"{name}: {line}"
        needed = "CAP_SYS_ADMIN" if name == "map_from_id" else "CAP_BPF"
        assert f"missing capability {needed}" in line, f"{name}: {line}"
    for name in ("load", "attach", "ring_buffer"):  # tracing/syscall programs need both
        assert "CAP_BPF + CAP_PERFMON" in result[name], result[name]


def test_with_cap_bpf_and_cap_perfmon(pin_dir: Path) -> None:
    result = _run_as_nobody("+bpf,+perfmon", pin_dir)
    for name in ("map_create", "load", "ring_buffer", "pin"):
        assert result[name] == "OK", f"{name}: {result[name]}"
    # the tracepoint's perf event needs tracefs access that nobody lacks: not a capability
    # CAP_BPF/CAP_PERFMON could give, and the message says the process holds both
    assert result["attach"].startswith("BpfPermissionError 13 "), result["attach"]
    assert "holds CAP_BPF + CAP_PERFMON" in result["attach"]
    assert "missing capability CAP_SYS_ADMIN" in result["map_from_id"]


def test_the_hint_does_not_repeat_cap_sys_admin(pin_dir: Path) -> None:
    line = _run_as_nobody("+bpf,+perfmon", pin_dir)["map_from_id"]
    assert "(or CAP_SYS_ADMIN)" not in line, line
