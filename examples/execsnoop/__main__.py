"""execsnoop: trace every exec() with its arguments, through a ring buffer or a perf buffer.

    python -m examples.execsnoop                   # every exec until Ctrl-C
    python -m examples.execsnoop -x --ppid 1234    # failed ones too, children of 1234 only
    python -m examples.execsnoop --buffer perf     # a perf buffer even where rings exist

The records are variable-length (the fixed fields, then only the argument bytes in use), and
the BPF side writes them to one map, ``events``: a ring buffer where the kernel has them
(``--buffer auto`` asks it), else that map is made a perf event array before load, as
libbpf-tools' ``probe_ringbuf()`` / ``bpf_map__set_type()`` fallback does.

C (libbpf-tools)                               Python (this file)
  obj = execsnoop_bpf__open_opts(&opts)          obj = Object.open_file(build_object())
  obj->rodata->ignore_failed = !env.fails        obj.rodata["ignore_failed"] = not args.fails
  if (!probe_ringbuf()) {                        if not probe.ringbuf_supported():
    bpf_map__set_type(m, PERF_EVENT_ARRAY);        events.set_type(MapType.PERF_EVENT_ARRAY)
    bpf_map__set_key_size(m, 4); ...               events.set_key_size(4); ...
  execsnoop_bpf__load(obj)                       obj.load()
  execsnoop_bpf__attach(obj)                     obj.attach()
  ring_buffer__new(fd, handle_event, ...)        RingBuffer(events, print_event, decode=codec)
  perf_buffer__new(fd, 64, handle_event, ...)    PerfBuffer(events, on_sample, on_lost, ...)
  while (!exiting) ring_buffer__poll(rb, 100)    while not stop: buf.poll(100)
  const struct event *e = data;                  decoder(obj, "struct event") gives a dict
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from examples._build import build_bpf
from examples._loop import Stopper
from pylibbpf import MapType, Object, PerfBuffer, RingBuffer, num_possible_cpus, probe
from pylibbpf.typed import decoder

HERE = Path(__file__).resolve().parent
HEADER = f"{'PCOMM':<16} {'PID':>7} {'PPID':>7} {'RET':>3} ARGS"


def build_object() -> Path:
    """Compile execsnoop.bpf.c with clang (cached by content hash)."""
    return build_bpf(HERE / "execsnoop.bpf.c")


def choose_buffer(obj: Object, wanted: str) -> str:
    """Make ``events`` a ring buffer or a perf event array (before load); ``auto`` asks the
    kernel.  Returns ``"ring"`` or ``"perf"``."""
    if wanted == "auto":
        answer = probe.ringbuf_supported()
        wanted = "ring" if answer else "perf"
        if not answer:
            print(f"probe: {answer}; using a perf buffer", file=sys.stderr)
    if wanted == "perf":
        events = obj.maps["events"]
        events.set_type(MapType.PERF_EVENT_ARRAY)
        events.set_key_size(4)
        events.set_value_size(4)
        events.set_max_entries(num_possible_cpus())
    obj.rodata["use_ringbuf"] = wanted == "ring"
    return wanted


def argv_of(event: dict[str, Any]) -> list[str]:
    """The arguments a record carries: ``args`` holds ``args_count`` NUL-terminated strings
    (a perf sample may add padding after them)."""
    raw: bytes = event["args"]
    parts = raw.split(b"\0")[:event["args_count"]]
    return [p.decode(errors="replace") for p in parts]


def format_event(event: dict[str, Any]) -> str:
    args = " ".join(argv_of(event)) + (" ..." if event["truncated"] else "")
    return (f"{event['comm']:<16} {event['pid']:>7} {event['ppid']:>7} "
            f"{event['retval']:>3} {args}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="execsnoop", description=__doc__.splitlines()[0])
    parser.add_argument("-x", "--fails", action="store_true", help="include failed exec()s")
    parser.add_argument("-u", "--uid", type=int, help="only this user id")
    parser.add_argument("--ppid", type=int, help="only children of this process")
    parser.add_argument("--buffer", choices=["auto", "ring", "perf"], default="auto",
                        help="ring buffer or perf buffer (auto: a ring where the kernel has it)")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after this many seconds (0: run until Ctrl-C)")
    args = parser.parse_args(argv)
    stop = Stopper(args.duration)

    with Object.open_file(build_object()) as obj:
        kind = choose_buffer(obj, args.buffer)
        obj.rodata["ignore_failed"] = not args.fails
        if args.uid is not None:
            obj.rodata["targ_uid"] = args.uid
        if args.ppid is not None:
            obj.rodata["targ_ppid"] = args.ppid
        obj.load()
        obj.attach()
        codec = decoder(obj, "struct event")

        def show(event: dict[str, Any]) -> None:
            print(format_event(event), flush=True)

        buffer: RingBuffer | PerfBuffer
        if kind == "ring":
            buffer = RingBuffer(obj.maps["events"], show, decode=codec)
        else:
            def on_sample(cpu: int, event: dict[str, Any]) -> None:
                show(event)

            def on_lost(cpu: int, count: int) -> None:
                print(f"lost {count} events on CPU {cpu}", file=sys.stderr)

            buffer = PerfBuffer(obj.maps["events"], on_sample, on_lost, decode=codec)
        with buffer:
            print(f"Tracing exec()s through a {kind} buffer... Ctrl-C to end.")
            print(HEADER, flush=True)
            while not stop:
                buffer.poll(100)
            buffer.consume()                    # what arrived meanwhile
    return 0


if __name__ == "__main__":
    sys.exit(main())
