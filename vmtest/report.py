"""Read the junit XML of each tier and draw the per-feature matrix table."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

NO_FEATURE = "(kernel, no needs)"


@dataclass
class Outcome:
    """One test's result on one tier."""

    nodeid: str
    features: tuple[str, ...]
    kernel: bool
    status: str  # passed | skipped | failed
    message: str = ""


@dataclass
class TierReport:
    """Everything a tier's junit XML says."""

    name: str
    kernel_release: str = "?"
    libbpf: str = "?"
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float | None = None  # the tier's wall time, when the matrix measured it


def parse_junit(path: Path, name: str) -> TierReport:
    """Parse pytest's junit XML (with the vmtest plugin's properties) into a report."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise ValueError(f"{path}: not a readable junit XML: {e}") from e
    report = TierReport(name)
    for suite in root.iter("testsuite"):
        for prop in suite.findall("properties/property"):
            if prop.get("name") == "kernel_release":
                report.kernel_release = prop.get("value", "?")
            elif prop.get("name") == "libbpf":
                report.libbpf = prop.get("value", "?")
        for case in suite.iter("testcase"):
            props = {p.get("name"): p.get("value", "") for p in case.findall("properties/property")}
            needs = props.get("needs") or ""
            features = tuple(f for f in needs.split(",") if f)
            classname = case.get("classname", "")
            nodeid = f"{classname.replace('.', '/')}.py::{case.get('name', '')}"
            status, message = "passed", ""
            for tag in ("failure", "error"):
                el = case.find(tag)
                if el is not None:
                    status, message = "failed", el.get("message", "")
            el = case.find("skipped")
            if status == "passed" and el is not None:
                status, message = "skipped", el.get("message", "")
            report.outcomes.append(Outcome(nodeid, features, props.get("kernel") == "1",
                                           status, message))
    return report


def _short_reason(message: str) -> str:
    reason = message.removeprefix("Skipped: ").strip()
    if ": " in reason:  # "kprobe: CONFIG_KPROBES is not set in this kernel" -> the why
        head, _, tail = reason.partition(": ")
        if " " not in head:
            reason = tail
    return reason if len(reason) <= 60 else reason[:57] + "..."


def cell(outcomes: list[Outcome]) -> str:
    """One table cell: counts per status, with the (first) skip reason."""
    if not outcomes:
        return "-"
    counts = Counter(o.status for o in outcomes)
    parts = []
    if counts["failed"]:
        parts.append(f"**failed {counts['failed']}**")
    if counts["passed"]:
        parts.append(f"passed {counts['passed']}")
    if counts["skipped"]:
        reasons = sorted({_short_reason(o.message) for o in outcomes if o.status == "skipped"})
        parts.append(f"skipped {counts['skipped']} ({'; '.join(reasons)})")
    return ", ".join(parts)


def matrix_table(reports: list[TierReport]) -> str:
    """Markdown table: rows are features, columns tiers, cells passed / skipped (why) / failed."""
    features: list[str] = []
    for report in reports:
        for o in report.outcomes:
            for f in o.features or ((NO_FEATURE,) if o.kernel else ()):
                if f not in features:
                    features.append(f)
    features.sort(key=lambda f: (f == NO_FEATURE, f))
    head = ["feature"] + [f"{r.name} ({r.kernel_release}, libbpf {r.libbpf})" for r in reports]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in features:
        row = [f]
        for r in reports:
            row.append(cell([o for o in r.outcomes
                             if f in o.features or (f == NO_FEATURE and o.kernel
                                                    and not o.features)]))
        lines.append("| " + " | ".join(row) + " |")
    totals = ["all tests"]
    for r in reports:
        totals.append(cell(r.outcomes))
    lines.append("| " + " | ".join(totals) + " |")
    return "\n".join(lines)


def unrun_kernel_tests(reports: list[TierReport]) -> list[str]:
    """Kernel tests that passed on no tier (the issue's rule: such a test fails the run)."""
    seen: dict[str, bool] = {}
    for r in reports:
        for o in r.outcomes:
            if o.kernel or o.features:
                seen[o.nodeid] = seen.get(o.nodeid, False) or o.status == "passed"
    return sorted(n for n, ran in seen.items() if not ran)


def _column(r: TierReport) -> str:
    release = r.kernel_release.split("-")[0] if r.kernel_release != "?" else "?"
    head = f"{r.name} ({release}, libbpf {r.libbpf})"
    return head if r.seconds is None else f"{head}, {r.seconds:.0f} s"


def compat_table(reports: list[TierReport]) -> str:
    """The README's table: one row per feature, one column per tier (kernel, libbpf, time),
    cells passed / skipped (why) / failed; generated from the tiers' junit XML."""
    table = matrix_table(reports)
    lines = table.splitlines()
    lines[0] = "| feature | " + " | ".join(_column(r) for r in reports) + " |"
    total = sum(r.seconds or 0 for r in reports)
    note = (f"Generated by `python -m vmtest matrix` and `python -m vmtest table` from "
            f"{len(reports)} tiers ({total:.0f} s of tier time).")
    return "\n".join([note, "", *lines])


def timing_table(reports: list[TierReport]) -> str:
    """Each tier's wall time and totals, as printed after a matrix run."""
    lines = ["| tier | kernel | libbpf | tests | time |", "|---|---|---|---|---|"]
    for r in reports:
        seconds = "?" if r.seconds is None else f"{r.seconds:.0f} s"
        lines.append(f"| {r.name} | {r.kernel_release} | {r.libbpf} | {len(r.outcomes)} | "
                     f"{seconds} |")
    total = sum(r.seconds or 0 for r in reports)
    lines.append(f"| all | | | {sum(len(r.outcomes) for r in reports)} | {total:.0f} s |")
    return "\n".join(lines)


def failure_digest(reports: list[TierReport], per_tier: int = 12) -> list[str]:
    """One line per failed test, grouped by tier (at most ``per_tier`` each, then a count):
    printed last by a matrix run, so that the tail of its output names what failed."""
    lines: list[str] = []
    for r in reports:
        failed = [o for o in r.outcomes if o.status == "failed"]
        if not failed:
            continue
        lines.append(f"{r.name}: {len(failed)} failed")
        for o in failed[:per_tier]:
            first = o.message.strip().splitlines()[0] if o.message.strip() else ""
            first = first if len(first) <= 120 else first[:117] + "..."
            lines.append(f"  {o.nodeid}" + (f": {first}" if first else ""))
        if len(failed) > per_tier:
            lines.append(f"  ... and {len(failed) - per_tier} more")
    return lines
