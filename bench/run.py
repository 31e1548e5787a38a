"""pylibbpf against C, raw ctypes and bcc, all in this one process, taking turns.

    sudo .venv/bin/python -m bench [--quick] [--rounds 7] [--no-bcc] [GROUP ...]

Builds the C contender (``cbench.c``, a shared library called through ctypes) and the BPF
objects into ``bench/.build``, then runs each group of contenders for ``--rounds`` rounds (each
a few turns of every contender, the order rotating from turn to turn: see ``_core``); every
ratio is taken per round, and the table gives its median and range (min-max) with the target
the project set for it.  GROUPs: maps, typed,
dumps, histogram, ringbuf, perfbuf, openload, memory (default: all).  ``--markdown FILE``
writes the table as docs/performance.md shows it; ``--json FILE`` every figure.  Needs root,
gcc, clang, libbpf-dev; bcc (``python3-bpfcc``) is optional.  See docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pylibbpf
from pylibbpf import MapType

from . import _memory
from ._build import build
from ._core import Group, Outcome, Row, Spread, Target, ratios, run_group, spread
from ._env import Env, Sizes
from ._native import CBench, RawLibbpf
from .events import perf_group, ring_group
from .maps import dump_group, element_group, histogram_group, typed_group
from .objects import openload_group

GROUPS = ("maps", "typed", "dumps", "histogram", "ringbuf", "perfbuf", "openload", "memory")
BYTES = Target("raw", 1.15, "<= 1.15x raw")
INTS = Target("raw", 1.3, "<= 1.3x raw")


def groups(env: Env, which: Iterable[str]) -> list[tuple[str, Group]]:
    """(the GROUP it belongs to, group), in the order they run."""
    out: list[tuple[str, Group]] = []
    for part in which:
        if part == "maps":
            for kind in (MapType.ARRAY, MapType.HASH):
                for op in ("lookup", "update"):
                    out.append((part, element_group(env, kind, op)))
            out.append((part, element_group(env, MapType.HASH, "delete")))
            for op in ("lookup", "update"):
                out.append((part, element_group(env, MapType.PERCPU_ARRAY, op)))
        elif part == "typed":
            out += [(part, typed_group(env, op)) for op in ("lookup", "update")]
        elif part == "dumps":
            sizes = env.sizes.dumps
            out += [(part, dump_group(env, n, n == sizes[-1])) for n in sizes]
        elif part == "histogram":
            out.append((part, histogram_group(env)))
        elif part == "ringbuf":
            out.append((part, ring_group(env)))
        elif part == "perfbuf":
            out.append((part, perf_group(env)))
        elif part == "openload":
            out.append((part, openload_group(env, "bench_maps",
                                              "open+load+close, small object")))
            out.append((part, openload_group(env, "bench_core",
                                              "open+load+close, CO-RE object")))
    return out


def rows(sizes: Sizes) -> list[Row]:
    big = sizes.dumps[-1]
    out = []
    for kind in ("ARRAY", "HASH"):
        g = kind.lower()
        out += [Row(f"{kind} lookup, bytes key", f"{g}-lookup", "bytes", "raw", "C", "bcc", BYTES),
                Row(f"{kind} update, bytes key and value", f"{g}-update", "bytes", "raw", "C",
                    "bcc", BYTES)]
    out.append(Row("HASH delete, bytes key", "hash-delete", "bytes", "raw", "C", "bcc", BYTES))
    for kind in ("ARRAY", "HASH"):
        g = kind.lower()
        out += [Row(f"{kind} lookup, int key", f"{g}-lookup", "int", "raw", "C", "bcc int", INTS),
                Row(f"{kind} update, int key and value", f"{g}-update", "int", "raw", "C",
                    "bcc int", INTS)]
    out += [
        Row("HASH delete, int key", "hash-delete", "int", "raw", "C", "bcc int", INTS),
        Row("PERCPU_ARRAY lookup, bytes key", "percpu_array-lookup", "bytes", "raw", "C",
            "bcc", BYTES),
        Row("PERCPU_ARRAY update, int key and value", "percpu_array-update", "int", "raw", "C",
            "bcc int", INTS),
        Row("typed view lookup, 64-byte struct", "typed-lookup", "typed", "raw", "C", "bcc",
            Target("raw", 1.5, "<= 1.5x raw")),
        Row("typed view update, 64-byte struct", "typed-update", "typed", "raw", "C", "bcc",
            Target("raw", 1.5, "<= 1.5x raw")),
        Row(f"dump of a {_count(big)}-entry HASH, items(), per entry", f"dump-{big}", "items",
            None, "C", "bcc", Target("C", 1.5, "<= 1.5x C batch dump")),
        Row(f"dump of a {_count(big)}-entry HASH, NumPy export", f"dump-{big}", "numpy", None,
            "C", "bcc", Target("C", 1.1, "<= 1.1x C batch dump")),
        Row(f"histogram ({sizes.hist} slots) read, pylibbpf memory view", "histogram",
            "memory", None, "C lookups", None,
            Target("C lookups", 0.1, ">= 10x faster than C lookups")),
        Row("histogram read, raw Python mmap (what a memory view can reach)", "histogram",
            "raw mmap", None, "C lookups", None),
        Row("histogram read, C through memory (for scale)", "histogram", "C mmap", None,
            "C lookups", None),
        Row("histogram read, pylibbpf values() (batch lookup, today's way)", "histogram",
            "values", None, "C lookups", None),
        Row("ring buffer, typed decode per event", "ringbuf", "typed", "raw", "C", "bcc event",
            Target("bare", 2.0, "<= 2x bare callback")),
        Row("ring buffer, typed batch decode to NumPy (read_batch().to_numpy())", "ringbuf",
            "numpy batch", "raw", "C", "bcc event", Target("bare", 2.0, "<= 2x bare callback")),
        Row("ring buffer, bare per-event callback", "ringbuf", "bare", "raw", "C", "bcc"),
        Row("ring buffer, asyncio iteration", "ringbuf", "asyncio", "raw", "C", "bcc",
            Target("bare", 1.3, "<= 1.3x callback path")),
        Row("ring buffer, asyncio batches (lists of up to 256)", "ringbuf", "asyncio batches",
            "raw", "C", "bcc", Target("bare", 1.3, "<= 1.3x callback path")),
        Row("perf buffer, bare per-event callback", "perfbuf", "bare", "raw", "C", "bcc",
            Target("bcc", 1.0, "<= 1.0x bcc bare callback")),
        Row("perf buffer, typed decode per event", "perfbuf", "typed", "raw", "C", "bcc",
            Target("bare", 2.0, "<= 2x bare callback")),
        Row("perf buffer, typed batch decode to NumPy (read_batch().to_numpy())", "perfbuf",
            "numpy batch", "raw", "C", "bcc", Target("bare", 2.0, "<= 2x bare callback")),
        Row("perf buffer, asyncio iteration", "perfbuf", "asyncio", "raw", "C", "bcc",
            Target("bare", 1.3, "<= 1.3x callback path")),
        Row("perf buffer, asyncio batches (lists of up to 256)", "perfbuf", "asyncio batches",
            "raw", "C", "bcc", Target("bare", 1.3, "<= 1.3x callback path")),
        Row("open+load+close, small object", "openload-bench_maps", "pylibbpf", "raw", "C",
            None, Target("C", 1.2, "<= 1.2x C")),
        Row("open+load+close, CO-RE object (vmlinux BTF)", "openload-bench_core", "pylibbpf",
            "raw", "C", None),
    ]
    return out


def _count(n: int) -> str:
    return f"{n // 1_000_000} M" if n >= 1_000_000 and n % 1_000_000 == 0 else (
        f"{n // 1000} k" if n % 1000 == 0 else str(n))


# ----------------------------------------------------------------------------- results

def row_result(row: Row, outcome: Outcome | None) -> dict[str, Any]:
    """One row's figures: the subject's median time, each column's ratio, the target."""
    result: dict[str, Any] = {"label": row.label, "group": row.group, "subject": row.subject}
    if outcome is None:
        result["note"] = "not run"
        return result
    if row.subject in outcome.missing:
        result["note"] = outcome.missing[row.subject]
        if row.target is not None:
            result["target"] = row.target.text
            result["status"] = result["note"]
        return result
    result["median_ns"] = spread(outcome.times[row.subject]).median * 1e9
    for column in ("raw", "c", "bcc"):
        name = getattr(row, column)
        if name is None:
            continue
        r = ratios(outcome, row.subject, name)
        result[column] = r if isinstance(r, str) else r.__dict__
    if row.target is not None:
        r = ratios(outcome, row.subject, row.target.against)
        result["target"] = row.target.text
        if isinstance(r, str):
            result["status"] = f"no baseline ({r})"
        else:
            result["ratio"] = r.__dict__
            result["status"] = "met" if r.median <= row.target.limit else "NOT met"
    return result


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return str(Spread(**value))


