"""syscount: count system calls by name (or by process), with their time and their failures.

    python -m examples.syscount                    # the top 10 calls at Ctrl-C
    python -m examples.syscount -L -p 1234         # with the time spent in them, one process
    python -m examples.syscount -x --interval 1    # failed calls only, every second
    python -m examples.syscount -e ENOENT -P       # calls failing with ENOENT, per process

The counts are read and emptied in one batch (``BPF_MAP_LOOKUP_AND_DELETE_BATCH``), as
libbpf-tools' syscount does; a kernel without batch operations for the map gets a key walk.

C (libbpf-tools)                               Python (this file)
  obj->rodata->filter_failed = env.failures      obj.rodata["only_failures"] = args.failures
  syscount_bpf__load(obj); syscount_bpf__attach  obj.load(); obj.attach()
  bpf_map_lookup_and_delete_batch(fd, ...)       TypedMap(obj.maps["counts"])
                                                     .lookup_and_delete_batch()
  syscall_name(key, name, sizeof(name))          syscall_names().get(key)
  qsort(vals, n, sizeof(*vals), compar)          sorted(rows, key=..., reverse=True)
"""

from __future__ import annotations

import argparse
import errno
import functools
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from examples._build import build_bpf
from examples._loop import Stopper
from pylibbpf import NotSupportedError, Object
from pylibbpf.typed import TypedMap

HERE = Path(__file__).resolve().parent


def build_object() -> Path:
    """Compile syscount.bpf.c with clang (cached by content hash)."""
    return build_bpf(HERE / "syscount.bpf.c")


@functools.cache
def syscall_names() -> dict[int, str]:
    """System call numbers -> names of this machine, from the C library's ``<asm/unistd.h>``
    (linux-libc-dev) through the C preprocessor (libbpf-tools' syscall_helpers reads
    ``ausyscall --dump`` or a table of its own).  Empty when no compiler or header is there:
    the numbers are shown instead."""
    cc = shutil.which("clang") or shutil.which("cc")
    if cc is None:
        return {}
    done = subprocess.run([cc, "-E", "-dM", "-include", "asm/unistd.h", "-x", "c", "/dev/null"],
                          capture_output=True, text=True, check=False)
    macros = dict(re.findall(r"^#define (__NR\w+) (.+)$", done.stdout, re.M))

    def value(text: str, depth: int = 0) -> int | None:
        text = text.strip().strip("()").strip()
        if text.isdigit():
            return int(text)
        m = re.fullmatch(r"(\w+)\s*\+\s*(\d+)", text)          # __NR_SYSCALL_BASE + 4
        if m and depth < 4:
            base = value(macros.get(m.group(1), ""), depth + 1)
            return None if base is None else base + int(m.group(2))
        if text in macros and depth < 4:
            return value(macros[text], depth + 1)
        return None

    names: dict[int, str] = {}
    for macro, text in macros.items():
        if macro.startswith("__NR_") and macro != "__NR_syscalls":
            number = value(text)
            if number is not None:
                names.setdefault(number, macro[len("__NR_"):])
    return names


def syscall_name(number: int) -> str:
    return syscall_names().get(number, f"[unknown: {number}]")


def read_counts(counts: TypedMap[Any]) -> list[tuple[int, dict[str, Any]]]:
    """Every entry, the map emptied: one batch where the kernel has batches for it."""
    try:
        return counts.lookup_and_delete_batch()
    except NotSupportedError:
        rows = counts.items()
        for key, _ in rows:
            counts.delete(key)
        return rows


def print_counts(rows: list[tuple[int, dict[str, Any]]], args: argparse.Namespace) -> None:
    rows = sorted(rows, key=lambda kv: (kv[1]["total_ns"] if args.latency else kv[1]["count"],
                                        -kv[0]), reverse=True)
    if args.top:
        rows = rows[:args.top]
    who = f"{'PID':<7} {'COMM':<16}" if args.process else f"{'SYSCALL':<24}"
    print(f"{who} {'COUNT':>10}" + (f" {'TIME (us)':>14}" if args.latency else ""))
    for key, data in rows:
        what = f"{key:<7} {data['comm']:<16}" if args.process else f"{syscall_name(key):<24}"
        line = f"{what} {data['count']:>10}"
        if args.latency:
            line += f" {data['total_ns'] / 1000:>14.3f}"
        print(line)
    sys.stdout.flush()


def errno_value(text: str) -> int:
    """``ENOENT`` or ``2``."""
    if text.isdigit():
        return int(text)
    try:
        return int(getattr(errno, text.upper()))
    except AttributeError:
        raise argparse.ArgumentTypeError(f"no errno {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="syscount", description=__doc__.splitlines()[0])
    parser.add_argument("-p", "--pid", type=int, default=0, help="only this process")
    parser.add_argument("-P", "--process", action="store_true", help="count per process")
    parser.add_argument("-L", "--latency", action="store_true", help="time spent in the calls")
    parser.add_argument("-x", "--failures", action="store_true", help="only failed calls")
    parser.add_argument("-e", "--errno", type=errno_value, default=0,
                        help="only calls failing with this error (ENOENT or 2)")
    parser.add_argument("-T", "--top", type=int, default=10, help="rows to print (0: all)")
    parser.add_argument("--interval", type=float, default=0.0,
                        help="print every this many seconds (0: once, at the end)")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after this many seconds (0: run until Ctrl-C)")
    args = parser.parse_args(argv)
    stop = Stopper(args.duration)

    with Object.open_file(build_object()) as obj:
        obj.rodata["targ_tgid"] = args.pid
        obj.rodata["count_by_process"] = args.process
        obj.rodata["measure_latency"] = args.latency
        obj.rodata["only_failures"] = args.failures
        obj.rodata["only_errno"] = args.errno
        obj.load()
        obj.attach()
        counts = TypedMap(obj.maps["counts"])
        syscall_names()                      # the compiler runs before tracing starts
        when = f"every {args.interval:g} s" if args.interval else "at the end"
        print(f"Tracing syscalls, printing {when}... Ctrl-C to end.", flush=True)
        while not stop:
            stop.sleep(args.interval or 3600.0)
            if args.interval:
                print(f"[{time.strftime('%H:%M:%S')}]")
                print_counts(read_counts(counts), args)
        if not args.interval:
            print_counts(read_counts(counts), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
