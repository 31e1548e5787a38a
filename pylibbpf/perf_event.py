"""Perf events for BPF programs: open one, attach a loaded program fd to it.

The ``open_*`` functions return a perf event fd the caller owns (close-on-exec):

* :func:`open_tracepoint` - a tracefs tracepoint, by category and name (``syscalls``,
  ``sys_enter_getppid``);
* :func:`open_kprobe` / :func:`open_uprobe` - a probe created through the ``kprobe``/``uprobe``
  PMU of ``/sys/bus/event_source/devices`` (the retprobe bit read from the PMU's format file),
  so nothing is written to tracefs and the probe vanishes with its fd;
* :func:`open_cpu_clock` - the software cpu-clock event of one CPU, for sampling programs.

:func:`attach` connects a program fd (from :func:`pylibbpf.lowlevel.prog_load` or
:attr:`pylibbpf.Program.fd`) to a perf event fd with a BPF link (``bpf_link_create`` with
``BPF_PERF_EVENT``, Linux >= 5.15) and falls back to ``PERF_EVENT_IOC_SET_BPF`` on older kernels.
The :class:`PerfEventLink` it returns owns both fds: closing it detaches the program.  The
``attach_*`` functions open and attach in one step.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import fcntl
import os
import re
import struct
import threading
from pathlib import Path

from . import _args
from ._ffi import ioctl
from ._ffi.syscalls import number, syscall
from ._handle import Handle
from .enums import AttachType
from .errors import BpfError, NotSupportedError, error_from_errno
from .info import LinkInfo
from .lowlevel import link_create

__all__ = [
    "PerfEventLink", "attach", "attach_cpu_clock", "attach_kprobe", "attach_tracepoint",
    "attach_uprobe", "open_cpu_clock", "open_kprobe", "open_tracepoint", "open_uprobe",
    "pmu_available", "tracefs_root", "tracepoint_id",
]

PERF_TYPE_SOFTWARE = 1
PERF_TYPE_TRACEPOINT = 2
PERF_COUNT_SW_CPU_CLOCK = 0
PERF_FLAG_FD_CLOEXEC = 8
_ATTR_SIZE = 128  # PERF_ATTR_SIZE_VER7; older kernels accept it while the tail is zero
_FLAG_FREQ = 1 << 10  # perf_event_attr.freq
_CAPS = ("CAP_PERFMON",)

_TRACEFS_ROOTS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
_PMU_ROOT = Path("/sys/bus/event_source/devices")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


PERF_EVENT_IOC_ENABLE = ioctl.io("$", 0)
PERF_EVENT_IOC_SET_BPF = ioctl.iow("$", 8, 4)  # __u32


# ------------------------------------------------------------------------------------- opening

def _perf_event_open(attr: bytes, pid: int, cpu: int, what: str) -> int:
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = syscall(number("perf_event_open"), buf, ctypes.c_int(pid), ctypes.c_int(cpu),
                 ctypes.c_int(-1), ctypes.c_ulong(PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        raise error_from_errno(-fd, f"perf_event_open for {what} failed", _CAPS)
    return fd


def _attr(type_: int, config: int, *, config1: int = 0, config2: int = 0,
          sample: int = 0, flags: int = 0, wakeup_events: int = 0) -> bytes:
    attr = bytearray(_ATTR_SIZE)
    struct.pack_into("=IIQQ", attr, 0, type_, _ATTR_SIZE, config, sample)
    struct.pack_into("=QI", attr, 40, flags, wakeup_events)
    struct.pack_into("=QQ", attr, 56, config1, config2)
    return bytes(attr)


def tracefs_root() -> Path | None:
    """The mounted tracefs (``/sys/kernel/tracing``, else the one under debugfs), or ``None``."""
    for root in _TRACEFS_ROOTS:
        if (root / "events").is_dir():
            return root
    return None


def _check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value) or value in (".", ".."):
        raise ValueError(f"{what} {value!r} is not a tracepoint {what} (letters, digits, "
                         "'_', '-' and '.')")
    return value


def tracepoint_id(category: str, name: str) -> int:
    """The perf id of tracepoint ``category:name`` (``events/<category>/<name>/id``)."""
    _check_name(category, "category")
    _check_name(name, "name")
    root = tracefs_root()
    if root is None:
        raise BpfError(_errno.ENOENT, "tracefs is not mounted: mount it with "
                       "'mount -t tracefs nodev /sys/kernel/tracing'")
    path = root / "events" / category / name / "id"
    try:
        return int(path.read_text())
    except FileNotFoundError:
        raise BpfError(_errno.ENOENT, f"no tracepoint {category}:{name} in this kernel "
                       f"({path.parent} does not exist)") from None
    except OSError as exc:
        raise error_from_errno(exc.errno, f"cannot read {path}", _CAPS) from None
    except ValueError:
        raise BpfError(_errno.EINVAL, f"{path} does not hold a tracepoint id") from None


def open_tracepoint(category: str, name: str, *, pid: int = -1, cpu: int = 0) -> int:
    """A perf event fd on tracepoint ``category:name``.  A program attached to it runs for
    every hit on every CPU (``cpu`` only picks where the event is accounted)."""
    pid = _args.in_range(pid, "pid", -1, _args.INT_MAX)
    cpu = _args.in_range(cpu, "cpu", -1, _args.INT_MAX)
    tp_id = tracepoint_id(category, name)
    attr = _attr(PERF_TYPE_TRACEPOINT, tp_id, sample=1, wakeup_events=1)
    return _perf_event_open(attr, pid, cpu, f"tracepoint {category}:{name}")


def pmu_available(pmu: str) -> bool:
    """True when the dynamic PMU ``pmu`` (``"kprobe"``, ``"uprobe"``) exists (the kernel was
    built with CONFIG_KPROBES / CONFIG_UPROBES and is >= 4.17)."""
    return (_PMU_ROOT / pmu / "type").is_file()


def _pmu_type(pmu: str) -> int:
    path = _PMU_ROOT / pmu / "type"
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        kind = "kprobes (CONFIG_KPROBES)" if pmu == "kprobe" else "uprobes (CONFIG_UPROBES)"
        raise NotSupportedError(f"this kernel has no {pmu} PMU ({path}): it lacks "
                                f"{kind} or is older than 4.17") from None


def _pmu_bit(pmu: str, field: str) -> int:
    """The ``config`` bit position of ``field`` from the PMU's format file (``config:0``)."""
    path = _PMU_ROOT / pmu / "format" / field
    try:
        text = path.read_text().strip()
    except OSError:
        raise NotSupportedError(f"the {pmu} PMU has no {field!r} format ({path})") from None
    match = re.fullmatch(r"config:(\d+)(?:-\d+)?", text)
    if match is None:
        raise NotSupportedError(f"{path} says {text!r}; pylibbpf expects 'config:<bit>'")
    return int(match.group(1))


