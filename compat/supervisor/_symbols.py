"""``--map-symbols FILE``: extra legacy symbol -> Linux attach point mappings, as JSON.

The file is one JSON object; each key is a legacy symbol (mangled or demangled) and each value
either a list of Linux syscall names or an object with ``"syscalls"`` and/or ``"function"``::

    {
      "<rcore::process::Process>::fork": ["clone", "clone3"],
      "<rcore::fs::File>::read": {"function": "vfs_read"},
      "<my_kernel::Syscall>::sys_ping": {"syscalls": ["getppid"], "function": "__x64_sys_getppid"}
    }
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..targets import AttachPoint, register_symbol

__all__ = ["load_symbol_map"]


def _names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{where}: expected a list of syscall names, got {value!r}")
    return tuple(value)


def load_symbol_map(path: str | os.PathLike[str]) -> list[AttachPoint]:
    """Register every mapping of the JSON file ``path`` with :func:`compat.register_symbol`.

    ``ValueError`` names the entry that is malformed; ``OSError`` when the file is unreadable.
    """
    with open(path, encoding="utf-8") as handle:
        try:
            table = json.load(handle)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{os.fspath(path)}: not valid JSON: {exc}") from None
    if not isinstance(table, dict):
        raise ValueError(f"{os.fspath(path)}: expected a JSON object of symbol -> mapping")
    points = []
    for symbol, spec in table.items():
        where = f"{os.fspath(path)}: {symbol!r}"
        if isinstance(spec, list):
            points.append(register_symbol(symbol, syscalls=_names(spec, where)))
            continue
        if not isinstance(spec, dict) or not set(spec) <= {"syscalls", "function"}:
            raise ValueError(f"{where}: expected a list of syscalls or an object with "
                             f"'syscalls' and/or 'function', got {spec!r}")
        function = spec.get("function")
        if function is not None and (not isinstance(function, str) or not function):
            raise ValueError(f"{where}: 'function' must be a kernel function name")
        syscalls = _names(spec.get("syscalls", []), where)
        if not syscalls and function is None:
            raise ValueError(f"{where}: give 'syscalls' or 'function'")
        points.append(register_symbol(symbol, syscalls=syscalls, function=function))
    return points
