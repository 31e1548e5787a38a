"""What one scrape of ``pylibbpf export`` costs for 10 k series (run as root).

    python bench/export_scrape.py [--series 10000] [--rounds 9]

Three maps of ``bench/export_scrape.bpf.c``, each filled to about ``--series`` series and
exported alone: a hash of ``struct flow`` keys (two labels, ``inet`` and ``port`` decoders), a
per-CPU hash of syscall numbers (summed over the CPUs), and log2 histograms (26 slots in the
value, plus ``_sum`` and ``_count``: ``series // 28`` keys).  For each, the median of
``--rounds`` scrapes: the collect (batch read, BTF decoding, labels, buckets) and the whole
``/metrics`` body (collect plus the text exposition), and the body's size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from pylibbpf import num_possible_cpus  # noqa: E402
from pylibbpf.export import Exporter, parse_config  # noqa: E402

METRICS = {
    "flows": {"counters": [{"name": "flow_packets_total", "map": "flows", "labels": [
        {"name": "addr", "field": "saddr", "decoders": ["inet"]},
        {"name": "port", "field": "dport", "decoders": ["port"]}]}]},
    "percpu_counts": {"counters": [{"name": "calls_total", "map": "percpu_counts", "labels": [
        {"name": "syscall", "decoders": ["syscall"]}]}]},
    "hists": {"histograms": [{"name": "latency_seconds", "map": "hists", "slots": "slots",
                              "sum": "total", "bucket_multiplier": 1e-6,
                              "labels": [{"name": "id"}]}]},
}


def _fill(exporter: Exporter, which: str, series: int) -> int:
    m = exporter.objects[which].maps[which]
    values: list[Any]  # bytes per key, or one bytes per CPU for the per-CPU map
    if which == "flows":
        keys = [bytes([10, 0, i >> 8 & 0xFF, i & 0xFF]) + (i % 50000).to_bytes(2, "big") + b"\0\0"
                for i in range(series)]
        values = [(i * 7).to_bytes(8, sys.byteorder) for i in range(series)]
    elif which == "percpu_counts":
        ncpu = num_possible_cpus()
        keys = [i.to_bytes(4, sys.byteorder) for i in range(series)]
        values = [[(i + c).to_bytes(8, sys.byteorder) for c in range(ncpu)]
                  for i in range(series)]
    else:
        series //= 28  # 26 buckets (25 finite + +Inf), _sum, _count per key
        keys = [i.to_bytes(8, sys.byteorder) for i in range(series)]
        values = [b"".join((s * i % 97).to_bytes(8, sys.byteorder) for s in range(26))
                  + (12345).to_bytes(8, sys.byteorder) for i in range(series)]
    return m.update_batch(keys, values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("export_scrape: run as root (it loads BPF maps)")
    print(f"{'map':<14} {'series':>7} {'collect ms':>11} {'/metrics ms':>12} "
          f"{'body KiB':>9} {'us/series':>10}")
    for which, metrics in METRICS.items():
        config = parse_config({"objects": [{
            "name": which, "source": str(HERE / "export_scrape.bpf.c"),
            "include_dirs": [str(ROOT / "vendor")], "programs": [], "metrics": metrics}]})
        with Exporter(config).start() as exporter:
            entries = _fill(exporter, which, args.series)
            registry = exporter.registry()
            collect, whole = [], []
            body = b""
            for _ in range(args.rounds):
                started = time.perf_counter()
                families = list(exporter.collect())
                collect.append(time.perf_counter() - started)
                started = time.perf_counter()
                body = generate_latest(registry)
                whole.append(time.perf_counter() - started)
            series = sum(len(f.samples) for f in families if not f.name.startswith("pylibbpf"))
            median = statistics.median(whole)
            print(f"{which:<14} {series:>7} {statistics.median(collect) * 1e3:>11.1f} "
                  f"{median * 1e3:>12.1f} {len(body) / 1024:>9.0f} "
                  f"{median / series * 1e6:>10.2f}   ({entries} map entries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
