"""pylibbpf benchmarks against C/libbpf doing the same work, in the same run.

    sudo .venv/bin/python bench/run.py [--quick] [maps batch ringbuf openload]

Builds ``bench/bench.c`` (gcc, -lbpf) and the BPF objects (clang) into ``bench/.build``, runs
each benchmark in C and in Python, and prints each figure with the ratio Python time / C time.
Needs root, gcc, clang and libbpf-dev.  See docs/performance.md.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUILD = HERE / ".build"
sys.path.insert(0, str(ROOT))

import pylibbpf  # noqa: E402
from pylibbpf import Map, MapType, Object, RingBuffer  # noqa: E402


def build() -> tuple[Path, dict[str, Path]]:
    """Compile the C program and the BPF objects (cached by content)."""
    BUILD.mkdir(exist_ok=True)
    src = HERE / "bench.c"
    exe = BUILD / f"bench-{hashlib.sha256(src.read_bytes()).hexdigest()[:12]}"
    if not exe.exists():
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(exe), str(src), "-lbpf"], check=True)
    objects = {}
    for name in ("bench_rb", "bench_core"):
        c = HERE / f"{name}.bpf.c"
        out = BUILD / f"{name}-{hashlib.sha256(c.read_bytes()).hexdigest()[:12]}.o"
        if not out.exists():
            subprocess.run(["clang", "-target", "bpf", "-O2", "-g", "-D__TARGET_ARCH_x86",
                            f"-I{ROOT / 'vendor'}", "-c", str(c), "-o", str(out)], check=True)
        objects[name] = out
    return exe, objects


def run_c(exe: Path, *args: object) -> dict[str, float]:
    out = subprocess.run([str(exe), *map(str, args)], check=True, capture_output=True,
                         text=True).stdout
    return {name: float(seconds) for name, seconds, _n in (line.split() for line in
                                                          out.splitlines())}


def best_of(reps: int, func: Callable[[], float]) -> float:
    return min(func() for _ in range(reps))


def report(name: str, py: float, c: float, n: int, target: str) -> None:
    unit = f"{py / n * 1e9:9.0f} ns/op  C {c / n * 1e9:7.0f} ns/op" if n > 1 else (
        f"{py * 1e3:9.3f} ms     C {c * 1e3:7.3f} ms   ")
    print(f"  {name:<38} {unit}   ratio {py / c:5.2f}   ({target})")


# ----------------------------------------------------------------------------- benchmarks


def bench_maps(exe: Path, n: int) -> None:
    print(f"map element ops, {n} keys (4-byte key, 8-byte value)")
    c = run_c(exe, "maps", n)
    value = (1).to_bytes(8, "little")
    byte_keys = [k.to_bytes(4, "little") for k in range(n)]
    for kind in ("array", "hash"):
        with Map.create(MapType.ARRAY if kind == "array" else MapType.HASH, 4, 8, n) as m:
            update, lookup = m.update, m.lookup

            def do_update(update: Callable[..., None] = update) -> float:
                t0 = time.perf_counter()
                for k in byte_keys:
                    update(k, value)
                return time.perf_counter() - t0

            def do_lookup(lookup: Callable[..., object] = lookup) -> float:
                t0 = time.perf_counter()
                for k in byte_keys:
                    lookup(k)
                return time.perf_counter() - t0

            def do_lookup_int(lookup: Callable[..., object] = lookup) -> float:
                t0 = time.perf_counter()
                for k in range(n):
                    lookup(k)
                return time.perf_counter() - t0

            up = best_of(3, do_update)
            lk = best_of(3, do_lookup)
            lk_int = best_of(3, do_lookup_int)
        report(f"{kind} update (bytes key)", up, c[f"{kind}.update"], n, "target <= 2.5")
        report(f"{kind} lookup (bytes key)", lk, c[f"{kind}.lookup"], n, "target <= 2.5")
        report(f"{kind} lookup (int key)", lk_int, c[f"{kind}.lookup"], n, "target <= 2.5")


def bench_batch(exe: Path, n: int) -> None:
    print(f"dump a {n}-entry HASH map into Python objects")
    c = run_c(exe, "batch", n)
    with Map.create(MapType.HASH, 4, 8, n) as m:
        keys = [k.to_bytes(4, "little") for k in range(n)]
        for i in range(0, n, 65536):
            m.update_batch(keys[i:i + 65536], [k + bytes(4) for k in keys[i:i + 65536]])

        def dump() -> float:
            t0 = time.perf_counter()
            items = m.items()
            elapsed = time.perf_counter() - t0
            assert len(items) == n
            return elapsed

        def walk() -> float:
            t0 = time.perf_counter()
            pairs = [(k, m.lookup(k)) for k in m._walk_keys()]
            elapsed = time.perf_counter() - t0
            assert len(pairs) == n
            return elapsed

        batch = best_of(3, dump)
        element = walk()
    report("items() (lookup_batch)", batch, c["hash.lookup_batch"], 1, "target <= 2")
    report("get_next_key + lookup, Python", element, c["hash.get_next_key"], 1,
           "C's element walk, for scale")
    print(f"  {'items() speed-up over the Python element walk':<38} {element / batch:5.1f}x"
          "   (target >= 5)")


def bench_ringbuf(exe: Path, obj_path: Path, n: int, reps: int) -> None:
    print(f"ring buffer consumer, {n} 64-byte events pre-filled by BPF_PROG_TEST_RUN")
    c = run_c(exe, "ringbuf", obj_path, n, reps)["ringbuf.consume"]
    args = n.to_bytes(4, "little")
    with Object.open_file(obj_path) as obj:
        obj.load()
        emit = obj.programs["emit"]

        def fill() -> None:
            emit.test_run(ctx_in=args, ctx_size_out=0, repeat=0)

        count = 0

        def on_event(data: bytes) -> None:
            nonlocal count
            count += 1

        with RingBuffer(obj.maps["rb"], on_event) as rb:
            def callback() -> float:
                nonlocal count
                fill()
                count = 0
                t0 = time.perf_counter()
                rb.consume()
                elapsed = time.perf_counter() - t0
                assert count == n, (count, n)
                return elapsed

            def batch() -> float:
                fill()
                t0 = time.perf_counter()
                got = rb.read_batch()
                elapsed = time.perf_counter() - t0
                assert len(got) == n
                return elapsed

            def zero_copy() -> float:
                fill()
                t0 = time.perf_counter()
                with rb.read_batch(copy=False) as got:
                    assert len(got) == n
                return time.perf_counter() - t0

            per_event = best_of(reps, callback)
            in_place = best_of(reps, zero_copy)
            batched = best_of(reps, batch)
            numpy_time = None
            try:
                import numpy  # noqa: F401

                def batch_numpy() -> float:
                    fill()
                    t0 = time.perf_counter()
                    with rb.read_batch(copy=False) as got:
                        arr = got.to_numpy()
                        assert arr.shape[0] == n
                        del arr
                    return time.perf_counter() - t0

                numpy_time = best_of(reps, batch_numpy)
            except ImportError:
                pass
        assert obj.bss.get_int("dropped") == 0
    report("per-event Python callback", per_event, c, n,
           f"{n / per_event / 1e6:.2f} M events/s, target >= 1 M/s")
    report("batch read_batch() (copied)", batched, c, n, "target <= 1.0")
    report("batch read_batch(copy=False)", in_place, c, n, "target <= 1.0")
    if numpy_time is not None:
        report("read_batch(copy=False).to_numpy()", numpy_time, c, n, "target <= 1.0")


def bench_openload(exe: Path, objects: dict[str, Path], reps: int) -> None:
    rounds = 5
    print(f"open + load + close, median of {rounds} interleaved rounds of {reps} (C, Python)")
    for name, path in objects.items():
        c_rounds, py_rounds = [], []
        for _ in range(rounds):  # interleaved, so that both see the same machine load
            c_rounds.append(run_c(exe, "openload", path, reps)["openload"])
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                with Object.open_file(path) as obj:
                    obj.load()
                times.append(time.perf_counter() - t0)
            py_rounds.append(statistics.median(times))
        c = statistics.median(c_rounds)
        py = statistics.median(py_rounds)
        report(f"{name}", py, c, 1, f"overhead {100 * (py - c) / c:+.1f}%, target < 5%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="*", default=["maps", "batch", "ringbuf", "openload"])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke test)")
    args = parser.parse_args()
    exe, objects = build()
    scale = 10 if args.quick else 1
    print(f"pylibbpf benchmarks: Python {platform.python_version()}, libbpf "
          f"{'.'.join(map(str, pylibbpf.libbpf_version()))}, kernel {platform.release()}, "
          f"{platform.machine()}")
    if "maps" in args.which:
        bench_maps(exe, 200_000 // scale)
    if "batch" in args.which:
        bench_batch(exe, 1_000_000 // scale)
    if "ringbuf" in args.which:
        bench_ringbuf(exe, objects["bench_rb"], 1_000_000 // scale, 5)
    if "openload" in args.which:
        bench_openload(exe, objects, 20 // (5 if args.quick else 1))


if __name__ == "__main__":
    main()
