"""``python -m fuzz [--seconds N] [--json FILE] [TARGET...]``: run the fuzz targets.

``python -m fuzz mutate [--count N] [ENTRY...]`` runs the mutation campaign instead (see
:mod:`fuzz.mutate`).

Each target runs in its own subprocess under atheris (libFuzzer) for ``--seconds`` of fuzzing,
with a hard wall-clock bound on top, so a crash, a hang or a libbpf segfault ends that target's
run and is reported instead of taking the runner down.  A crashing input is saved under
``fuzz/.work/crashes/`` (``$PYLIBBPF_FUZZ_DIR``) and its path printed; replay it with
``python -m fuzz.targets TARGET --replay FILE``.  The exit status is 1 when any target found
something.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .corpus import ROOT, WORK, build, corpus_dir
from .targets import TARGETS

_GRACE = 30.0  # seconds beyond the fuzzing time: start-up, corpus load, final stats


@dataclass
class Result:
    """One target's run (possibly several fuzzer processes: one more after each finding)."""

    target: str
    executions: int
    seconds: float
    corpus: int
    crashes: int
    crash_files: list[str] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    status: str = "ok"  # "ok", "crash", "timeout", "error"
    detail: str = ""


def _stat(text: str, name: str) -> int | None:
    match = re.search(rf"stat::{name}:\s*(\d+)", text)
    return int(match.group(1)) if match else None


def _last_execs(text: str) -> int:
    counts = [int(n) for n in re.findall(r"^#(\d+)\s", text, re.M)]
    return max(counts, default=0)


def _one_process(target: str, seconds: float, seed: int, crashes: Path,
                 known: list[str]) -> tuple[str, int, str]:
    """(status, executions, output) of one fuzzer process."""
    args = [sys.executable, "-m", "fuzz.targets", target,
            f"-max_total_time={max(1, round(seconds))}", f"-seed={seed}",
            "-print_final_stats=1", "-timeout=20", "-rss_limit_mb=4096",
            "-max_len=131072", f"-artifact_prefix={crashes}/", str(corpus_dir(target))]
    env = {**os.environ, "PYLIBBPF_FUZZ_KNOWN": ",".join(known),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace",
                                start_new_session=True)
    except OSError as exc:
        return "error", 0, str(exc)
    try:
        out, _ = proc.communicate(timeout=seconds + _GRACE)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return "timeout", _last_execs(out), out
    executions = _stat(out, "number_of_executed_units") or _last_execs(out)
    return ("ok" if proc.returncode == 0 else "crash"), executions, out


def run_target(target: str, seconds: float, *, seed: int = 1, known: list[str] | None = None,
               max_findings: int = 8) -> Result:
    """Fuzz ``target`` for ``seconds`` in subprocesses; after a finding, start again (with
    the findings so far tolerated) until the time is used up."""
    crashes = WORK / "crashes" / target
    crashes.mkdir(parents=True, exist_ok=True)
    tolerated = list(known or [])
    result = Result(target, 0, 0.0, 0, 0)
    start = time.monotonic()
    while True:
        left = seconds - (time.monotonic() - start)
        before = set(crashes.iterdir())
        status, executions, out = _one_process(target, max(left, 1.0), seed, crashes,
                                               tolerated)
        result.executions += executions
        new = sorted(str(p) for p in set(crashes.iterdir()) - before)
        if status == "crash" or new:
            sig = re.search(r"FUZZ-SIGNATURE: (\S+)", out)
            kind = re.search(r"ERROR: libFuzzer: ([\w -]+)", out)
            name = sig.group(1) if sig else "signal/" + (kind.group(1).strip() if kind
                                                         else "unknown")
            found = re.search(r"=== Uncaught Python exception: ===.*?(?=\n\S*INFO|\nMS:|\Z)|"
                              r"ERROR: libFuzzer: .*", out, re.S)
            result.status = "crash"
            result.crashes += 1
            result.signatures.append(name)
            result.crash_files += new
            text = (found.group(0) if found else out[-2000:]).strip()
            result.detail += f"[{name}]\n{text[-1500:]}\n"
            if not sig or name in tolerated:
                break  # a signal or a repeat: nothing more to learn by restarting
            tolerated.append(name)
        elif status != "ok":
            if result.status == "ok":
                result.status = status
            result.detail += out[-2000:]
            break
        if time.monotonic() - start >= seconds - 1 or result.crashes >= max_findings:
            break
    result.seconds = round(time.monotonic() - start, 1)
    corpus = corpus_dir(target)
    result.corpus = len(list(corpus.iterdir())) if corpus.exists() else 0
    return result


def main(argv: list[str] | None = None) -> int:
    """The command line: see the module docstring."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["mutate"]:
        from .mutate import main as mutate_main

        return mutate_main(args[1:])
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help=f"targets to run (default: all of {', '.join(TARGETS)})")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="fuzzing time per target (default 60)")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer's -seed")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--known", type=Path,
                        help="a file of finding signatures (one a line, # comments) to "
                        "tolerate: bugs already reported")
    opts = parser.parse_args(argv)
    unknown = [t for t in opts.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
    targets = opts.targets or list(TARGETS)
    seeds = build(targets)
    known = [] if opts.known is None else [
        line.split("#", 1)[0].strip() for line in opts.known.read_text().splitlines()
        if line.split("#", 1)[0].strip()]
    results = []
    print(f"{'target':<12} {'execs':>9} {'exec/s':>8} {'seconds':>8} {'corpus':>7}  result")
    for target in targets:
        r = run_target(target, opts.seconds, seed=opts.seed, known=known)
        results.append(r)
        rate = r.executions / r.seconds if r.seconds else 0.0
        print(f"{target:<12} {r.executions:>9} {rate:>8.0f} {r.seconds:>8.1f} "
              f"{r.corpus:>7}  {r.status}" + (f" ({seeds.get(target, 0)} seeds)"
                                              if r.status == "ok" else ""), flush=True)
        for sig, path in zip(r.signatures, r.crash_files, strict=False):
            print(f"    finding {sig}: input saved in {path}")
        if r.detail:
            print("    " + r.detail.replace("\n", "\n    "))
    if opts.json:
        opts.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 1 if any(r.status != "ok" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
