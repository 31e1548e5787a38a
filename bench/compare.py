"""Does a change make pylibbpf slower?  This checkout against an earlier revision, in one process.

    sudo .venv/bin/python bench/compare.py BASE_REV [--rounds 9] [--n 20000]
    (or: sudo .venv/bin/python -m bench.compare BASE_REV ...)

The earlier revision's ``pylibbpf/`` is extracted with ``git archive`` and imported under another
name (``pylibbpf_base``; the package imports itself only relatively), so both versions run in this
one process over the same libbpf.  Each round runs every benchmark for both, taking turns (the
order alternates from round to round), and the ratio this checkout / base is taken per round; the
report gives the median ratio and its spread over the rounds.  A ratio near 1.00 means no
regression; the machine's noise shows in the spread.  Needs root, clang (for the objects).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import pylibbpf  # noqa: E402
from bench._build import build  # noqa: E402

Bench = Callable[[Any, int], float]
"""A benchmark: given a pylibbpf module and a size, the seconds per operation."""


def load_revision(rev: str, into: Path) -> ModuleType:
    """``pylibbpf`` as of ``rev``, imported as ``pylibbpf_base``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "pylibbpf"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    package = into / "pylibbpf"
    spec = importlib.util.spec_from_file_location(
        "pylibbpf_base", package / "__init__.py", submodule_search_locations=[str(package)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pylibbpf_base"] = module
    spec.loader.exec_module(module)
    return module


def per_op(n: int, loop: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    loop()
    return (time.perf_counter() - t0) / n


def element_bench(kind: str, op: str, key: str) -> Bench:
    def bench(lib: Any, n: int) -> float:
        map_type = lib.MapType.ARRAY if kind == "array" else lib.MapType.HASH
        keys: list[Any] = ([k.to_bytes(4, "little") for k in range(n)] if key == "bytes"
                           else list(range(n)))
        value = (1).to_bytes(8, "little")
        with lib.Map.create(map_type, 4, 8, n) as m:
            for k in keys:
                m.update(k, value)
            if op == "update":
                update = m.update

                def loop() -> None:
                    for k in keys:
                        update(k, value)
            else:
                lookup = m.lookup

                def loop() -> None:
                    for k in keys:
                        lookup(k)
            return per_op(n, loop)
    return bench


def items_bench(lib: Any, n: int) -> float:
    with lib.Map.create(lib.MapType.HASH, 4, 8, n) as m:
        m.update_batch([k.to_bytes(4, "little") for k in range(n)],
                       [k.to_bytes(8, "little") for k in range(n)])
        return per_op(n, m.items)


def open_load_bench(path: Path) -> Bench:
    def bench(lib: Any, n: int) -> float:
        reps = 5

        def loop() -> None:
            for _ in range(reps):
                with lib.Object.open_file(path) as obj:
                    obj.load()
        return per_op(reps, loop)
    return bench


def globals_bench(path: Path) -> Bench:
    def bench(lib: Any, n: int) -> float:
        with lib.Object.open_file(path) as obj:
            obj.load()
            bss = obj.bss

            def loop() -> None:
                for _ in range(n):
                    bss["last_pid"]
            return per_op(n, loop)
    return bench


def program_fd_bench(path: Path) -> Bench:
    def bench(lib: Any, n: int) -> float:
        with lib.Object.open_file(path) as obj:
            obj.load()
            prog = obj.programs["on_enter"]

            def loop() -> None:
                for _ in range(n):
                    prog.fd  # noqa: B018
            return per_op(n, loop)
    return bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the revision to compare against (e.g. main, HEAD~5)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--n", type=int, default=20000, help="operations per timing")
    args = parser.parse_args()
    objects = build().objects
    benches: dict[str, Bench] = {
        "ARRAY lookup, bytes key": element_bench("array", "lookup", "bytes"),
        "ARRAY update, bytes key": element_bench("array", "update", "bytes"),
        "HASH lookup, int key": element_bench("hash", "lookup", "int"),
        "HASH update, bytes key": element_bench("hash", "update", "bytes"),
        "HASH items() per entry": items_bench,
        "Program.fd": program_fd_bench(objects["bench_core"]),
        "global variable read": globals_bench(objects["bench_core"]),
        "open + load + close (CO-RE)": open_load_bench(objects["bench_core"]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        base = load_revision(args.base, Path(tmp))
        contenders = {"this": pylibbpf, "base": base}
        ratios: dict[str, list[float]] = {name: [] for name in benches}
        times: dict[str, dict[str, list[float]]] = {
            name: {"this": [], "base": []} for name in benches}
        for r in range(args.rounds):
            order = ["this", "base"] if r % 2 == 0 else ["base", "this"]
            for name, bench in benches.items():
                got = {who: bench(contenders[who], args.n) for who in order}
                for who, seconds in got.items():
                    times[name][who].append(seconds)
                ratios[name].append(got["this"] / got["base"])
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    print(f"this checkout ({git}) vs {args.base}: {args.rounds} rounds, n={args.n}, "
          "ratio = this / base per round")
    print(f"  {'benchmark':<30} {'this':>12} {'base':>12}   median ratio  (min - max)")
    for name in benches:
        this = statistics.median(times[name]["this"])
        base_t = statistics.median(times[name]["base"])
        rs = ratios[name]
        def unit(s: float, ms: bool = this > 1e-4) -> str:
            return f"{s * 1e3:8.3f} ms" if ms else f"{s * 1e9:8.0f} ns"

        print(f"  {name:<30} {unit(this):>12} {unit(base_t):>12}   "
              f"{statistics.median(rs):6.3f}       ({min(rs):.3f} - {max(rs):.3f})")


if __name__ == "__main__":
    main()
