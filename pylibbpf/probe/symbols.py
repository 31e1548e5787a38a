"""kallsyms, kprobes and tracepoints: what the kernel's text files say exists."""

from __future__ import annotations

import errno as _errno
import functools
import os
import re
from collections.abc import Iterator

from ..errors import (
    BpfError,
)
from ._support import (
    KALLSYMS,
    KPROBE_BLACKLIST,
    KPROBE_PMU,
    TRACEFS_MOUNTS,
    Support,
    _module_arg,
    _no,
    _yes,
    on_cache_clear,
)

# ----------------------------------------------------- kallsyms, kprobes, tracepoints

def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _symbols(name: str) -> Iterator[tuple[int, str, str | None]]:
    """``(address, type letter, module or None)`` of every ``/proc/kallsyms`` line for
    ``name`` (``ffffffff816b89f0 T vfs_read`` or ``... t name\t[module]``)."""
    data = _read(KALLSYMS)
    if data is None:
        raise BpfError(_errno.ENOENT, f"cannot read {KALLSYMS}")
    needle = b" " + name.encode()
    at = data.find(needle)
    while at >= 0:
        end = at + len(needle)
        if end == len(data) or data[end] in b"\n\t":
            start = data.rfind(b"\n", 0, at) + 1
            stop = data.find(b"\n", end)
            fields = data[start:stop if stop >= 0 else len(data)].split()
            if len(fields) >= 3 and fields[2] == needle[1:]:
                module = fields[3].strip(b"[]").decode() if len(fields) > 3 else None
                yield int(fields[0], 16), fields[1].decode(), module
        at = data.find(needle, end)


def ksym_exists(symbol: str, module: str | None = None) -> Support:
    """Is ``symbol`` in ``/proc/kallsyms`` (of ``module``, when given)?  Needs no privilege
    (addresses may be hidden, names are not).  Asked anew on every call."""
    name = _module_arg(symbol, "symbol")
    what = f"kernel symbol {name}" + (f" in module {module}" if module is not None else "")
    if any(module is None or found_module == module for _, _, found_module in _symbols(name)):
        return _yes(what)
    return _no(what, f"{KALLSYMS} has no {name}" +
               (f" of module {module}" if module is not None else ""), _errno.ENOENT)


def kallsyms_lookup(symbol: str, module: str | None = None) -> int | None:
    """The address of ``symbol`` in ``/proc/kallsyms`` (of ``module``, when given), or None
    when the kernel has no such symbol.  Raises :class:`~pylibbpf.BpfPermissionError` when
    the kernel hides addresses from this process (``kernel.kptr_restrict``; CAP_SYSLOG sees
    them).  Read anew on every call."""
    name = _module_arg(symbol, "symbol")
    for address, _, found_module in _symbols(name):
        if module is not None and found_module != module:
            continue
        if address == 0:
            from ..errors import BpfPermissionError

            raise BpfPermissionError(_errno.EPERM, f"{KALLSYMS} hides the address of {name} "
                                     "from this process (kernel.kptr_restrict; needs "
                                     "CAP_SYSLOG)")
        return address
    return None


def _tracefs_file(*parts: str) -> str | None:
    for mount in TRACEFS_MOUNTS:
        path = os.path.join(mount, *parts)
        if os.path.exists(path):
            return path
    return None


@functools.cache
def _kprobes_compiled() -> bool:
    return os.path.exists(KPROBE_PMU) or _tracefs_file("kprobe_events") is not None


on_cache_clear(_kprobes_compiled.cache_clear)


def _blacklisted(func: str) -> bool:
    data = _read(KPROBE_BLACKLIST)
    return data is not None and re.search(rb"\s" + re.escape(func.encode()) + rb"$", data,
                                          re.M) is not None


def kprobe_exists(func: str) -> Support:
    """Can a kprobe be put on kernel function ``func``?

    False when the kernel has no kprobes (neither the ``kprobe`` perf PMU nor tracefs's
    ``kprobe_events``: ``CONFIG_KPROBES`` or ``CONFIG_KPROBE_EVENTS`` off), or ``func`` is on
    the kprobe blacklist.  Then, as libbpf-tools' ``kprobe_exists``: true when tracefs's
    ``available_filter_functions`` lists it, false when it does not; when that file cannot be
    read, true when ``/proc/kallsyms`` has it.  Asked anew on every call (modules)."""
    name = _module_arg(func, "func")
    what = f"kprobe on {name}"
    if not _kprobes_compiled():
        return _no(what, "this kernel has no kprobes (no kprobe PMU in "
                   "/sys/bus/event_source/devices, no kprobe_events in tracefs: CONFIG_KPROBES "
                   "or CONFIG_KPROBE_EVENTS is off)", _errno.EOPNOTSUPP)
    if _blacklisted(name):
        return _no(what, f"{name} is on the kernel's kprobe blacklist", _errno.EINVAL)
    listing = _tracefs_file("available_filter_functions")
    data = _read(listing) if listing is not None else None
    if data is not None:
        if re.search(rb"^" + re.escape(name.encode()) + rb"(?:\s|$)", data, re.M):
            return _yes(what)
        return _no(what, f"{name} is not in available_filter_functions (no such function, "
                   "inlined, or not traceable)", _errno.ENOENT)
    if any(kind in "tT" for _, kind, _ in _symbols(name)):
        return _yes(what)
    return _no(what, f"{KALLSYMS} has no function {name}", _errno.ENOENT)


def tracepoint_exists(category: str, name: str) -> Support:
    """Does tracepoint ``category:name`` (``"sched"``, ``"sched_switch"``) exist?  Looked up
    in tracefs (``/sys/kernel/tracing``, else debugfs's ``tracing``), where libbpf looks when
    it attaches a ``tp/<category>/<name>`` program.  Asked anew on every call (modules add
    tracepoints)."""
    cat = _module_arg(category, "category")
    event = _module_arg(name, "name")
    what = f"tracepoint {cat}:{event}"
    events = _tracefs_file("events")
    if events is None:
        return _no(what, "tracefs is not mounted (at " + " or ".join(TRACEFS_MOUNTS) + ")",
                   _errno.ENOENT)
    if os.path.exists(os.path.join(events, cat, event, "format")):
        return _yes(what)
    return _no(what, f"{events} has no {cat}/{event}", _errno.ENOENT)