def _probe(pmu: str, target: bytes, offset: int, retprobe: bool, pid: int,
           ref_ctr_offset: int, what: str) -> int:
    offset = _args.u64(offset, "offset")
    pid = _args.in_range(pid, "pid", -1, _args.INT_MAX)
    ref_ctr_offset = _args.u32(ref_ctr_offset, "ref_ctr_offset")  # config bits 32-63
    config = 1 << _pmu_bit(pmu, "retprobe") if retprobe else 0
    if ref_ctr_offset:
        config |= ref_ctr_offset << _pmu_bit(pmu, "ref_ctr_offset")
    if not 0 <= config <= _args.U64_MAX:
        raise ValueError(f"ref_ctr_offset {ref_ctr_offset:#x} does not fit the {pmu} PMU's "
                         "config")
    name = ctypes.create_string_buffer(target)
    attr = _attr(_pmu_type(pmu), config, config1=ctypes.addressof(name), config2=offset)
    cpu = 0 if pid < 0 else -1
    return _perf_event_open(attr, pid, cpu, what)


def open_kprobe(function: str, offset: int = 0, *, retprobe: bool = False) -> int:
    """A perf event fd on a kprobe (``retprobe``: a kretprobe) at ``function+offset``."""
    raw = _args.cstr(function, "function")
    if not raw:
        raise ValueError(f"{function!r} is not a kernel function name")
    offset = _args.u64(offset, "offset")
    kind = "kretprobe" if retprobe else "kprobe"
    return _probe("kprobe", raw, offset, retprobe, -1, 0, f"{kind} {function}+{offset:#x}")


