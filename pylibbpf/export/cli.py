"""``pylibbpf export --config FILE [--listen HOST:PORT]``: the exporter as a command.

This module only builds the argument parser (no prometheus_client import), so the ``pylibbpf``
command lists ``export`` whether or not the ``export`` extra is installed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

__all__ = ["add_parser", "main", "run"]

DEFAULT_LISTEN = "127.0.0.1:9435"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``export`` subcommand to the ``pylibbpf`` command's subparsers."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "export", help="serve BPF maps as Prometheus metrics (needs root; docs/export.md)",
        description="Load the BPF objects of a config and serve their maps as Prometheus "
                    "metrics at http://HOST:PORT/metrics until SIGINT/SIGTERM.")
    parser.add_argument("--config", required=True, metavar="FILE",
                        help="the exporter config (YAML, or JSON for a .json file)")
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help=f"where to serve (default: the config's listen, else "
                             f"{DEFAULT_LISTEN}; port 0 picks a free one)")
    parser.add_argument("--check", action="store_true",
                        help="start (compile, load, attach), print one scrape, and exit")
    parser.set_defaults(run=run)
    return parser


def _split(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen wants HOST:PORT, not {listen!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def run(args: argparse.Namespace) -> int:
    """Run the exporter as ``args`` say; returns the exit status."""
    try:
        from prometheus_client import generate_latest

        from .config import ConfigError
        from .exporter import Exporter, StartError
    except ImportError as exc:
        print(f"pylibbpf export: {exc.name} is missing: pip install 'pylibbpf[export]' "
              "(or apt install python3-prometheus-client python3-yaml)", file=sys.stderr)
        return 2
    try:
        exporter = Exporter.from_file(args.config)
        host, port = _split(args.listen or exporter.config.listen or DEFAULT_LISTEN)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"pylibbpf export: {exc}", file=sys.stderr)
        return 2
    try:
        exporter.start()
    except StartError as exc:
        print(f"pylibbpf export: {exc}", file=sys.stderr)
        return 1
    with exporter:
        if args.check:
            sys.stdout.write(generate_latest(exporter.registry()).decode())
            return 0
        server = exporter.serve(host, port)
        print(f"pylibbpf export: serving {server.url}", file=sys.stderr, flush=True)
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        while not stop.wait(3600):
            pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pylibbpf.export``."""
    parser = argparse.ArgumentParser(prog="pylibbpf export")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["export", *(sys.argv[1:] if argv is None else argv)])
    return int(args.run(args))
