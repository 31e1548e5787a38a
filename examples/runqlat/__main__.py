"""runqlat: how long tasks wait on a run queue before they run, as a log2 histogram.

    python -m examples.runqlat                     # everything, one histogram at Ctrl-C
    python -m examples.runqlat -P --interval 1     # one histogram per process, every second
    python -m examples.runqlat -p 1234 --variant raw_tp

The BPF side has each handler twice, as tp_btf and as raw_tp; the kernel is asked first
(``probe.tp_btf_can_attach``) and only one set is loaded, as libbpf-tools' runqlat does with
``probe_tp_btf()`` -- no load that fails and an object opened again.

C (libbpf-tools)                               Python (this file)
  if (probe_tp_btf("sched_wakeup")) {            if probe.tp_btf_can_attach("sched_wakeup"):
    bpf_program__set_autoload(                      for name in RAW_TP: obj.programs[name]
        obj->progs.handle_sched_wakeup, false);         .set_autoload(False)
    ...                                          ...
  obj->rodata->targ_per_process = env.per_process obj.rodata["targ_per_process"] = args.per_process
  runqlat_bpf__load(obj); runqlat_bpf__attach()  obj.load(); obj.attach()
  while (!bpf_map_get_next_key(fd, &lookup_key,  for tgid, hist in TypedMap(obj.maps["hists"])
        &next_key)) {                                                           .items():
    bpf_map_lookup_elem(fd, &next_key, &hist);
    print_log2_hist(hist.slots, MAX_SLOTS, units)   print_log2_hist(hist["slots"], units)
  ... bpf_map_delete_elem(fd, &next_key)         hists.clear()
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from examples._build import build_bpf
from examples._loop import Stopper
from pylibbpf import Object, probe
from pylibbpf.hist import format_log2_hist
from pylibbpf.typed import TypedMap

HERE = Path(__file__).resolve().parent
PROGRAMS = {"tp_btf": ("wakeup_btf", "wakeup_new_btf", "switch_btf"),
            "raw_tp": ("wakeup_raw", "wakeup_new_raw", "switch_raw")}


def build_object() -> Path:
    """Compile runqlat.bpf.c with clang (cached by content hash)."""
    return build_bpf(HERE / "runqlat.bpf.c")


def choose(obj: Object, wanted: str) -> str:
    """Keep one set of programs: ``wanted``, or (``auto``) tp_btf where the kernel attaches
    it, else raw_tp."""
    if wanted == "auto":
        answer = probe.tp_btf_can_attach("sched_switch")
        wanted = "tp_btf" if answer else "raw_tp"
        print(f"probe: {answer}")
    for variant, programs in PROGRAMS.items():
        for name in programs:
            obj.programs[name].set_autoload(variant == wanted)
    return wanted


def print_hists(hists: TypedMap[Any], unit: str, per_process: bool) -> None:
    """Every histogram in the map, then empty the map (libbpf-tools print and delete)."""
    for key, hist in sorted(hists.items()):
        if per_process:
            print(f"\npid = {key} {hist['comm']}")
        print(format_log2_hist(hist["slots"], unit))
    hists.clear()
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="runqlat", description=__doc__.splitlines()[0])
    parser.add_argument("-p", "--pid", type=int, default=0, help="only this process")
    parser.add_argument("-P", "--per-process", action="store_true",
                        help="one histogram per process")
    parser.add_argument("-m", "--milliseconds", action="store_true",
                        help="milliseconds instead of microseconds")
    parser.add_argument("--variant", choices=["auto", *PROGRAMS], default="auto",
                        help="tp_btf or raw_tp (auto: ask the kernel)")
    parser.add_argument("--interval", type=float, default=0.0,
                        help="print every this many seconds (0: once, at the end)")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after this many seconds (0: run until Ctrl-C)")
    args = parser.parse_args(argv)
    stop = Stopper(args.duration)
    unit = "msecs" if args.milliseconds else "usecs"

    with Object.open_file(build_object()) as obj:
        variant = choose(obj, args.variant)
        obj.rodata["targ_tgid"] = args.pid
        obj.rodata["targ_per_process"] = args.per_process
        obj.rodata["targ_ms"] = args.milliseconds
        obj.load()
        obj.attach()
        hists = TypedMap(obj.maps["hists"])
        print(f"Tracing run queue latency ({variant})... Ctrl-C to end.", flush=True)
        while not stop:
            stop.sleep(args.interval or 3600.0)
            if args.interval:
                print(f"\n{time.strftime('%H:%M:%S')}")
                print_hists(hists, unit, args.per_process)
        if not args.interval:
            print()
            print_hists(hists, unit, args.per_process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
