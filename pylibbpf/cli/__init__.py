"""The ``pylibbpf`` command: ``inspect`` (an object file, no root) and bpftool's everyday views
of what the kernel holds (``prog``, ``map``, ``link``, ``btf``, ``feature``), each a module
here with an ``add_parser`` and the functions it runs (``docs/cli.md``); ``export``, the
Prometheus exporter, is :mod:`pylibbpf.export.cli` (``docs/export.md``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._output import CommandError, common_options
from .inspect import inspect_json, inspect_text

__all__ = ["inspect_json", "inspect_text", "main"]


def _parser() -> argparse.ArgumentParser:
    from . import btf, feature, inspect, link, map, prog

    common = common_options()
    parser = argparse.ArgumentParser(prog="pylibbpf", parents=[common],
                                     description="pylibbpf tools: describe an object file; "
                                     "bpftool's views of programs, maps, links, BTF and "
                                     "kernel features")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (inspect, prog, map, link, btf, feature):
        module.add_parser(sub, common)
    from ..export.cli import add_parser as add_export  # the exporter (docs/export.md)

    add_export(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pylibbpf`` command."""
    from ..elf.errors import ElfError
    from ..errors import BpfError

    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except CommandError as exc:
        print(f"pylibbpf: {exc}", file=sys.stderr)
        return exc.status
    except (BpfError, ElfError) as exc:
        # BpfError's message names a missing capability when the kernel said EPERM
        print(f"pylibbpf: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `pylibbpf map dump ... | head`
        sys.stderr.close()
        return 0
