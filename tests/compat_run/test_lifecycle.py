"""The supervisor's life cycle on the real kernel: only bpf() is trapped, children are served,
exit status and signals propagate, a program dying mid-call is handled, and nothing the
program loaded or attached outlives it."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import compat
from compat.supervisor import Supervisor

pytestmark = pytest.mark.kernel

Run = Callable[..., subprocess.CompletedProcess[str]]


def _bpftool(*args: str) -> list[dict[str, object]]:
    out = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout or "[]")  # type: ignore[no-any-return]


def _prog_ids() -> set[int]:
    return {int(p["id"]) for p in _bpftool("prog", "show")}  # type: ignore[call-overload]


def test_exit_status_propagates(run_cli: Run) -> None:
    proc = run_cli("--", "sh", "-c", "echo out; echo err >&2; exit 42")
    assert proc.returncode == 42
    assert proc.stdout == "out\n" and proc.stderr == "err\n"


@pytest.mark.parametrize("sig", ["TERM", "SEGV"])
def test_death_by_signal_propagates(run_cli: Run, sig: str) -> None:
    import signal

    proc = run_cli("--", "sh", "-c", f"kill -{sig} $$")
    assert proc.returncode == -getattr(signal, f"SIG{sig}")


def test_missing_program_and_usage(run_cli: Run) -> None:
    missing = run_cli("--", "/nonexistent/legacy-program")
    assert missing.returncode == 127
    assert "cannot execute /nonexistent/legacy-program" in missing.stderr
    usage = run_cli()
    assert usage.returncode == 2 and "name the program" in usage.stderr
    bad_map = run_cli("--map-symbols", "/nonexistent.json", "--", "true")
    assert bad_map.returncode == 2 and "--map-symbols" in bad_map.stderr


def test_only_bpf_reaches_the_supervisor() -> None:
    trace = io.StringIO()
    sup = Supervisor(["sh", "-c", "ls / >/dev/null; cat /proc/self/status"], trace=True,
                     trace_stream=trace, stdout=subprocess.PIPE)
    assert sup.run() == 0
    assert sup.process is not None and sup.process.stdout is not None
    with sup.process.stdout:
        status = sup.process.stdout.read().decode()
    # the program ran under one filter in mode 2 (SECCOMP_MODE_FILTER)...
    assert re.search(r"^Seccomp:\s+2$", status, re.M)
    assert re.search(r"^Seccomp_filters:\s+1$", status, re.M)
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)
    # ...and hundreds of syscalls later, not one reached the supervisor
    assert sup.calls == 0 and trace.getvalue() == ""


def test_children_are_served(c_program: Callable[..., Path]) -> None:
    trace = io.StringIO()
    # the shell forks maps_test: the filter is inherited, its calls come from another pid
    sup = Supervisor(["sh", "-c", f"{c_program('maps_test')} >/dev/null && echo done"],
                     trace=True, trace_stream=trace, stdout=subprocess.PIPE)
    assert sup.run() == 0
    assert sup.process is not None and sup.process.stdout is not None
    with sup.process.stdout:
        assert sup.process.stdout.read() == b"done\n"
    pids = set(re.findall(r"^compat: \[pid (\d+)\]", trace.getvalue(), re.M))
    assert len(pids) == 1 and int(pids.pop()) != sup.process.pid
    assert sup.calls > 30


def test_attachments_released_when_the_program_exits(
        c_program: Callable[..., Path], legacy_objects: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROG_TEST_WAIT", "1")
    objects = [legacy_objects[n] for n in ("map", "time1", "time2")]
    sup = Supervisor([c_program("prog_test"), *objects, "20"], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE)
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(sup.run()))
    runner.start()
    try:
        while sup.process is None:
            runner.join(0.01)
        assert sup.process.stdout is not None and sup.process.stdin is not None
        lines: list[str] = []
        while not lines or lines[-1] != "attached":
            line = sup.process.stdout.readline().decode()
            assert line, f"prog_test ended early: {lines}"
            lines.append(line.rstrip("\n"))
        # the program is alive and attached: three programs on the getppid tracepoints, held
        # by this (the supervising) process
        ours = [e for e in _bpftool("perf") if e.get("pid") == os.getpid()]
        assert sorted(str(e["tracepoint"]) for e in ours) == [
            "sys_enter_getppid", "sys_enter_getppid", "sys_exit_getppid"]
        assert len(compat.attachments()) == 3
        loaded = set(sup.prog_ids)
        assert len(loaded) == 3 and loaded <= _prog_ids()
        sup.process.stdin.write(b"\n")
        sup.process.stdin.close()
        runner.join(60)
    finally:
        if runner.is_alive() and sup.process is not None:
            sup.process.kill()
        runner.join(60)
    with sup.process.stdout:
        assert sup.process.stdout.read().decode().splitlines() == ["prog_test passed"]
    assert result == [0]
    # the program never detached (the legacy way): everything went with it
    assert compat.attachments() == [] and compat.loaded_programs() == []
    assert not [e for e in _bpftool("perf") if e.get("pid") == os.getpid()]
    assert not loaded & _prog_ids()


def test_program_dying_mid_call(c_program: Callable[..., Path],
                                legacy_objects: dict[str, Path]) -> None:
    trace = io.StringIO()
    # every answer waits 1 s: the program exits 200 ms into its BPF_PROG_LOAD_EX
    sup = Supervisor([c_program("die_mid_call"), legacy_objects["map"], "200"], trace=True,
                     trace_stream=trace, reply_delay=1.0, stdout=subprocess.PIPE)
    assert sup.run() == 3
    assert sup.process is not None and sup.process.stdout is not None
    with sup.process.stdout:
        assert sup.process.stdout.read() == b"exiting mid-call\n"
    text = trace.getvalue()
    died = re.search(r"BPF_PROG_LOAD_EX\(.*\) -> rewrite .* prog id (\d+), installed with "
                     r"NOTIF_ADDFD: the caller died before the answer; undone", text)
    assert died is not None, text
    assert sup.died_mid_call == 1 and sup.prog_ids == []
    # the program loaded for the dead caller is gone and was never counted as installed
    assert int(died.group(1)) not in _prog_ids()
    assert compat.loaded_programs() == []
