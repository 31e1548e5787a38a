"""Command line: ``python -m vmtest run|matrix|fetch``.

``run --kernel 6.1 [-- pytest args]`` runs the kernel tests (``-m "(kernel or needs) and not
slow"``) inside
Debian's 6.1 cloud kernel; ``--kernel host`` runs the same selection here; ``--libbpf 1.5`` runs
on the host against trixie's libbpf 1.5.  ``matrix`` runs host, 6.1, 6.12, 5.10 and the libbpf
1.5 tier and prints a table per feature.  The exit code is pytest's (matrix: 1 if any tier failed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from vmtest import report
from vmtest.fetch import SUITES, fetch_kernel, fetch_libbpf
from vmtest.proc import ChildTimeout
from vmtest.tiers import GuestError, TierResult, run_tier

MATRIX = (("host", None), ("6.1", None), ("host", "1.5"), ("6.12", None), ("5.10", None))
QUICK_TIERS = (("host", None), ("6.1", None), ("host", "1.5"))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vmtest", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run pytest on one tier")
    run.add_argument("--kernel", default="6.1", choices=["host", *SUITES])
    run.add_argument("--libbpf", choices=["1.5"], help="host only: use this libbpf")
    run.add_argument("--all", action="store_true", help="whole suite, not only kernel tests")
    run.add_argument("--timeout", type=float, default=1800, help="seconds (default 1800)")
    run.add_argument("--out", type=Path, help="folder for junit XML and console logs")
    run.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: pytest args")
    mx = sub.add_parser("matrix", help="run every tier and print the feature table")
    mx.add_argument("--tiers", default="all", choices=["all", "quick"],
                    help="all: host, 6.1, libbpf 1.5, 6.12, 5.10; quick: the first three")
    mx.add_argument("--timeout", type=float, default=1800, help="seconds per tier")
    mx.add_argument("--out", type=Path, help="folder for junit XML, logs and table.md")
    mx.add_argument("--verbose", action="store_true", help="print every tier's pytest output")
    mx.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: pytest args")
    fetch = sub.add_parser("fetch", help="download and unpack kernels and libbpf (cached)")
    fetch.add_argument("what", nargs="*", default=[*SUITES, "libbpf-1.5"])
    return p


def _extra(args: list[str]) -> list[str]:
    return args[1:] if args[:1] == ["--"] else args


def _outdir(given: Path | None) -> Path:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        return given
    return Path(tempfile.mkdtemp(prefix="vmtest-results-"))


def _timings(result: TierResult) -> str:
    return ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())


def cmd_run(ns: argparse.Namespace) -> int:
    out = _outdir(ns.out)
    try:
        result = run_tier(ns.kernel, _extra(ns.pytest_args), libbpf=ns.libbpf,
                          whole_suite=ns.all, timeout=ns.timeout, outdir=out)
    except (ChildTimeout, GuestError, ValueError) as e:
        print(f"vmtest: {e}", file=sys.stderr)
        return 2
    print(f"vmtest: {result.name}: exit {result.returncode}; {_timings(result)}; "
          f"junit {result.junit}", file=sys.stderr)
    return result.returncode


def cmd_matrix(ns: argparse.Namespace) -> int:
    out = _outdir(ns.out)
    tiers = MATRIX if ns.tiers == "all" else QUICK_TIERS
    reports: list[report.TierReport] = []
    failed: list[str] = []
    t0 = time.monotonic()
    for kernel, libbpf in tiers:
        label = kernel if libbpf is None else f"{kernel}+libbpf-{libbpf}"
        print(f"vmtest: === tier {label} ===", file=sys.stderr, flush=True)
        try:
            # the libbpf tier runs the whole suite but for the slow tests (the VM boot)
            extra = ["-m", "not slow"] if libbpf is not None else []
            result = run_tier(kernel, extra + _extra(ns.pytest_args), libbpf=libbpf,
                              whole_suite=libbpf is not None, timeout=ns.timeout, outdir=out,
                              quiet=not ns.verbose)
        except (ChildTimeout, GuestError, ValueError) as e:
            print(f"vmtest: tier {label}: {e}", file=sys.stderr)
            failed.append(label)
            continue
        print(f"vmtest: tier {label}: exit {result.returncode}; {_timings(result)}",
              file=sys.stderr, flush=True)
        if result.returncode != 0:
            failed.append(label)
        if result.junit is not None:
            reports.append(report.parse_junit(result.junit, label))
        else:  # crashed before pytest wrote its XML: keep the column, say why
            reports.append(report.TierReport(label, f"no junit XML, exit {result.returncode}"))
    table = report.matrix_table(reports)
    (out / "table.md").write_text(table + "\n")
    print(table)
    unrun = report.unrun_kernel_tests(reports)
    if unrun:
        print(f"\nkernel tests that passed on no tier ({len(unrun)}):")
        for nodeid in unrun:
            print(f"  {nodeid}")
    print(f"\nvmtest: matrix took {time.monotonic() - t0:.0f} s; results in {out}",
          file=sys.stderr)
    if failed:
        print(f"vmtest: failed tiers: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed or unrun else 0


def cmd_fetch(ns: argparse.Namespace) -> int:
    for what in ns.what:
        if what.startswith("libbpf-"):
            print(fetch_libbpf(what.removeprefix("libbpf-")))
        else:
            print(fetch_kernel(what).vmlinuz)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m vmtest``."""
    ns = _parser().parse_args(argv)
    try:
        if ns.command == "run":
            return cmd_run(ns)
        if ns.command == "matrix":
            return cmd_matrix(ns)
        return cmd_fetch(ns)
    except KeyboardInterrupt:
        print("vmtest: interrupted; guest killed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
