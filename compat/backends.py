"""Attach backends and the module-level attachment registry (spec §7).

A legacy target resolves to an :class:`~compat.targets.AttachPoint`; the backend is chosen by
what the running kernel supports, unless the caller names one:

* syscall targets -> the ``syscalls/sys_enter_*`` (kprobe, kretprobe@entry) or ``sys_exit_*``
  (kretprobe@exit) tracepoints of every Linux syscall standing for the legacy one;
* other symbols -> kprobe / kretprobe when the kernel has kprobes (``CONFIG_KPROBES``).

fentry/fexit is not implemented yet (it is refused under lockdown on the project's hosts).
Each attachment loads its own Linux program (the variant for its backend and phase) and one
perf event per tracepoint or probe; programs on one point run in attach order (the kernel
appends to the point's program array).  Attachments live until detached, like the legacy
kernel's: :func:`detach`, :func:`detach_all` or :func:`compat.release_program` end them.
"""

from __future__ import annotations

import errno as _errno
import os
import re
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pylibbpf
from pylibbpf import perf_event

from .context import Backend
from .errors import LegacyError
from .loader import LegacyProgram, program_for_fd
from .targets import Phase, Target

__all__ = ["Attachment", "attach", "detach", "detach_all", "attachments", "choose_backend",
           "kprobes_available", "tracefs_root"]



@dataclass
class Attachment:
    """One legacy attachment: the Linux program fd and its perf event attachments
    (``links``, :class:`pylibbpf.perf_event.PerfEventLink`; ``perf_fds`` lists their perf
    event fds)."""

    prog_fd: int
    target: Target
    backend: Backend
    linux_prog_fd: int
    perf_fds: list[int] = field(default_factory=list)
    points: list[str] = field(default_factory=list)
    links: list[perf_event.PerfEventLink] = field(default_factory=list)

    def close(self) -> None:
        """Detach: close the perf event links (which detaches the program), then the program."""
        owned = {link.perf_fd for link in self.links if not link.closed}
        for link in self.links:
            link.close()
        self.links.clear()
        for fd in self.perf_fds:
            if fd not in owned:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.perf_fds.clear()
        if self.linux_prog_fd >= 0:
            os.close(self.linux_prog_fd)
            self.linux_prog_fd = -1


_ATTACHED: dict[tuple[int, Phase, str], Attachment] = {}
_LOCK = threading.Lock()


def tracefs_root() -> Path | None:
    """The mounted tracefs (``/sys/kernel/tracing`` or the debugfs one), or ``None``."""
    return perf_event.tracefs_root()


@cache
def kprobes_available() -> bool:
    """True when the kernel can create kprobes through the perf ``kprobe`` PMU."""
    return perf_event.pmu_available("kprobe")


def choose_backend(target: Target, override: Backend | str | None = None) -> Backend:
    """The backend for ``target``: ``override`` if given, else by kernel support."""
    if override is not None:
        backend = Backend(override)
        if backend is Backend.FENTRY:
            raise LegacyError(_errno.EOPNOTSUPP, "the fentry/fexit backend is not implemented "
                              "yet: use 'kprobe' or 'tracepoint'")
        if backend is Backend.TRACEPOINT and not target.point.syscalls:
            raise LegacyError(_errno.EINVAL, f"{target.symbol!r} is not a syscall: the "
                              "tracepoint backend only serves syscall targets")
        return backend
    if target.point.syscalls and tracefs_root() is not None:
        return Backend.TRACEPOINT
    if target.point.function and kprobes_available():
        return Backend.KPROBE
    if target.point.syscalls:
        raise LegacyError(_errno.ENOENT, "syscall tracepoints need tracefs: mount it with "
                          "'mount -t tracefs nodev /sys/kernel/tracing'")
    raise LegacyError(_errno.ENOENT, f"cannot attach to {target.symbol!r}: this kernel has no "
                      "kprobes (CONFIG_KPROBES) and the symbol is not a syscall")


def _tracepoint_id(name: str) -> int | None:
    try:
        return perf_event.tracepoint_id("syscalls", name)
    except (pylibbpf.BpfError, ValueError):
        return None


def _attach_perf(att: Attachment, perf_fd: int, what: str) -> None:
    try:
        link = perf_event.attach(att.linux_prog_fd, perf_fd)
    except pylibbpf.BpfError as exc:
        os.close(perf_fd)
        raise LegacyError(exc.errno or _errno.EINVAL, f"cannot attach the program to "
                          f"{what}") from None
    att.links.append(link)
    att.perf_fds.append(perf_fd)


