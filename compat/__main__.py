"""``python -m compat run [options] -- ./program args...``: run a legacy C program on Linux.

Exit status: the program's; when a signal killed it, the supervisor dies of the same signal
(no core dump), so the shell sees what it would have seen without the supervisor.  126 when
the program cannot be started under the filter, 127 when it is not found, 2 for bad options.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import sys
from collections.abc import Sequence

from .attr import Dialect


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m compat",
        description="Run code written for the legacy rCore/zCore eBPF interface on Linux.")
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser(
        "run", help="run an unmodified legacy C program, translating its bpf() calls",
        description="Start PROGRAM under a seccomp filter that sends its bpf() calls to this "
                    "process, which executes the legacy commands through compat.")
    run.add_argument("--dialect", choices=[d.value for d in Dialect], default="rcore",
                     help="legacy kernel conventions: attach layout, separator, errors "
                          "(default: rcore)")
    run.add_argument("--map-symbols", metavar="FILE", action="append", default=[],
                     help="JSON file of extra legacy symbol -> Linux syscall/function "
                          "mappings (repeatable)")
    run.add_argument("--trace", action="store_true",
                     help="print each translated call (legacy call -> Linux calls) to stderr")
    run.add_argument("--strict-legacy-errors", action="store_true",
                     help="legacy errnos where Linux differs (ARRAY index past the end: "
                          "ENOENT, HASH full: ENOMEM)")
    run.add_argument("--reply-delay", type=float, default=0.0, help=argparse.SUPPRESS)
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- PROGRAM [ARGS...]")
    return parser


def _die_like(sig: int) -> None:
    """End this process as the program ended: killed by ``sig``."""
    with contextlib.suppress(ValueError, OSError):
        _soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    with contextlib.suppress(ValueError, OSError):
        signal.signal(sig, signal.SIG_DFL)
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(OSError):
        os.kill(os.getpid(), sig)
    os._exit(128 + sig)  # a signal that does not kill (or could not be sent)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (or dies of the program's signal)."""
    args = _parser().parse_args(argv)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        _parser().error("run: name the program to run after '--'")
    from .supervisor import Supervisor, load_symbol_map

    try:
        for path in args.map_symbols:
            load_symbol_map(path)
    except (OSError, ValueError) as exc:
        print(f"compat run: --map-symbols: {exc}", file=sys.stderr)
        return 2
    supervisor = Supervisor(command, dialect=args.dialect, trace=args.trace,
                            strict_legacy_errors=args.strict_legacy_errors,
                            reply_delay=args.reply_delay)
    try:
        status = supervisor.run(forward_signals=True)
    except OSError as exc:
        print(f"compat run: {exc.strerror or exc}", file=sys.stderr)
        return 126
    if status < 0:
        _die_like(-status)
    return status


if __name__ == "__main__":
    sys.exit(main())
