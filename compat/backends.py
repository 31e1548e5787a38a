"""Attach backends and the module-level attachment registry (spec §7).

A legacy target resolves to an :class:`~compat.targets.AttachPoint`; the backend is chosen by
what the running kernel supports, unless the caller names one:

* syscall targets -> the ``syscalls/sys_enter_*`` (kprobe, kretprobe@entry) or ``sys_exit_*``
  (kretprobe@exit) tracepoints of every Linux syscall standing for the legacy one;
* other symbols -> kprobe / kretprobe when the kernel has kprobes (``CONFIG_KPROBES``);
* otherwise fentry (kprobe, kretprobe@entry) / fexit (kretprobe@exit) on the kernel function
  (``__x64_sys_<name>`` for syscall targets), where the kernel allows BPF trampolines (a tiny
  fentry program is loaded once to find out; lockdown refuses it with EPERM).

Each attachment loads its own Linux program (the variant for its backend and phase) and one
perf event per tracepoint or probe, or one BPF link per traced function; programs on one point
run in attach order (the kernel appends to a point's program array; a trampoline runs its
newest program first, so compat re-links the older ones of the same function after the new
one: they miss the calls made during that re-link; before Linux 5.11, which cannot re-attach a
detached tracing program, the re-link attaches fresh copies of them).  Attachments live until
detached, like the legacy kernel's: :func:`detach`, :func:`detach_all` or
:func:`compat.release_program` end them.
"""

from __future__ import annotations

import errno as _errno
import functools
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pylibbpf
from pylibbpf import lowlevel, perf_event
from pylibbpf.btf import KernelBtf
from pylibbpf.elf.btf import BtfKind, BtfType

from .context import Backend, TracedFunction
from .errors import LegacyError
from .loader import (
    BPF_PROG_TYPE_TRACING,
    BPF_TRACE_FENTRY,
    BPF_TRACE_FEXIT,
    LegacyProgram,
    lockdown_note,
    program_for_fd,
)
from .targets import Phase, Target

__all__ = ["Attachment", "TrampolineLink", "attach", "detach", "detach_all", "attachments",
           "choose_backend", "fentry_available", "kprobes_available", "traced_function",
           "tracefs_root"]


@dataclass
class TrampolineLink:
    """One fentry/fexit program of an attachment and its BPF link (``-1`` once closed).

    ``reload`` loads a fresh copy of the program: before Linux 5.11 a tracing program can be
    attached once only (once its link is closed, a new link fails with ENOENT), so a re-link
    swaps in a copy; the replaced program fds wait in ``retired`` until the attachment closes.
    """

    function: TracedFunction
    attach_type: int
    prog_fd: int
    link_fd: int = -1
    reload: Callable[[], int] | None = None
    retired: list[int] = field(default_factory=list)
    _linked_before: bool = False

    def unlink(self) -> None:
        """Close the link (detaches the program), keeping the program."""
        if self.link_fd >= 0:
            os.close(self.link_fd)
            self.link_fd = -1

    def link(self) -> None:
        """Attach the program to its function (a new BPF link)."""
        try:
            self.link_fd = lowlevel.link_create(self.prog_fd, 0, self.attach_type)
        except pylibbpf.BpfError as exc:
            if not (exc.errno == _errno.ENOENT and self._linked_before and self.reload):
                raise LegacyError(exc.errno or _errno.EINVAL, "cannot attach the fentry/fexit "
                                  f"program to {self.function.name}") from None
            self.retired.append(self.prog_fd)
            self.prog_fd = self.reload()
            self._linked_before = False
            self.link()
        self._linked_before = True


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
    trampolines: list[TrampolineLink] = field(default_factory=list)

    def close(self) -> None:
        """Detach: close the perf event and BPF links (which detaches the programs), then the
        programs."""
        for tramp in self.trampolines:
            tramp.unlink()
            for fd in (tramp.prog_fd, *tramp.retired):
                if fd not in (-1, self.linux_prog_fd):
                    os.close(fd)
            tramp.prog_fd = -1
            tramp.retired.clear()
        self.trampolines.clear()
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


_FUNCTIONS: dict[str, TracedFunction | None] = {}


def _describe(btf: KernelBtf, func: BtfType) -> TracedFunction:
    proto = btf.type_by_id(func.type_id or 0)
    regs = False
    if len(proto.params) == 1 and func.name.startswith(("__x64_sys_", "__do_sys_")):
        # a syscall wrapper that takes the user's registers: `const struct pt_regs *regs`
        arg = btf.type_by_id(proto.params[0].type_id)
        if arg.kind == BtfKind.PTR:
            target = btf.resolve(arg.type_id or 0)
            regs = target.kind == BtfKind.STRUCT and target.name == "pt_regs"
    return TracedFunction(func.name, func.id, len(proto.params), regs)


def traced_functions(names: list[str]) -> dict[str, TracedFunction]:
    """The kernel functions of ``names`` that vmlinux BTF describes (memoized)."""
    wanted = [n for n in names if n not in _FUNCTIONS]
    if wanted:
        try:
            btf = KernelBtf.vmlinux()
        except pylibbpf.BpfError as exc:
            raise LegacyError(exc.errno or _errno.ENOENT, "cannot read the kernel's BTF "
                              "(CONFIG_DEBUG_INFO_BTF): fentry/fexit need it") from None
        with btf:
            for name in wanted:
                func = btf.find(name, BtfKind.FUNC)
                _FUNCTIONS[name] = _describe(btf, func) if func is not None else None
    return {n: f for n in names if (f := _FUNCTIONS.get(n)) is not None}


