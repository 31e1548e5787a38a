"""Opening perf events of fixed kinds: tracefs tracepoints, kprobes and uprobes through their
PMU, the cpu-clock of one CPU; the perf_event_open call and the event ioctls."""

from __future__ import annotations

import ctypes
import errno as _errno
import fcntl
import os
import re
import struct
from pathlib import Path

from .. import _args
from .._ffi import ioctl
from .._ffi.syscalls import number, syscall
from ..errors import BpfError, NotSupportedError, error_from_errno

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
PERF_EVENT_IOC_DISABLE = ioctl.io("$", 1)
PERF_EVENT_IOC_RESET = ioctl.io("$", 3)
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


def _ioctl(fd: int, request: int, arg: int, what: str) -> None:
    try:
        fcntl.ioctl(fd, request, arg)
    except OSError as exc:
        raise error_from_errno(exc.errno, what, _CAPS) from None
