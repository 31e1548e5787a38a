"""Unmodified legacy C programs under ``python -m compat run`` on this host's kernel: the map
tests, load-ex + attach + trigger + read, both dialects, bad input, ``--trace``."""

from __future__ import annotations

import errno
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.kernel

Run = Callable[..., subprocess.CompletedProcess[str]]


def _ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\n" \
                                 f"stderr:\n{proc.stderr}"


@pytest.mark.parametrize("strict", [False, True])
def test_maps_test_rcore(run_cli: Run, c_program: Callable[..., Path], strict: bool) -> None:
    options = ["--strict-legacy-errors"] if strict else []
    proc = run_cli(*options, "--", c_program("maps_test"))
    _ok(proc)
    assert proc.stderr == ""  # no --trace: the supervisor is silent
    lines = proc.stdout.splitlines()
    assert lines[-1] == "maps_test passed"
    assert "array ok" in lines and "hash ok: 2 keys summing to 40" in lines
    # where Linux and the legacy kernel differ, --strict-legacy-errors gives the legacy errno
    past_end = errno.ENOENT if strict else errno.E2BIG
    full = errno.ENOMEM if strict else errno.E2BIG
    assert f"array update past the end: errno {past_end}" in lines
    assert f"hash update on a full map: errno {full}" in lines


def test_maps_test_zcore(run_cli: Run, c_program: Callable[..., Path]) -> None:
    proc = run_cli("--dialect", "zcore", "--", c_program("maps_test", zcore=True))
    _ok(proc)
    # zCore turned every failure into -ENOEXEC, including the element calls Linux would answer
    assert f"array update past the end: errno {errno.ENOEXEC}" in proc.stdout
    assert f"hash update on a full map: errno {errno.ENOEXEC}" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "maps_test passed"


def _objects(legacy_objects: dict[str, Path]) -> list[Path]:
    return [legacy_objects["map"], legacy_objects["time1"], legacy_objects["time2"]]


def test_prog_test_rcore(run_cli: Run, c_program: Callable[..., Path],
                         legacy_objects: dict[str, Path]) -> None:
    proc = run_cli("--", c_program("prog_test"), *_objects(legacy_objects), 300)
    _ok(proc)
    out = proc.stdout.splitlines()
    assert out[0] == "map: count=300"
    assert out[1] == "time: count=300"
    median = int(re.fullmatch(r"time: median=(\d+) ns", out[2]).group(1))  # type: ignore[union-attr]
    assert 0 < median < 10_000_000
    assert out[-1] == "prog_test passed"
    print(f"legacy time pair under compat run: median getppid {median} ns")


def test_prog_test_zcore(run_cli: Run, c_program: Callable[..., Path],
                         legacy_objects: dict[str, Path]) -> None:
    proc = run_cli("--dialect", "zcore", "--", c_program("prog_test", zcore=True),
                   *_objects(legacy_objects), 150)
    _ok(proc)
    assert proc.stdout.splitlines()[:2] == ["map: count=150", "time: count=150"]
    assert "detached" in proc.stdout.splitlines()  # zCore detach by prog fd stopped the count


def test_map_symbols_file(run_cli: Run, c_program: Callable[..., Path],
                          legacy_objects: dict[str, Path], tmp_path: Path) -> None:
    table = tmp_path / "symbols.json"
    table.write_text(json.dumps({"<my_kernel::Syscall>::sys_ping": ["getppid"]}))
    args = ["--", c_program("prog_test"), *_objects(legacy_objects), 40,
            "<my_kernel::Syscall>::sys_ping"]
    unknown = run_cli(*args)
    assert unknown.returncode != 0  # without the mapping the symbol is unknown: ENOENT
    assert "attach(target, prog) == 0" in unknown.stderr
    proc = run_cli("--map-symbols", table, *args)
    _ok(proc)
    assert proc.stdout.splitlines()[:2] == ["map: count=40", "time: count=40"]


def test_bad_input_gets_legacy_errors_and_supervisor_survives(
        run_cli: Run, c_program: Callable[..., Path], legacy_objects: dict[str, Path]) -> None:
    proc = run_cli("--trace", "--", c_program("bad_input"), legacy_objects["map"])
    _ok(proc)
    assert proc.stdout.splitlines() == ["attr: ok", "maps: ok", "load: ok", "attach: ok",
                                        "passthrough: ok", "fd table full: ok",
                                        "bad_input passed"]
    assert "internal error" not in proc.stderr
    assert "= -EFAULT" in proc.stderr and "= -E2BIG" in proc.stderr
    assert "NOTIF_ADDFD failed: EMFILE = -EMFILE" in proc.stderr


def test_trace_shows_each_translation(run_cli: Run, c_program: Callable[..., Path],
                                      legacy_objects: dict[str, Path]) -> None:
    proc = run_cli("--trace", "--", c_program("prog_test"), *_objects(legacy_objects), 5)
    _ok(proc)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("compat: ")]
    assert len(lines) == len(proc.stderr.splitlines())  # nothing else on stderr
    pid = re.match(r"compat: \[pid (\d+)\]", lines[0]).group(1)  # type: ignore[union-attr]
    assert all(ln.startswith(f"compat: [pid {pid}] ") for ln in lines)
    text = "\n".join(lines)
    assert re.search(r"BPF_MAP_CREATE\(map_type=ARRAY, key_size=4, value_size=4, "
                     r"max_entries=1\) -> BPF_MAP_CREATE -> map id \d+, installed with "
                     r"NOTIF_ADDFD = fd (\d+)", text)
    load = re.search(r"BPF_PROG_LOAD_EX\(prog_size=\d+, map_array=\[map_fd=(\d+), "
                     r"config=(\d+)\]\) -> rewrite \+ BPF_PROG_LOAD\(TRACEPOINT\) -> prog id "
                     r"\d+, installed with NOTIF_ADDFD = fd (\d+)", text)
    assert load is not None
    prog_fd = load.group(3)
    assert re.search(rf"BPF_PROG_ATTACH\(target='kprobe:<rcore::syscall::Syscall>::sys_getppid"
                     rf"', prog_fd={prog_fd}\) -> tracepoint: load variant prog id \d+, "
                     r"perf_event_open\(syscalls/sys_enter_getppid\) \+ PERF_EVENT_IOC_SET_BPF"
                     r" = 0", text)
    assert "perf_event_open(syscalls/sys_exit_getppid)" in text
    assert re.search(r"BPF_PROG_ATTACH\(.*\) -> failed: EAGAIN .* = -EAGAIN", text)
    assert re.search(r"BPF_MAP_LOOKUP_ELEM\(map_fd=\d+, .*\) -> continue", text)
    assert re.search(r"BPF_MAP_UPDATE_ELEM\(map_fd=\d+, .*flags=BPF_ANY\) -> .* = 0", text)
    assert text.endswith("BPF_PROG_DETACH -> failed: EINVAL (the rCore kernel refused every "
                         "detach) = -EINVAL")