def traced_function(name: str) -> TracedFunction | None:
    """The kernel function ``name`` as vmlinux BTF describes it, or ``None``."""
    return traced_functions([name]).get(name)


_PROBE_FUNCTIONS = ["__x64_sys_getpid", "do_nanosleep", "vfs_read"]


@cache
def _fentry_refusal() -> LegacyError | None:
    found = traced_functions(_PROBE_FUNCTIONS)
    if not found:
        return LegacyError(_errno.ENOENT, "no function to probe fentry with in vmlinux BTF")
    function = next(iter(found.values()))
    ret0 = bytes([0xB7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])  # r0 = 0; exit
    try:
        fd = lowlevel.prog_load(BPF_PROG_TYPE_TRACING, ret0, license="GPL", name="compat_probe",
                                expected_attach_type=BPF_TRACE_FENTRY,
                                attach_btf_id=function.btf_id)
    except pylibbpf.BpfError as exc:
        code = exc.errno or _errno.EINVAL
        note = lockdown_note() if code == _errno.EPERM else ""
        return LegacyError(code, "this kernel refuses fentry/fexit programs "
                           f"({_errno.errorcode.get(code, code)}){note}")
    os.close(fd)
    return None


def fentry_available() -> bool:
    """True when the kernel loads fentry/fexit programs (probed once per process)."""
    return _fentry_refusal() is None


def _fentry_functions(target: Target) -> list[TracedFunction]:
    choices: list[tuple[str, ...]]
    if target.point.syscalls:
        # SYSCALL_DEFINE0's __x64_sys_<name> is an alias BTF omits: its body is __do_sys_<name>
        choices = [(f"__x64_sys_{name}", f"__do_sys_{name}") for name in target.point.syscalls]
    elif target.point.function:
        choices = [(target.point.function,)]
    else:
        choices = []
    names = [name for group in choices for name in group]
    found = traced_functions(names)
    picked = [next(found[n] for n in group if n in found) for group in choices
              if any(n in found for n in group)]
    if not picked:
        raise LegacyError(_errno.ENOENT, f"no kernel function for {target.symbol!r} in vmlinux "
                          f"BTF ({', '.join(names) or 'none'}): fentry cannot attach there")
    return picked


def choose_backend(target: Target, override: Backend | str | None = None) -> Backend:
    """The backend for ``target``: ``override`` if given, else by kernel support."""
    if override is not None:
        backend = Backend(override)
        if backend is Backend.FENTRY:
            refusal = _fentry_refusal()
            if refusal is not None:
                raise LegacyError(refusal.errno or _errno.EPERM, refusal.strerror or
                                  "this kernel refuses fentry/fexit programs")
        if backend is Backend.TRACEPOINT and not target.point.syscalls:
            raise LegacyError(_errno.EINVAL, f"{target.symbol!r} is not a syscall: the "
                              "tracepoint backend only serves syscall targets")
        return backend
    if target.point.syscalls and tracefs_root() is not None:
        return Backend.TRACEPOINT
    if target.point.function and kprobes_available():
        return Backend.KPROBE
    if (target.point.function or target.point.syscalls) and fentry_available():
        return Backend.FENTRY
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


def _attach_fentry(program: LegacyProgram, prog_fd: int, target: Target) -> Attachment:
    """Load one fentry/fexit variant per traced function and link it, keeping attach order
    (called with ``_LOCK`` held)."""
    kind = BPF_TRACE_FEXIT if target.phase.at_exit else BPF_TRACE_FENTRY
    att = Attachment(prog_fd, target, Backend.FENTRY, -1)
    try:
        for function in _fentry_functions(target):
            fd = program.variant(Backend.FENTRY, target.phase, function=function)
            if att.linux_prog_fd < 0:
                att.linux_prog_fd = fd
            tramp = TrampolineLink(function, kind, fd, reload=functools.partial(
                program.variant, Backend.FENTRY, target.phase, function=function))
            att.trampolines.append(tramp)
            # a trampoline runs its newest program first: re-link the older ones after
            older = [t for other in _ATTACHED.values() for t in other.trampolines
                     if t.function.btf_id == function.btf_id and t.attach_type == kind
                     and t.link_fd >= 0]
            for old in older:
                old.unlink()
            try:
                tramp.link()
            finally:
                for old in reversed(older):
                    old.link()
            att.points.append(f"{'fexit' if kind == BPF_TRACE_FEXIT else 'fentry'} "
                              f"{function.name}")
    except BaseException:
        att.close()
        raise
    return att


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
        if chosen is Backend.FENTRY:
            if program.is_modern:
                raise LegacyError(_errno.EINVAL, "the fentry backend serves legacy programs "
                                  "only: a libbpf object attaches by its own SEC()")
            att = _attach_fentry(program, prog_fd, target)
            _ATTACHED[key] = att
            return att
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