def open_uprobe(path: str | os.PathLike[str], offset: int, *, retprobe: bool = False,
                pid: int = -1, ref_ctr_offset: int = 0) -> int:
    """A perf event fd on a uprobe (``retprobe``: a uretprobe) at file offset ``offset`` of
    the executable or library ``path``, in process ``pid`` (-1: every process)."""
    raw = _args.cpath(path)
    offset = _args.u64(offset, "offset")
    kind = "uretprobe" if retprobe else "uprobe"
    return _probe("uprobe", raw, offset, retprobe, pid, ref_ctr_offset,
                  f"{kind} {os.fsdecode(raw)}:{offset:#x}")


def open_cpu_clock(cpu: int, *, period_ns: int | None = None, frequency: int | None = None,
                   pid: int = -1) -> int:
    """A sampling software cpu-clock event on ``cpu``: one sample every ``period_ns`` of CPU
    time, or ``frequency`` samples a second (one of the two)."""
    if (period_ns is None) == (frequency is None):
        raise ValueError("give exactly one of period_ns and frequency")
    cpu = _args.in_range(cpu, "cpu", 0, _args.INT_MAX)
    pid = _args.in_range(pid, "pid", -1, _args.INT_MAX)
    what = "period_ns" if period_ns is not None else "frequency"
    value = _args.in_range(period_ns if period_ns is not None else frequency, what, 1,
                           _args.U64_MAX)
    flags = _FLAG_FREQ if frequency is not None else 0
    attr = _attr(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK, sample=value, flags=flags)
    return _perf_event_open(attr, pid, cpu, f"cpu-clock on cpu {cpu}")


# ------------------------------------------------------------------------------------- attaching

class PerfEventLink(Handle):
    """A program attached to a perf event; owns the perf event fd and, where the kernel has
    perf links (>= 5.15), the BPF link fd.  ``close()`` (or ``detach()``) detaches."""

    _what = "perf event attachment"

    def __init__(self, perf_fd: int, link_fd: int | None) -> None:
        super().__init__()
        self._perf_fd = perf_fd
        self._link_fd = link_fd

        def release() -> None:
            for fd in (link_fd, perf_fd):
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass

        kind = f"link fd {link_fd}" if link_fd is not None else "ioctl"
        self._own(release, f"perf event attachment (perf fd {perf_fd}, {kind})")

    @property
    def fd(self) -> int:
        """The BPF link fd, or the perf event fd when the kernel has no perf links."""
        self._check()
        return self._perf_fd if self._link_fd is None else self._link_fd

    @property
    def perf_fd(self) -> int:
        """The perf event fd."""
        self._check()
        return self._perf_fd

    @property
    def link_fd(self) -> int | None:
        """The BPF link fd; ``None`` when attached with ``PERF_EVENT_IOC_SET_BPF``."""
        self._check()
        return self._link_fd

    def info(self) -> LinkInfo:
        """The kernel's view of the BPF link (NotSupportedError without one)."""
        self._check()
        if self._link_fd is None:
            raise NotSupportedError("this attachment has no BPF link (attached by ioctl)")
        return LinkInfo.from_fd(self._link_fd)

    def detach(self) -> None:
        """Detach the program: the same as :meth:`close`."""
        self.close()

    def __repr__(self) -> str:
        if self._closed:
            return "<PerfEventLink closed>"
        kind = "ioctl" if self._link_fd is None else f"link fd {self._link_fd}"
        return f"<PerfEventLink perf fd {self._perf_fd} ({kind})>"


