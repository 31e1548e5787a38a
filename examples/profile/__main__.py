"""profile: sample the stacks of whatever runs, on every CPU, at a fixed frequency.

    python -m examples.profile                     # all CPUs, 49 Hz, until Ctrl-C
    python -m examples.profile -p 1234 -F 199 -K   # one process, kernel stacks only
    python -m examples.profile -f > out.folded     # folded, for flamegraph.pl

A perf event per online CPU (software ``cpu-clock``, or ``--event`` another ``perf list`` name
where a PMU counts it) runs the ``perf_event`` program on each sample; it counts (process,
user stack, kernel stack) and keeps the stacks in a ``STACK_TRACE`` map.  Kernel frames are
named from ``/proc/kallsyms`` (:class:`pylibbpf.Ksyms`); user frames are shown as addresses.

C (libbpf-tools)                               Python (this file)
  attr.type = PERF_TYPE_SOFTWARE;                attr = PerfEventAttr.named("cpu-clock",
  attr.freq = 1; attr.sample_freq = freq;                               frequency=args.freq)
  for (cpu = 0; cpu < nr_cpus; cpu++) {          links = perf_event.attach_per_cpu(
    fd = syscall(__NR_perf_event_open, &attr,        obj.programs["do_sample"].fd, attr)
                 pid, cpu, -1, 0);
    links[cpu] = bpf_program__attach_perf_event(
                     prog, fd);
  }
  ksyms = ksyms__load()                          ksyms = Ksyms.load()
  bpf_map_get_next_key + lookup (counts)         TypedMap(obj.maps["counts"]).items()
  bpf_map_lookup_elem(stackmap, &id, ips)        stacks.get(key["kern_stack_id"])
  ksym = ksyms__map_addr(ksyms, ip)              ksyms.describe(ip)
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from examples._build import build_bpf
from examples._loop import Stopper
from pylibbpf import Ksyms, NotSupportedError, Object, perf_event
from pylibbpf.perf_event import PerfEventAttr
from pylibbpf.typed import TypedMap

HERE = Path(__file__).resolve().parent


def build_object() -> Path:
    """Compile profile.bpf.c with clang (cached by content hash)."""
    return build_bpf(HERE / "profile.bpf.c")


def frames(stacks: TypedMap[Any], stack_id: int) -> list[int] | None:
    """The instruction pointers of a stack, innermost first; None when the sample has none
    (``-EFAULT``: no user stack, a kernel thread) or the map had no room (``-EEXIST``,
    ``-ENOMEM``)."""
    if stack_id < 0:
        return None
    ips = stacks.get(stack_id)
    return None if ips is None else [ip for ip in ips if ip]


def describe_stack_id(stack_id: int) -> str:
    if stack_id == -errno.EFAULT:
        return "[no stack]"
    return f"[missed stack: {errno.errorcode.get(-stack_id, stack_id)}]"


def report(counts: TypedMap[Any], stacks: TypedMap[Any], ksyms: Ksyms,
           args: argparse.Namespace) -> None:
    """Every sampled stack with its count: multi-line (most samples last), or folded."""
    rows = sorted(counts.items(), key=lambda kv: kv[1])
    folded: Counter[str] = Counter()
    for key, count in rows:
        kernel: list[str] = []
        user: list[str] = []
        if not args.user_only:
            ips = frames(stacks, key["kern_stack_id"])
            kernel = ([ksyms.describe(ip, offset=not args.folded) for ip in ips]
                      if ips is not None else [describe_stack_id(key["kern_stack_id"])])
        if not args.kernel_only:
            ips = frames(stacks, key["user_stack_id"])
            user = ([f"{ip:#x}" for ip in ips] if ips is not None
                    else [describe_stack_id(key["user_stack_id"])])
        if args.folded:
            # outermost first: user frames, then the kernel's (the kernel runs on top)
            # (stacks that differ only in offsets within functions fold into one line)
            path = [key["comm"], *reversed(user), *reversed(kernel)]
            folded[";".join(f.replace(";", ":") for f in path)] += count
        else:
            for frame in kernel:
                print(f"    {frame}")
            if kernel and user:
                print("    --")
            for frame in user:
                print(f"    {frame}")
            print(f"    -                {key['comm']} ({key['pid']})\n        {count}\n")
    for path, count in sorted(folded.items(), key=lambda kv: (kv[1], kv[0])):
        print(f"{path} {count}")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="profile", description=__doc__.splitlines()[0])
    parser.add_argument("-p", "--pid", type=int, default=0, help="only this process")
    parser.add_argument("-F", "--frequency", type=int, default=49, help="samples a second")
    parser.add_argument("--event", default="cpu-clock",
                        help="the perf event to sample on (perf list's name)")
    parser.add_argument("-K", "--kernel-only", action="store_true", help="kernel stacks only")
    parser.add_argument("-U", "--user-only", action="store_true", help="user stacks only")
    parser.add_argument("-I", "--include-idle", action="store_true", help="the idle task too")
    parser.add_argument("-f", "--folded", action="store_true",
                        help="one line per stack, frames separated by ';'")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after this many seconds (0: run until Ctrl-C)")
    args = parser.parse_args(argv)
    if args.kernel_only and args.user_only:
        parser.error("-K and -U together leave no stack")
    stop = Stopper(args.duration)
    ksyms = Ksyms.load() if not args.user_only else Ksyms([])

    with Object.open_file(build_object()) as obj:
        obj.rodata["targ_tgid"] = args.pid
        obj.rodata["kernel_stacks"] = not args.user_only
        obj.rodata["user_stacks"] = not args.kernel_only
        obj.rodata["include_idle"] = args.include_idle
        obj.load()
        attr = PerfEventAttr.named(args.event, frequency=args.frequency)
        try:
            links = perf_event.attach_per_cpu(obj.programs["do_sample"].fd, attr)
        except NotSupportedError as exc:       # a hardware event and no PMU (most VMs)
            print(f"profile: {exc}", file=sys.stderr)
            return 1
        with links:
            print(f"Sampling {args.event} at {args.frequency} Hz on {len(links)} CPUs... "
                  "Ctrl-C to end.", flush=True)
            while not stop:
                stop.sleep(3600.0)
        report(TypedMap(obj.maps["counts"]), TypedMap(obj.maps["stacks"]), ksyms, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