def _tracepoint_args(root: Path, name: str) -> int:
    """How many 8-byte syscall arguments the ``syscalls/<name>`` record holds."""
    try:
        text = (root / "events" / "syscalls" / name / "format").read_text()
    except OSError:
        return 0
    ends = [int(m.group(1)) + int(m.group(2))
            for m in re.finditer(r"offset:(\d+);\s*size:(\d+);", text)]
    return max(0, (max(ends, default=16) - 16) // 8)


def _tracepoints(target: Target) -> tuple[list[tuple[str, int]], int]:
    root = tracefs_root()
    assert root is not None
    prefix = "sys_exit_" if target.phase.at_exit else "sys_enter_"
    found: list[tuple[str, int]] = []
    nargs = 6
    for syscall in target.point.syscalls:
        name = prefix + syscall
        tp_id = _tracepoint_id(name)
        if tp_id is None:
            continue  # this architecture or kernel lacks that syscall
        found.append((name, tp_id))
        if not target.phase.at_exit:
            nargs = min(nargs, _tracepoint_args(root, name))
    if not found:
        raise LegacyError(_errno.ENOENT, f"no syscalls/{prefix}* tracepoint exists for "
                          f"{', '.join(target.point.syscalls)} on this kernel")
    return found, nargs


def _attach_tracepoints(att: Attachment, found: list[tuple[str, int]]) -> None:
    for name, _tp_id in found:
        what = f"tracepoint syscalls/{name}"
        try:
            perf_fd = perf_event.open_tracepoint("syscalls", name)
        except pylibbpf.BpfError as exc:
            raise LegacyError(exc.errno or _errno.EINVAL, f"perf_event_open for {what} "
                              "failed") from None
        _attach_perf(att, perf_fd, what)
        att.points.append(f"syscalls/{name}")


def _attach_kprobe(att: Attachment) -> None:
    function = att.target.point.function
    if function is None:
        raise LegacyError(_errno.ENOENT, f"{att.target.symbol!r} has no kernel function")
    retprobe = att.target.phase.at_exit
    what = f"{'kretprobe' if retprobe else 'kprobe'} {function}"
    try:
        perf_fd = perf_event.open_kprobe(function, retprobe=retprobe)
    except pylibbpf.BpfError as exc:
        if exc.errno in (_errno.ENOENT, _errno.EINVAL):
            raise LegacyError(_errno.ENOENT, f"kernel function {function!r} cannot be "
                              "probed (not in kallsyms, or blacklisted)") from None
        raise LegacyError(exc.errno or _errno.EINVAL, f"perf_event_open for {what} "
                          "failed") from None
    _attach_perf(att, perf_fd, what)
    att.points.append(what)


def attach(prog_fd: int, target: Target, backend: Backend | str | None = None) -> Attachment:
    """Attach the legacy program ``prog_fd`` at ``target``; EAGAIN for a duplicate."""
    program: LegacyProgram | None = program_for_fd(prog_fd)
    if program is None:
        raise LegacyError(_errno.ENOENT, f"fd {prog_fd} is not a program bpf_prog_load_ex "
                          "returned")
    chosen = choose_backend(target, backend)
    key = (prog_fd, target.phase, target.point.legacy)
    with _LOCK:
        if key in _ATTACHED:
            raise LegacyError(_errno.EAGAIN, f"program fd {prog_fd} is already attached at "
                              f"{target.text!r}")
        if program.is_modern and program.modern_type not in (None, 2, 5):
            raise LegacyError(_errno.EINVAL, "only kprobe and tracepoint programs can be "
                              "attached through the legacy interface")
        found: list[tuple[str, int]] = []
        nargs = 6
        if chosen is Backend.TRACEPOINT:
            found, nargs = _tracepoints(target)
        linux_fd = program.variant(chosen, target.phase, nargs)
        att = Attachment(prog_fd, target, chosen, linux_fd)
        try:
            if chosen is Backend.TRACEPOINT:
                _attach_tracepoints(att, found)
            else:
                _attach_kprobe(att)
        except BaseException:
            att.close()
            raise
        _ATTACHED[key] = att
    return att


def detach(prog_fd: int, target: Target | None = None) -> int:
    """Detach ``prog_fd`` from ``target`` (or from everywhere); returns how many attachments
    ended.  ENOENT when nothing matched."""
    with _LOCK:
        keys = [k for k, att in _ATTACHED.items() if k[0] == prog_fd and (
            target is None or (k[1] is target.phase and k[2] == target.point.legacy))]
        found = [_ATTACHED.pop(k) for k in keys]
    for att in found:
        att.close()
    if not found and target is not None:
        raise LegacyError(_errno.ENOENT, f"program fd {prog_fd} is not attached at "
                          f"{target.text!r}")
    return len(found)


def detach_all(prog_fd: int | None = None) -> int:
    """Detach every attachment (of ``prog_fd``, or of every program)."""
    with _LOCK:
        keys = [k for k in _ATTACHED if prog_fd is None or k[0] == prog_fd]
        found = [_ATTACHED.pop(k) for k in keys]
    for att in found:
        att.close()
    return len(found)


def attachments() -> list[Attachment]:
    """The live attachments, in attach order."""
    with _LOCK:
        return list(_ATTACHED.values())
