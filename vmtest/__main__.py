"""Command line: ``python -m vmtest run|matrix|table|fetch``.

``run --kernel 6.1 [-- pytest args]`` runs the kernel tests (``-m "(kernel or needs) and not
slow"``) inside Debian's 6.1 cloud kernel; ``--kernel host`` runs the same selection here;
``--libbpf 1.7.0`` loads another Debian libbpf (on the host, or inside a guest).  ``matrix`` runs
every tier (``--tiers all``), prints each tier's time and a table per feature, and writes
``compat-table.md``; ``table DIR`` puts that table into the README.  The exit code is pytest's
(matrix: 1 if any tier failed).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from vmtest import report, schedule
from vmtest.fetch import LIBBPF_SUITES, SUITES, fetch_kernel, fetch_libbpf
from vmtest.proc import ChildTimeout
from vmtest.tiers import CHECKOUT, DISTRO_TIERS, GuestError, TierResult, parse_tier, run_tier

# every tier, in the order the matrix starts them: the tiers on this machine's kernel take turns
# in one slot (the host's whole suite first, its output shown), the guests fill the other slot
# and then both, the longest first
FULL = ("host", "host-libbpf-1.4.6", "host-libbpf-1.5", "host-libbpf-1.7.0", "debian13",
        "7.3-libbpf-1.7.0", "7.3", "6.12", "6.1", "5.10")
# what CI runs (must fit .ci/run's budget and pass); a tier left out stays runnable by name
# and in ``full``
NOT_IN_ALL: tuple[str, ...] = ()
ALL = tuple(t for t in FULL if t not in NOT_IN_ALL)
QUICK = ("host", "6.1", "host-libbpf-1.5")
SETS = {"all": ALL, "quick": QUICK, "full": FULL}
README_BEGIN = "<!-- matrix-table:begin -->"
README_END = "<!-- matrix-table:end -->"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vmtest", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run pytest on one tier")
    run.add_argument("--kernel", default="6.1", choices=["host", *SUITES, *DISTRO_TIERS])
    run.add_argument("--libbpf", choices=sorted(LIBBPF_SUITES), help="load this Debian libbpf")
    run.add_argument("--all", action="store_true", help="whole suite, not only kernel tests")
    run.add_argument("--timeout", type=float, default=1800, help="seconds (default 1800)")
    run.add_argument("--out", type=Path, help="folder for junit XML and console logs")
    run.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: pytest args")
    mx = sub.add_parser("matrix", help="run every tier and print the feature table")
    mx.add_argument("--tiers", default="all",
                    help=f"all ({', '.join(ALL)}), quick ({', '.join(QUICK)}), full (all and "
                         f"{', '.join(t for t in FULL if t not in ALL) or 'nothing more'}), "
                         "or a comma-separated list of tier names")
    mx.add_argument("--timeout", type=float, default=1800, help="seconds per tier")
    mx.add_argument("--jobs", type=int, default=schedule.default_jobs(),
                    help="tiers at a time (default 2 with two cores or more; tiers on this "
                         "machine's kernel never overlap)")
    mx.add_argument("--out", type=Path, help="folder for junit XML, logs and compat-table.md")
    mx.add_argument("--verbose", action="store_true", help="print every tier's pytest output")
    mx.add_argument("--dry-run", action="store_true",
                    help="print the planned order and expected times, run nothing")
    mx.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: pytest args")
    tb = sub.add_parser("table", help="rebuild the README's compatibility table from a matrix "
                                      "--out folder")
    tb.add_argument("dir", type=Path, help="a `matrix --out` folder")
    tb.add_argument("--readme", type=Path, default=CHECKOUT / "README.md")
    fetch = sub.add_parser("fetch", help="download and unpack kernels and libbpf (cached)")
    fetch.add_argument("what", nargs="*",
                       default=[*SUITES, *(f"libbpf-{v}" for v in LIBBPF_SUITES)])
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


def select_tiers(spec: str) -> tuple[str, ...]:
    """``all``/``quick``/``full`` or a comma-separated list of tier names (checked)."""
    if spec in SETS:
        return SETS[spec]
    names = tuple(n.strip() for n in spec.split(",") if n.strip())
    if not names:
        raise ValueError("--tiers names no tier")
    for name in names:
        parse_tier(name)
    return names


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


def _failure_excerpt(log: Path, lines: int = 60) -> list[str]:
    """What a failed tier's log shows of the failure: pytest's short summary if there is one,
    else its last lines."""
    text = log.read_text(errors="replace").splitlines() if log.exists() else []
    for i, line in enumerate(text):
        if "short test summary info" in line:
            return text[i:i + lines]
    return text[-lines:]


def cmd_matrix(ns: argparse.Namespace) -> int:
    try:
        tiers = select_tiers(ns.tiers)
    except ValueError as e:
        print(f"vmtest: {e}", file=sys.stderr)
        return 2
    # the order that ends soonest by the tiers' expected times: an earlier run's in this
    # folder, else the static table
    known = schedule.estimates(ns.out / "tiers.json" if ns.out else None)
    tiers = tuple(schedule.plan(tiers, known, ns.jobs))
    planned = schedule.simulate(tiers, {t: schedule.expected_seconds(t, known) for t in tiers},
                                ns.jobs)
    print(f"vmtest: matrix of {len(tiers)} tiers, {ns.jobs} at a time; planned by "
          f"{'the last run' if ns.out and (ns.out / 'tiers.json').exists() else 'estimates'}:",
          file=sys.stderr, flush=True)
    for line in schedule.describe(planned):
        print(f"vmtest: {line}", file=sys.stderr, flush=True)
    if ns.dry_run:
        return 0
    out = _outdir(ns.out)
    print(f"vmtest: logs in {out}", file=sys.stderr, flush=True)
    t0 = time.monotonic()

    def on_line(label: str, line: str) -> None:
        # the host tier is the suite's main run: always shown; others only with --verbose,
        # but each tier's own summary lines (its timings) always
        if ns.verbose or label == "host" or line.startswith("vmtest: "):
            print(f"[{label}] {line}", flush=True)

    def on_done(run: schedule.TierRun) -> None:
        print(f"vmtest: tier {run.label}: exit {run.returncode}, took {run.seconds:.0f} s "
              f"({time.monotonic() - t0:.0f} s into the matrix)", file=sys.stderr, flush=True)
        if run.returncode != 0 and not (ns.verbose or run.label == "host"):
            for line in _failure_excerpt(run.log):
                print(f"[{run.label}] {line}", file=sys.stderr)

    runs = schedule.run_tiers(tiers, _extra(ns.pytest_args), jobs=ns.jobs, timeout=ns.timeout,
                              out=out, on_line=on_line, on_done=on_done)
    runs = sorted(runs, key=lambda r: _column(r.label))  # the tables' order, not the finish
    failed = [r.label for r in runs if r.returncode != 0]
    reports: list[report.TierReport] = []
    for run in runs:
        if run.junit is not None:
            tier_report = report.parse_junit(run.junit, run.label)
        else:  # crashed before pytest wrote its XML: keep the column, say why
            tier_report = report.TierReport(run.label, f"no junit XML, exit {run.returncode}")
        tier_report.seconds = run.seconds
        reports.append(tier_report)
    index = [{"name": r.label, "junit": r.junit.name if r.junit else None,
              "returncode": r.returncode, "seconds": round(r.seconds, 1)} for r in runs]
    (out / "tiers.json").write_text(json.dumps(index, indent=1) + "\n")
    table = report.matrix_table(reports)
    (out / "table.md").write_text(table + "\n")
    (out / "compat-table.md").write_text(report.compat_table(reports) + "\n")
    print(table)
    print("\n" + report.timing_table(reports))
    unrun = report.unrun_kernel_tests(reports)
    if unrun:
        print(f"\nkernel tests that passed on no tier ({len(unrun)}):")
        for nodeid in unrun:
            print(f"  {nodeid}")
        if not set(ALL) <= set(tiers):  # a subset of the tiers cannot judge this
            print("vmtest: (not every tier of 'all' ran: not counted as a failure)",
                  file=sys.stderr)
            unrun = []
    print(f"\nvmtest: matrix took {time.monotonic() - t0:.0f} s; results in {out} "
          f"(README table: python -m vmtest table {out})", file=sys.stderr)
    if failed:
        for line in report.failure_digest(reports):
            print(f"vmtest: {line}", file=sys.stderr)
        print(f"vmtest: failed tiers: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed or unrun else 0


def _column(name: str) -> tuple[int, str]:
    """Where a tier's column goes in the tables: the order of ``FULL`` (this machine's kernel
    first, then the guests, newest first), tiers it does not list last by name."""
    return (FULL.index(name) if name in FULL else len(FULL), name)


def load_reports(folder: Path) -> list[report.TierReport]:
    """The tiers of a ``matrix --out`` folder, in run order (``tiers.json``, else every XML)."""
    index = folder / "tiers.json"
    reports: list[report.TierReport] = []
    if index.exists():
        for run in json.loads(index.read_text()):
            name = str(run["name"])
            junit = run.get("junit")
            if junit:
                r = report.parse_junit(folder / str(junit), name)
            else:
                r = report.TierReport(name, f"no junit XML, exit {run.get('returncode')}")
            r.seconds = float(run.get("seconds") or 0)
            reports.append(r)
        return sorted(reports, key=lambda r: _column(r.name))
    for xml in sorted(folder.glob("*.xml"), key=lambda x: _column(x.stem)):
        reports.append(report.parse_junit(xml, xml.stem))
    return reports


def replace_section(text: str, table: str) -> str:
    """``text`` with what lies between the README's matrix-table markers replaced."""
    pattern = re.compile(re.escape(README_BEGIN) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"no {README_BEGIN} ... {README_END} section")
    return pattern.sub(lambda _: f"{README_BEGIN}\n{table}\n{README_END}", text, count=1)


def cmd_table(ns: argparse.Namespace) -> int:
    reports = load_reports(ns.dir)
    if not reports:
        print(f"vmtest: {ns.dir} holds no tier results", file=sys.stderr)
        return 2
    table = report.compat_table(reports)
    (ns.dir / "compat-table.md").write_text(table + "\n")
    try:
        ns.readme.write_text(replace_section(ns.readme.read_text(), table))
    except (OSError, ValueError) as e:
        print(f"vmtest: {ns.readme}: {e}", file=sys.stderr)
        return 2
    print(f"vmtest: {ns.readme}: table of {len(reports)} tiers written", file=sys.stderr)
    return 0


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
        if ns.command == "table":
            return cmd_table(ns)
        return cmd_fetch(ns)
    except KeyboardInterrupt:
        print("vmtest: interrupted; guest killed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
