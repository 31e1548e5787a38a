"""What every view shares: the ``--json``/``--pretty`` options, bpftool's object selectors
(``id 12``, ``name counts``, ``tag ...``, ``pinned PATH``), JSON printing, the kernel's names
of program/map/link/attach types (libbpf's, as bpftool prints them) and errors that end the
command with a sentence instead of a traceback."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from .. import _ffi
from ..info import fd_by_id, fd_by_pin

__all__ = ["CommandError", "Selector", "boot_time_to_epoch", "common_options", "emit",
           "fdinfo", "format_time", "hex_json", "hex_text", "kind_name", "open_fd",
           "open_pinned", "parse_selector", "want_json"]


class CommandError(Exception):
    """A command that cannot do what was asked: printed as ``pylibbpf: <message>``, exit 1
    (2 for bad usage, as argparse)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def common_options() -> argparse.ArgumentParser:
    """``-j/--json`` and ``-p/--pretty`` (which implies ``--json``), accepted before or after
    the command words as bpftool accepts them."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-j", "--json", action="store_true", default=argparse.SUPPRESS,
                        help="print JSON (bpftool's field names)")
    parent.add_argument("-p", "--pretty", action="store_true", default=argparse.SUPPRESS,
                        help="print indented JSON")
    return parent


def want_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False) or getattr(args, "pretty", False))


def emit(args: argparse.Namespace, data: Any, text: str | None = None) -> None:
    """Print ``data`` as JSON (compact, or indented with ``--pretty``), or ``text``."""
    if want_json(args) or text is None:
        if getattr(args, "pretty", False):
            sys.stdout.write(json.dumps(data, indent=4) + "\n")
        else:
            sys.stdout.write(json.dumps(data, separators=(",", ":")) + "\n")
    else:
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")


# --------------------------------------------------------------------------- selectors

Selector = tuple[str, str]  # ("id", "12"), ("name", "counts"), ("tag", ...), ("pinned", path)


def parse_selector(words: Sequence[str], allowed: Sequence[str], what: str,
                   required: bool = False) -> Selector | None:
    """``id N`` / ``name NAME`` / ``tag TAG`` / ``pinned PATH`` (those in ``allowed``)."""
    if not words:
        if required:
            raise CommandError(f"{what}: say which one ({' | '.join(f'{a} ...' for a in allowed)})",
                               2)
        return None
    if len(words) != 2 or words[0] not in allowed:
        raise CommandError(f"{what}: expected {' | '.join(f'{a} VALUE' for a in allowed)}, got "
                           f"{' '.join(words)!r}", 2)
    key, value = words
    if key == "id":
        try:
            number = int(value, 0)
        except ValueError:
            raise CommandError(f"{what}: id {value!r} is not a number", 2) from None
        if not 0 < number < 1 << 32:
            raise CommandError(f"{what}: id {value} is out of range", 2)
        return key, str(number)
    return key, value


@contextmanager
def open_fd(kind: Literal["prog", "map", "link", "btf"], object_id: int) -> Iterator[int]:
    """An fd of the object with that id, closed on leaving."""
    fd = fd_by_id(kind, object_id)
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def open_pinned(path: str) -> Iterator[int]:
    fd = fd_by_pin(path)
    try:
        yield fd
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------ values

def kind_name(table: Literal["prog", "map", "link", "attach"], value: int) -> str | int:
    """libbpf's name of a program/map/link/attach type (``"raw_tracepoint"``, ``"hash"``), or
    the number when this libbpf does not know it (bpftool prints the number then too)."""
    raw = getattr(_ffi.lib(), f"libbpf_bpf_{table}_type_str")(int(value))
    return raw.decode() if raw else int(value)


def fdinfo(fd: int) -> dict[str, str]:
    """``/proc/self/fdinfo/FD``: the kernel's ``key:\\tvalue`` lines (memlock, frozen...)."""
    out: dict[str, str] = {}
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                key, _, value = line.partition(":")
                out[key.strip()] = value.strip()
    except OSError:
        pass
    return out


def boot_time_to_epoch(boot_ns: int) -> int:
    """A ``CLOCK_BOOTTIME`` timestamp (a program's load time) as Unix seconds."""
    now_real = time.clock_gettime(time.CLOCK_REALTIME)
    now_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
    return int(now_real - now_boot + boot_ns / 1e9)


def format_time(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(epoch))


def hex_json(data: bytes) -> list[str]:
    """Bytes as bpftool's JSON shows them: ``["0x01", "0x00", ...]``."""
    return [f"0x{b:02x}" for b in data]


def hex_text(data: bytes) -> str:
    """Bytes as bpftool's text shows them: ``01 00 00 00``."""
    return " ".join(f"{b:02x}" for b in data)
