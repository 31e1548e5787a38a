"""opensnoop: trace open() and openat() with their flags, file descriptors and errors.

    python -m examples.opensnoop                  # every open until Ctrl-C
    python -m examples.opensnoop -p 1234 -x       # failed opens of process 1234

The record type is in ``opensnoop.h``, shared by both sides as in libbpf-tools; the Python
side reads it from there (``decoder(obj, "struct event", header=...)``), not from a layout of
its own.  Samples come through a perf buffer, the way libbpf-tools' opensnoop gets them.

C (libbpf-tools)                               Python (this file)
  obj = opensnoop_bpf__open_opts(&opts)          obj = Object.open_file(build_object())
  obj->rodata->targ_tgid = env.pid               obj.rodata["targ_tgid"] = args.pid
  if (!tracepoint_exists("syscalls",             if not probe.tracepoint_exists("syscalls",
        "sys_enter_open"))                                                "sys_enter_open"):
    bpf_program__set_autoload(                       obj.programs["enter_open"]
        obj->progs.enter_open, false);                   .set_autoload(False)
  opensnoop_bpf__load(obj)                       obj.load()
  opensnoop_bpf__attach(obj)                     obj.attach()
  pb = perf_buffer__new(fd, PERF_BUFFER_PAGES,   PerfBuffer(obj.maps["events"], print_event,
        handle_event, handle_lost_events, ...)        handle_lost, decode=codec)
  while (!exiting) perf_buffer__poll(pb, 100)    while not stop: pb.poll(100)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from examples._build import build_bpf
from examples._loop import Stopper
from pylibbpf import Object, PerfBuffer, probe
from pylibbpf.typed import decoder

HERE = Path(__file__).resolve().parent
HEADER = f"{'PID':>7} {'COMM':<16} {'FD':>4} {'ERR':>3} {'FLAGS':<32} PATH"

# open(2)'s flags by their names in Python's os module (the C library's values); composite
# flags first, so that O_SYNC is not shown as O_DSYNC plus a stray bit
_FLAG_NAMES = ("O_TMPFILE", "O_SYNC", "O_CREAT", "O_EXCL", "O_NOCTTY", "O_TRUNC", "O_APPEND",
               "O_NONBLOCK", "O_DSYNC", "O_DIRECT", "O_LARGEFILE", "O_DIRECTORY", "O_NOFOLLOW",
               "O_NOATIME", "O_CLOEXEC", "O_PATH", "O_ASYNC")
_ACCESS = {os.O_RDONLY: "O_RDONLY", os.O_WRONLY: "O_WRONLY", os.O_RDWR: "O_RDWR"}


def build_object() -> Path:
    """Compile opensnoop.bpf.c with clang (cached by content hash)."""
    return build_bpf(HERE / "opensnoop.bpf.c")


def flag_names(flags: int) -> str:
    """``O_WRONLY|O_CREAT|O_TRUNC``; bits without a name in hex."""
    names = [_ACCESS.get(flags & os.O_ACCMODE, hex(flags & os.O_ACCMODE))]
    rest = flags & ~os.O_ACCMODE
    for name in _FLAG_NAMES:
        value = getattr(os, name, 0)
        if value and rest & value == value:
            names.append(name)
            rest &= ~value
    if rest:
        names.append(hex(rest))
    return "|".join(names)


def format_event(event: dict[str, Any]) -> str:
    ret = event["ret"]
    fd, err = (ret, 0) if ret >= 0 else (-1, -ret)
    return (f"{event['pid']:>7} {event['comm']:<16} {fd:>4} {err:>3} "
            f"{flag_names(event['flags']):<32} {event['fname']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="opensnoop", description=__doc__.splitlines()[0])
    parser.add_argument("-p", "--pid", type=int, default=0, help="only this process")
    parser.add_argument("-x", "--failed", action="store_true", help="only failed opens")
    parser.add_argument("-n", "--name", help="only commands whose name contains this")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after this many seconds (0: run until Ctrl-C)")
    args = parser.parse_args(argv)
    stop = Stopper(args.duration)

    with Object.open_file(build_object()) as obj:
        obj.rodata["targ_tgid"] = args.pid
        obj.rodata["targ_failed"] = args.failed
        # open() is a system call of its own on x86, not on arm64 (only openat there)
        for program, syscall in (("enter_open", "sys_enter_open"),
                                 ("exit_open", "sys_exit_open")):
            if not probe.tracepoint_exists("syscalls", syscall):
                obj.programs[program].set_autoload(False)
        obj.load()
        obj.attach()
        codec = decoder(obj, "struct event", header=HERE / "opensnoop.h")

        def print_event(cpu: int, event: dict[str, Any]) -> None:
            if args.name and args.name not in event["comm"]:
                return
            print(format_event(event), flush=True)

        def handle_lost(cpu: int, count: int) -> None:
            print(f"lost {count} events on CPU {cpu}", file=sys.stderr)

        with PerfBuffer(obj.maps["events"], print_event, handle_lost, decode=codec) as pb:
            print("Tracing open()s... Ctrl-C to end.")
            print(HEADER, flush=True)
            while not stop:
                pb.poll(100)
            pb.consume()
    return 0


if __name__ == "__main__":
    sys.exit(main())
