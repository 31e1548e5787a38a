"""lathist, the Python user side: mirrors Linux's samples/bpf/lathist_user.c call by call.

    python -m examples.lathist                  # syscall latency, raw_syscalls tracepoints
    python -m examples.lathist --kprobe FUNC    # kprobe/kretprobe on FUNC (kernels with kprobes)
    python -m examples.lathist --duration 10 --interval 2

C (lathist_user.c)                          Python (this file)
  obj = bpf_object__open_file(path, NULL)     obj = Object.open_file(path)
  bpf_object__load(obj)                       obj.load()
  links[i] = bpf_program__attach(prog)        links.append(prog.attach())
  map_fd = bpf_object__find_map_fd_by_name(   map_fd = obj.find_map_fd_by_name("my_lat")
        obj, "my_lat")
  bpf_map_lookup_elem(map_fd, &key, &value)   lat.lookup(key)  (or, the map being
                                                BPF_F_MMAPABLE, lat.memory(): every
                                                bucket read from memory, no syscall)
  bpf_link__destroy(links[i])                 link.destroy()
  bpf_object__close(obj)                      obj.close()
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from examples._build import build_bpf
from pylibbpf import Link, Map, MapFlags, Object, num_possible_cpus
from pylibbpf.hist import format_log2_hist

HERE = Path(__file__).resolve().parent
MAX_ENTRIES = 20
MAX_CPU = 64


def build_object() -> Path:
    """Compile lathist.bpf.c with clang (cached by content hash)."""
    return build_bpf(HERE / "lathist.bpf.c")


def read_histograms(lat: Map, ncpus: int) -> dict[int, list[int]]:
    """Per-CPU bucket counts, as lathist_user.c's get_data() reads them: from the map's
    memory when it is mmapable (one copy of the whole array, no syscall), else one lookup per
    bucket."""
    cpus = min(ncpus, MAX_CPU)
    if lat.flags & MapFlags.MMAPABLE:
        with lat.memory(readonly=True) as memory, memory.cast("q") as buckets:
            counts = buckets[:cpus * MAX_ENTRIES].tolist()  # longs, in 8-byte slots
        return {cpu: counts[cpu * MAX_ENTRIES:(cpu + 1) * MAX_ENTRIES] for cpu in range(cpus)}
    return {cpu: [int.from_bytes(lat.lookup(cpu * MAX_ENTRIES + i), sys.byteorder, signed=True)
                  for i in range(MAX_ENTRIES)] for cpu in range(cpus)}


def print_histograms(hists: dict[int, list[int]]) -> None:
    """The sample's print_hist(): one log2 histogram per CPU that saw events."""
    for cpu, counts in hists.items():
        if not any(counts):
            continue
        print(f"CPU {cpu}")
        print(format_log2_hist(counts, "nsecs"))
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lathist", description=__doc__.splitlines()[0])
    parser.add_argument("--kprobe", metavar="FUNC",
                        help="measure FUNC's latency with kprobe/kretprobe")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between prints")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after this many seconds (0: run until Ctrl-C)")
    args = parser.parse_args(argv)

    stop = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    obj = Object.open_file(build_object())
    links: list[Link] = []
    try:
        if args.kprobe:
            obj.programs["bpf_prog1"].set_autoload(False)
            obj.programs["bpf_prog2"].set_autoload(False)
        else:
            obj.programs["bpf_kprobe_start"].set_autoload(False)
            obj.programs["bpf_kprobe_end"].set_autoload(False)
        obj.load()
        if args.kprobe:
            links.append(obj.programs["bpf_kprobe_start"].attach_kprobe(args.kprobe))
            links.append(obj.programs["bpf_kprobe_end"].attach_kprobe(args.kprobe,
                                                                      retprobe=True))
            what = f"{args.kprobe}() latency (kprobe/kretprobe)"
        else:
            links.append(obj.programs["bpf_prog1"].attach())
            links.append(obj.programs["bpf_prog2"].attach())
            what = "syscall latency (raw_syscalls:sys_enter -> sys_exit)"
        map_fd = obj.find_map_fd_by_name("my_lat")
        with Map.from_fd(map_fd) as lat:
            print(f"lathist: {what}, per CPU; Ctrl-C to stop", flush=True)
            started = time.monotonic()
            ncpus = num_possible_cpus()
            while not stop:
                deadline = time.monotonic() + args.interval
                while not stop and time.monotonic() < deadline:
                    time.sleep(0.1)
                print(f"--- {time.monotonic() - started:.1f} s ---")
                print_histograms(read_histograms(lat, ncpus))
                if args.duration and time.monotonic() - started >= args.duration:
                    break
    finally:
        for link in links:
            link.destroy()
        obj.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