_perf_links: bool | None = None  # learnt from the first attach: does the kernel have them?
_perf_links_lock = threading.Lock()


def _ioctl(fd: int, request: int, arg: int, what: str) -> None:
    try:
        fcntl.ioctl(fd, request, arg)
    except OSError as exc:
        raise error_from_errno(exc.errno, what, _CAPS) from None


def attach(prog_fd: int, perf_fd: int, *, cookie: int = 0,
           force_ioctl: bool = False) -> PerfEventLink:
    """Attach program ``prog_fd`` to the perf event ``perf_fd`` and enable the event.

    On success the returned link owns ``perf_fd``; on failure it stays the caller's.
    ``cookie`` is what ``bpf_get_attach_cookie()`` returns (needs a BPF link).
    ``force_ioctl`` skips the BPF link and uses ``PERF_EVENT_IOC_SET_BPF``, as kernels
    before 5.15 must.
    """
    global _perf_links
    prog_fd = _args.fd(prog_fd, "prog_fd")
    perf_fd = _args.fd(perf_fd, "perf_fd")
    cookie = _args.u64(cookie, "cookie")
    link_fd: int | None = None
    if not force_ioctl and _perf_links is not False:
        try:
            link_fd = link_create(prog_fd, perf_fd, AttachType.PERF_EVENT, cookie=cookie)
        except BpfError as exc:
            # EINVAL from a kernel without perf links; anything else is a real refusal
            if _perf_links or exc.errno != _errno.EINVAL:
                raise
        else:
            with _perf_links_lock:
                _perf_links = True
    if link_fd is None:
        if cookie:
            raise NotSupportedError("BPF cookies on perf events need a BPF link (Linux 5.15)")
        _ioctl(perf_fd, PERF_EVENT_IOC_SET_BPF, prog_fd,
               f"cannot attach program fd {prog_fd} to perf event fd {perf_fd}")
        if not force_ioctl:
            with _perf_links_lock:
                _perf_links = False
    try:
        _ioctl(perf_fd, PERF_EVENT_IOC_ENABLE, 0, f"cannot enable perf event fd {perf_fd}")
    except BpfError:
        if link_fd is not None:
            os.close(link_fd)
        raise
    return PerfEventLink(perf_fd, link_fd)


def _attach_new(prog_fd: int, perf_fd: int, cookie: int) -> PerfEventLink:
    try:
        return attach(prog_fd, perf_fd, cookie=cookie)
    except BaseException:
        os.close(perf_fd)
        raise


def attach_tracepoint(prog_fd: int, category: str, name: str, *,
                      cookie: int = 0) -> PerfEventLink:
    """Open tracepoint ``category:name`` and attach ``prog_fd`` (a TRACEPOINT program)."""
    return _attach_new(prog_fd, open_tracepoint(category, name), cookie)


def attach_kprobe(prog_fd: int, function: str, offset: int = 0, *, retprobe: bool = False,
                  cookie: int = 0) -> PerfEventLink:
    """Create a kprobe (kretprobe) on ``function`` and attach ``prog_fd`` (a KPROBE program)."""
    return _attach_new(prog_fd, open_kprobe(function, offset, retprobe=retprobe), cookie)


def attach_uprobe(prog_fd: int, path: str | os.PathLike[str], offset: int, *,
                  retprobe: bool = False, pid: int = -1, cookie: int = 0) -> PerfEventLink:
    """Create a uprobe (uretprobe) at ``path``'s file offset ``offset`` and attach ``prog_fd``
    (a KPROBE program)."""
    return _attach_new(prog_fd, open_uprobe(path, offset, retprobe=retprobe, pid=pid), cookie)


def attach_cpu_clock(prog_fd: int, cpu: int, *, period_ns: int | None = None,
                     frequency: int | None = None, cookie: int = 0) -> PerfEventLink:
    """Sample ``cpu`` with a cpu-clock event and attach ``prog_fd`` (a PERF_EVENT program)."""
    fd = open_cpu_clock(cpu, period_ns=period_ns, frequency=frequency)
    return _attach_new(prog_fd, fd, cookie)