def _target_cell(result: dict[str, Any]) -> str:
    if "target" not in result:
        return ""
    measured = f"{Spread(**result['ratio']).median:.2f} " if "ratio" in result else ""
    return f"{result['target']}: {measured}{result.get('status', '')}"


def print_table(results: list[dict[str, Any]], write: Callable[[str], None]) -> None:
    write(f"{'row':<64} {'ns/unit':>9}  {'/ raw ctypes':<20} {'/ C':<20} {'/ bcc':<20} target")
    for r in results:
        if "median_ns" not in r:
            write(f"{r['label']:<64} {r.get('note', ''):>9}  {'':<62} {_target_cell(r)}")
            continue
        write(f"{r['label']:<64} {r['median_ns']:9.0f}  {_cell(r.get('raw')):<20} "
              f"{_cell(r.get('c')):<20} {_cell(r.get('bcc')):<20} {_target_cell(r)}")


def markdown(results: list[dict[str, Any]], scaling: list[dict[str, Any]],
             memory: list[dict[str, Any]]) -> str:
    lines = ["| path | pylibbpf / raw ctypes | pylibbpf / C | pylibbpf / bcc | target |",
             "|---|---|---|---|---|"]
    for r in results:
        if "median_ns" not in r:
            lines.append(f"| {r['label']} | {r.get('note', '')} | | | {_target_cell(r)} |")
            continue
        lines.append(f"| {r['label']} | {_cell(r.get('raw'))} | {_cell(r.get('c'))} | "
                     f"{_cell(r.get('bcc'))} | {_target_cell(r)} |")
    if scaling:
        lines += ["", "| HASH entries | items() / C batch dump | items() per entry, relative "
                  "to the smallest map |", "|---|---|---|"]
        for s in scaling:
            lines.append(f"| {_count(s['entries'])} | {_cell(s['ratio'])} | "
                         f"{s['relative']:.2f} |")
    if memory:
        lines += ["", "| dump path | growth of RSS during the dump | / C's | peak RSS of "
                  "the process |", "|---|---|---|---|"]
        for m in memory:
            lines.append(f"| {m['path']} | {m.get('growth', m.get('note', ''))} | "
                         f"{m.get('vs_c', '')} | {m.get('peak', '')} |")
    return "\n".join(lines) + "\n"


def scaling_of(sizes: Sizes, outcomes: dict[str, Outcome]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n in sizes.dumps:
        outcome = outcomes.get(f"dump-{n}")
        if outcome is None:
            continue
        r = ratios(outcome, "items", "C")
        out.append({"entries": n,
                    "items_ns": spread(outcome.times["items"]).median * 1e9,
                    "c_ns": spread(outcome.times["C"]).median * 1e9,
                    "ratio": r if isinstance(r, str) else r.__dict__})
    if out:
        smallest = out[0]["items_ns"]
        for s in out:
            s["relative"] = s["items_ns"] / smallest
    return out


def memory_of(env: Env, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    entries = env.sizes.dumps[-1]
    out = []
    from pylibbpf import Map

    with Map.create(MapType.HASH, 4, 8, entries) as m:
        env.c.fill(m.fd, entries, 8)
        c_growth = None
        for path in _memory.PATHS:
            if path == "bcc" and not env.bcc_wanted:
                out.append({"path": path, "note": "not run (--no-bcc)"})
                continue
            progress(f"memory: {path}")
            got = _memory.measure(path, env.built.clib, m.fd, entries)
            if "missing" in got:
                out.append({"path": path, "note": got["missing"]})
                continue
            growth = got["growth_kib"] / 1024
            if path == "C":
                c_growth = growth
            peak = got["peak_kib"] / 1024
            out.append({"path": path, "growth_mib": growth, "peak_mib": peak,
                        "growth": f"{growth:.1f} MiB", "peak": f"{peak:.1f} MiB",
                        "vs_c": f"{growth / c_growth:.2f}" if c_growth and c_growth >= 0.5 else ""})
    raw_mib = entries * 12 / 2**20
    out.append({"path": f"(raw key+value bytes of {_count(entries)} entries)",
                "growth": f"{raw_mib:.1f} MiB"})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("which", nargs="*", metavar="GROUP", help=", ".join(GROUPS))
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-bcc", action="store_true", help="leave bcc out")
    parser.add_argument("--markdown", type=Path, help="write the tables as markdown")
    parser.add_argument("--json", type=Path, help="write every figure as JSON")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    unknown = set(args.which) - set(GROUPS)
    if unknown:
        parser.error(f"unknown group(s) {', '.join(sorted(unknown))}; choose from "
                     f"{', '.join(GROUPS)}")
    which = [g for g in GROUPS if g in (args.which or GROUPS)]
    built = build()
    sizes = Sizes.quick() if args.quick else Sizes.full()
    env = Env(built, sizes, CBench(built.clib), RawLibbpf(), bcc_wanted=not args.no_bcc)
    started = time.monotonic()

    def progress(text: str) -> None:
        print(f"\r[{time.monotonic() - started:6.1f} s] {text:<70}", end="", file=sys.stderr,
              flush=True)

    bcc = env.bcc()
    header = (f"pylibbpf benchmarks: Python {platform.python_version()}, libbpf "
              f"{'.'.join(map(str, pylibbpf.libbpf_version()))}, kernel {platform.release()}, "
              f"{env.ncpu} CPUs, bcc {getattr(bcc, '__version__', bcc)}; "
              f"{args.rounds} rounds{', --quick' if args.quick else ''}")
    outcomes: dict[str, Outcome] = {}
    for _part, group in groups(env, which):
        outcomes[group.key] = run_group(group, args.rounds, sizes.slices, progress)
    memory = memory_of(env, progress) if "memory" in which else []
    print(f"\r{'':<90}\r", end="", file=sys.stderr)
    table_rows = [r for r in rows(sizes) if r.group in outcomes]
    results = [row_result(r, outcomes.get(r.group)) for r in table_rows]
    scaling = scaling_of(sizes, outcomes)
    print(header)
    print("ratio = pylibbpf / other, per round: median (min-max); ns/unit = pylibbpf's median\n")
    print_table(results, print)
    if scaling:
        print("\ndump scaling, items() per entry:")
        for s in scaling:
            print(f"  {_count(s['entries']):>6}: {s['items_ns']:7.1f} ns/entry (C "
                  f"{s['c_ns']:6.1f}), / C {_cell(s['ratio'])}, relative to the smallest "
                  f"{s['relative']:.2f}")
    if memory:
        print(f"\npeak memory of a {_count(sizes.dumps[-1])}-entry dump (one child process per "
              "path):")
        for m in memory:
            print(f"  {m['path']:<10} growth {m.get('growth', m.get('note', '')):>12}  "
                  f"/ C {m.get('vs_c', ''):>6}  process peak {m.get('peak', '')}")
    print(f"\n{time.monotonic() - started:.0f} s")
    if args.markdown:
        args.markdown.write_text(markdown(results, scaling, memory))
    if args.json:
        args.json.write_text(json.dumps({"header": header, "rows": results, "scaling": scaling,
                                         "memory": memory}, indent=1))
    return 0
