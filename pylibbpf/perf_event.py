"""Perf events for BPF programs: open one, attach a loaded program fd to it.

The ``open_*`` functions return a perf event fd the caller owns (close-on-exec):

* :func:`open_tracepoint` - a tracefs tracepoint, by category and name (``syscalls``,
  ``sys_enter_getppid``);
* :func:`open_kprobe` / :func:`open_uprobe` - a probe created through the ``kprobe``/``uprobe``
  PMU of ``/sys/bus/event_source/devices`` (the retprobe bit read from the PMU's format file),
  so nothing is written to tracefs and the probe vanishes with its fd;
* :func:`open_cpu_clock` - the software cpu-clock event of one CPU, for sampling programs;
* :func:`open_event` - any event a :class:`PerfEventAttr` describes (type, config, sample period
  or frequency, inherit, exclusions), per CPU, per process or both; :func:`open_per_cpu` opens
  one on each online CPU (a :class:`PerfEventSet`), as profile-style tools do.  A counter's value
  is read with :func:`read_counter` (or :meth:`PerfEventSet.read`).

:func:`attach` connects a program fd (from :func:`pylibbpf.lowlevel.prog_load` or
:attr:`pylibbpf.Program.fd`) to a perf event fd with a BPF link (``bpf_link_create`` with
``BPF_PERF_EVENT``, Linux >= 5.15) and falls back to ``PERF_EVENT_IOC_SET_BPF`` on older kernels.
The :class:`PerfEventLink` it returns owns both fds: closing it detaches the program.  The
``attach_*`` functions open and attach in one step.
"""

from __future__ import annotations

import ctypes
import dataclasses
import enum
import errno as _errno
import fcntl
import os
import re
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from . import _args
from ._ffi import ioctl, structs
from ._ffi.syscalls import number, syscall
from ._handle import Handle
from .enums import AttachType
from .errors import BpfError, NotSupportedError, error_from_errno
from .info import LinkInfo
from .lowlevel import link_create

__all__ = [
    "CounterValue", "HardwareEvent", "PerfEventAttr", "PerfEventLink", "PerfEventLinks",
    "PerfEventSet", "PerfType", "SoftwareEvent", "attach", "attach_cpu_clock", "attach_event",
    "attach_kprobe", "attach_per_cpu", "attach_tracepoint", "attach_uprobe", "disable", "enable",
    "online_cpus", "open_cpu_clock", "open_event", "open_kprobe", "open_per_cpu",
    "open_tracepoint", "open_uprobe", "pmu_available", "read_counter", "reset", "tracefs_root",
    "tracepoint_id",
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


# -------------------------------------------------------------------------------- any event

class PerfType(enum.IntEnum):
    """``enum perf_type_id``: the built-in PMUs (a dynamic PMU's type is in
    ``/sys/bus/event_source/devices/<pmu>/type``)."""

    HARDWARE = 0
    SOFTWARE = 1
    TRACEPOINT = 2
    HW_CACHE = 3
    RAW = 4
    BREAKPOINT = 5


class HardwareEvent(enum.IntEnum):
    """``enum perf_hw_id``: the generic hardware events, ``config`` of ``PerfType.HARDWARE``."""

    CPU_CYCLES = 0
    INSTRUCTIONS = 1
    CACHE_REFERENCES = 2
    CACHE_MISSES = 3
    BRANCH_INSTRUCTIONS = 4
    BRANCH_MISSES = 5
    BUS_CYCLES = 6
    STALLED_CYCLES_FRONTEND = 7
    STALLED_CYCLES_BACKEND = 8
    REF_CPU_CYCLES = 9


class SoftwareEvent(enum.IntEnum):
    """``enum perf_sw_ids``: the software events, ``config`` of ``PerfType.SOFTWARE``."""

    CPU_CLOCK = 0
    TASK_CLOCK = 1
    PAGE_FAULTS = 2
    CONTEXT_SWITCHES = 3
    CPU_MIGRATIONS = 4
    PAGE_FAULTS_MIN = 5
    PAGE_FAULTS_MAJ = 6
    ALIGNMENT_FAULTS = 7
    EMULATION_FAULTS = 8
    DUMMY = 9
    BPF_OUTPUT = 10
    CGROUP_SWITCHES = 11


_HW, _SW = PerfType.HARDWARE, PerfType.SOFTWARE
EVENT_NAMES: dict[str, tuple[PerfType, int]] = {
    "cpu-clock": (_SW, SoftwareEvent.CPU_CLOCK),
    "task-clock": (_SW, SoftwareEvent.TASK_CLOCK),
    "page-faults": (_SW, SoftwareEvent.PAGE_FAULTS),
    "faults": (_SW, SoftwareEvent.PAGE_FAULTS),
    "context-switches": (_SW, SoftwareEvent.CONTEXT_SWITCHES),
    "cs": (_SW, SoftwareEvent.CONTEXT_SWITCHES),
    "cpu-migrations": (_SW, SoftwareEvent.CPU_MIGRATIONS),
    "migrations": (_SW, SoftwareEvent.CPU_MIGRATIONS),
    "minor-faults": (_SW, SoftwareEvent.PAGE_FAULTS_MIN),
    "major-faults": (_SW, SoftwareEvent.PAGE_FAULTS_MAJ),
    "alignment-faults": (_SW, SoftwareEvent.ALIGNMENT_FAULTS),
    "emulation-faults": (_SW, SoftwareEvent.EMULATION_FAULTS),
    "dummy": (_SW, SoftwareEvent.DUMMY),
    "bpf-output": (_SW, SoftwareEvent.BPF_OUTPUT),
    "cgroup-switches": (_SW, SoftwareEvent.CGROUP_SWITCHES),
    "cpu-cycles": (_HW, HardwareEvent.CPU_CYCLES),
    "cycles": (_HW, HardwareEvent.CPU_CYCLES),
    "instructions": (_HW, HardwareEvent.INSTRUCTIONS),
    "cache-references": (_HW, HardwareEvent.CACHE_REFERENCES),
    "cache-misses": (_HW, HardwareEvent.CACHE_MISSES),
    "branch-instructions": (_HW, HardwareEvent.BRANCH_INSTRUCTIONS),
    "branches": (_HW, HardwareEvent.BRANCH_INSTRUCTIONS),
    "branch-misses": (_HW, HardwareEvent.BRANCH_MISSES),
    "bus-cycles": (_HW, HardwareEvent.BUS_CYCLES),
    "stalled-cycles-frontend": (_HW, HardwareEvent.STALLED_CYCLES_FRONTEND),
    "stalled-cycles-backend": (_HW, HardwareEvent.STALLED_CYCLES_BACKEND),
    "ref-cycles": (_HW, HardwareEvent.REF_CPU_CYCLES),
}
"""``perf list``'s names of the generic events, for :meth:`PerfEventAttr.named`."""

PERF_FORMAT_TOTAL_TIME_ENABLED = 1 << 0
PERF_FORMAT_TOTAL_TIME_RUNNING = 1 << 1
_READ_FORMAT = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING
_FLAGS = ("inherit", "exclude_user", "exclude_kernel", "exclude_hv", "exclude_idle",
          "exclude_host", "exclude_guest", "exclude_callchain_kernel", "exclude_callchain_user",
          "disabled", "pinned", "exclusive", "enable_on_exec")
_NO_PMU_TYPES = (PerfType.HARDWARE, PerfType.HW_CACHE, PerfType.RAW)


@dataclasses.dataclass(frozen=True)
class PerfEventAttr:
    """What a perf event counts and how it samples: the fields of ``struct perf_event_attr``
    that matter for counters and for BPF ``perf_event`` programs.

    * ``type``/``config`` pick the event: a :class:`PerfType` with a :class:`HardwareEvent` or
      :class:`SoftwareEvent`, a raw PMU code, or a dynamic PMU's type;
      :meth:`named` takes ``perf``'s names (``"cpu-clock"``, ``"cycles"``).
    * ``period`` (a sample every N events; for the clock events every N ns) or ``frequency``
      (N samples a second, the kernel adjusting the period) makes a *sampling* event: a BPF
      program attached to it runs once per sample.  With neither, the event only counts.
    * ``inherit``: tasks the measured task creates later are counted too.
    * ``exclude_user``, ``exclude_kernel``, ``exclude_hv``, ``exclude_idle``,
      ``exclude_host``, ``exclude_guest``: leave those events out.  The kernel decides: a PMU
      that cannot exclude refuses (EINVAL/EOPNOTSUPP), and ``kernel.perf_event_paranoid``
      limits unprivileged callers (at 2: their own tasks only, with ``exclude_kernel``).
      ``exclude_callchain_kernel``/``_user``: no call chains from there.
    * ``disabled``: opened stopped, until :func:`enable` (attaching a program enables it);
      ``enable_on_exec``: started by the task's next ``execve``; ``pinned``: always on the
      PMU; ``exclusive``: alone on it; ``precise_ip`` (0-3): skid constraint of hardware
      samples.
    * ``sample_type``, ``wakeup_events``, ``config1`` and ``config2`` go to the kernel as
      given.

    ``read_format`` is always TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING, which
    :func:`read_counter` reads.
    """

    type: int
    config: int = 0
    period: int | None = None
    frequency: int | None = None
    inherit: bool = False
    exclude_user: bool = False
    exclude_kernel: bool = False
    exclude_hv: bool = False
    exclude_idle: bool = False
    exclude_host: bool = False
    exclude_guest: bool = False
    exclude_callchain_kernel: bool = False
    exclude_callchain_user: bool = False
    disabled: bool = False
    pinned: bool = False
    exclusive: bool = False
    enable_on_exec: bool = False
    precise_ip: int = 0
    sample_type: int = 0
    wakeup_events: int = 0
    config1: int = 0
    config2: int = 0

    def __post_init__(self) -> None:
        _args.u32(self.type, "type")
        _args.u64(self.config, "config")
        if self.period is not None and self.frequency is not None:
            raise ValueError("give period or frequency, not both")
        if self.period is not None:
            _args.in_range(self.period, "period", 1, _args.U64_MAX)
        if self.frequency is not None:
            _args.in_range(self.frequency, "frequency", 1, _args.U64_MAX)
        _args.in_range(self.precise_ip, "precise_ip", 0, 3)
        _args.u64(self.sample_type, "sample_type")
        _args.u32(self.wakeup_events, "wakeup_events")
        _args.u64(self.config1, "config1")
        _args.u64(self.config2, "config2")
        for flag in _FLAGS:
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be a bool, not {type(getattr(self, flag)).__name__}")

    @classmethod
    def named(cls, name: str, **fields: Any) -> PerfEventAttr:
        """The generic event ``perf list`` calls ``name`` (``"cpu-clock"``, ``"task-clock"``,
        ``"page-faults"``, ``"cycles"``, ``"instructions"``...), with the other fields."""
        try:
            type_, config = EVENT_NAMES[name]
        except (KeyError, TypeError):
            raise ValueError(f"no generic perf event {name!r}; known: "
                             f"{', '.join(sorted(EVENT_NAMES))}") from None
        return cls(type_, int(config), **fields)

    @property
    def sampling(self) -> bool:
        """True when the event samples (``period`` or ``frequency``)."""
        return self.period is not None or self.frequency is not None

    def describe(self) -> str:
        """The event's name for messages: ``cpu-clock``, else ``type T config C``."""
        for name, (type_, config) in EVENT_NAMES.items():
            if (type_, config) == (self.type, self.config):
                return name
        return f"type {self.type} config {self.config:#x}"

    def to_c(self) -> structs.perf_event_attr:
        """The ``struct perf_event_attr`` the kernel is given."""
        attr = structs.perf_event_attr()
        attr.type = self.type
        attr.size = ctypes.sizeof(attr)
        attr.config = self.config
        if self.frequency is not None:
            attr.freq = 1
            attr.sample_freq = self.frequency
        elif self.period is not None:
            attr.sample_period = self.period
        attr.read_format = _READ_FORMAT
        for flag in _FLAGS:
            setattr(attr, flag, int(getattr(self, flag)))
        attr.precise_ip = self.precise_ip
        attr.sample_type = self.sample_type
        attr.wakeup_events = self.wakeup_events
        attr.config1 = self.config1
        attr.config2 = self.config2
        return attr


def _paranoid() -> str:
    try:
        return Path("/proc/sys/kernel/perf_event_paranoid").read_text().strip()
    except OSError:
        return "unknown"


def _where(pid: int, cpu: int) -> str:
    task = {-1: "every task", 0: "this thread"}.get(pid, f"pid {pid}")
    return f"{task} on {'every CPU' if cpu == -1 else f'cpu {cpu}'}"


def _open_error(err: int, attr: PerfEventAttr, pid: int, cpu: int) -> BpfError:
    what = f"perf_event_open of {attr.describe()} for {_where(pid, cpu)} failed"
    if err in (_errno.ENOENT, _errno.EOPNOTSUPP) and attr.type in _NO_PMU_TYPES:
        return NotSupportedError(f"{what}: no PMU here counts this event (a virtual machine "
                                 f"without a virtual PMU has no hardware events)", err)
    if err == _errno.EOPNOTSUPP:
        return NotSupportedError(f"{what}: the PMU cannot do what the attribute asks "
                                 f"(sampling, an exclusion, precise_ip)", err)
    if err == _errno.ENODEV and cpu >= 0:
        return BpfError(err, f"{what}: cpu {cpu} is offline or does not exist")
    if err in (_errno.EACCES, _errno.EPERM):
        return error_from_errno(err, f"{what} (kernel.perf_event_paranoid is {_paranoid()})",
                                _CAPS)
    return error_from_errno(err, what, _CAPS)


def open_event(attr: PerfEventAttr, *, pid: int = -1, cpu: int = -1,
               group_fd: int = -1) -> int:
    """A perf event fd (close-on-exec, the caller's) counting or sampling ``attr``.

    ``pid``: the task measured (-1: every task, which needs a ``cpu``; 0: the calling thread);
    ``cpu``: the CPU measured (-1: wherever the task runs, which needs a ``pid``).
    ``group_fd``: the leader of the group this event joins (-1: none).
    """
    _check_attr(attr)
    pid = _args.in_range(pid, "pid", -1, _args.INT_MAX)
    cpu = _args.in_range(cpu, "cpu", -1, _args.INT_MAX)
    group_fd = _args.in_range(group_fd, "group_fd", -1, _args.INT_MAX)
    if pid == -1 and cpu == -1:
        raise ValueError("a perf event measures one CPU (cpu >= 0), one task (pid >= 0) or "
                         "a task on one CPU; pid and cpu cannot both be -1")
    c_attr = attr.to_c()
    fd = syscall(number("perf_event_open"), ctypes.byref(c_attr), ctypes.c_int(pid),
                 ctypes.c_int(cpu), ctypes.c_int(group_fd),
                 ctypes.c_ulong(PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        raise _open_error(-fd, attr, pid, cpu)
    return fd


def online_cpus() -> list[int]:
    """The online CPUs, from ``/sys/devices/system/cpu/online`` (``0-3,6``)."""
    try:
        text = Path("/sys/devices/system/cpu/online").read_text().strip()
    except OSError:
        return sorted(os.sched_getaffinity(0))
    cpus: list[int] = []
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


class CounterValue(NamedTuple):
    """A counter read from a perf event: its value and, in ns, how long the event was enabled
    and how long it really ran on the PMU (less when the PMU was shared: multiplexing)."""

    value: int
    time_enabled: int
    time_running: int

    @property
    def scaled(self) -> int:
        """The value extrapolated to the whole enabled time (``perf stat``'s estimate)."""
        if self.time_running in (0, self.time_enabled):
            return self.value
        return self.value * self.time_enabled // self.time_running


def read_counter(fd: int) -> CounterValue:
    """The counter of perf event ``fd`` (``read()``).  The times are 0 for an event opened
    without TOTAL_TIME_ENABLED/RUNNING (the ``open_tracepoint`` family)."""
    fd = _args.fd(fd, "fd")
    try:
        data = os.read(fd, 24)
    except OSError as exc:
        raise error_from_errno(exc.errno, f"cannot read perf event fd {fd}", _CAPS) from None
    if len(data) == 24:
        return CounterValue(*struct.unpack("=QQQ", data))
    if len(data) >= 8:
        return CounterValue(struct.unpack_from("=Q", data)[0], 0, 0)
    raise BpfError(_errno.EIO, f"perf event fd {fd} returned {len(data)} bytes, not a counter")


def enable(fd: int) -> None:
    """Start perf event ``fd`` (``PERF_EVENT_IOC_ENABLE``)."""
    _ioctl(_args.fd(fd, "fd"), PERF_EVENT_IOC_ENABLE, 0, f"cannot enable perf event fd {fd}")


def disable(fd: int) -> None:
    """Stop perf event ``fd`` (``PERF_EVENT_IOC_DISABLE``); its counter keeps its value."""
    _ioctl(_args.fd(fd, "fd"), PERF_EVENT_IOC_DISABLE, 0, f"cannot disable perf event fd {fd}")


def reset(fd: int) -> None:
    """Set perf event ``fd``'s counter to 0 (``PERF_EVENT_IOC_RESET``)."""
    _ioctl(_args.fd(fd, "fd"), PERF_EVENT_IOC_RESET, 0, f"cannot reset perf event fd {fd}")


class PerfEventSet(Handle):
    """One perf event per CPU, all of one :class:`PerfEventAttr` (from :func:`open_per_cpu`):
    owns their fds.  Read them as counters, or hand them to a program with :meth:`attach`."""

    _what = "perf event set"

    def __init__(self, attr: PerfEventAttr, fds: dict[int, int], pid: int) -> None:
        super().__init__()
        self.attr = attr
        self.pid = pid
        self._fds = dict(fds)
        owned = self._fds  # attach() empties it: the links own those fds then

        def release() -> None:
            for fd in owned.values():
                try:
                    os.close(fd)
                except OSError:
                    pass
            owned.clear()

        self._own(release, f"{attr.describe()} events on {len(fds)} CPUs")

    @property
    def fds(self) -> dict[int, int]:
        """CPU -> perf event fd (still owned by this set)."""
        self._check()
        return dict(self._fds)

    @property
    def cpus(self) -> list[int]:
        """The CPUs measured."""
        return sorted(self.fds)

    def __len__(self) -> int:
        return len(self.fds)

    def read(self) -> dict[int, CounterValue]:
        """CPU -> the counter of that CPU's event."""
        return {cpu: read_counter(fd) for cpu, fd in self.fds.items()}

    def total(self) -> int:
        """The sum of every CPU's :attr:`CounterValue.scaled`."""
        return sum(value.scaled for value in self.read().values())

    def enable(self) -> None:
        """Start every event."""
        for fd in self.fds.values():
            enable(fd)

    def disable(self) -> None:
        """Stop every event."""
        for fd in self.fds.values():
            disable(fd)

    def reset(self) -> None:
        """Set every counter to 0."""
        for fd in self.fds.values():
            reset(fd)

    def attach(self, prog_fd: int, *, cookie: int = 0) -> PerfEventLinks:
        """Attach program ``prog_fd`` to every event (:func:`attach`) and enable them.

        The events move to the returned :class:`PerfEventLinks`: this set is closed
        afterwards, also when an attach fails (the events are closed then; a bad argument
        leaves the set as it was)."""
        self._check()
        prog_fd = _args.fd(prog_fd, "prog_fd")
        cookie = _args.u64(cookie, "cookie")
        _require_sampling(self.attr)
        fds = self.fds
        links: dict[int, PerfEventLink] = {}
        try:
            for cpu, fd in fds.items():
                links[cpu] = attach(prog_fd, fd, cookie=cookie)
                del self._fds[cpu]  # the link owns it now
        except BaseException:
            for link in links.values():
                link.close()
            self.close()
            raise
        self.close()
        return PerfEventLinks(links, f"{self.attr.describe()} on {len(links)} CPUs")

    def __repr__(self) -> str:
        if self._closed:
            return "<PerfEventSet closed>"
        return f"<PerfEventSet {self.attr.describe()} on cpus {self.cpus}>"


def open_per_cpu(attr: PerfEventAttr, *, pid: int = -1,
                 cpus: list[int] | None = None) -> PerfEventSet:
    """One event of ``attr`` on each online CPU (or each of ``cpus``), for every task (or
    task ``pid``): what ``perf record -a`` and the profile tools open.

    A CPU that goes offline while they are opened is left out (ENODEV), unless ``cpus``
    names it.  On any other failure the events opened so far are closed.
    """
    _check_attr(attr)
    pid = _args.in_range(pid, "pid", -1, _args.INT_MAX)
    if cpus is not None and not isinstance(cpus, (list, tuple, range)):
        raise TypeError(f"cpus must be a list of CPU numbers, not {type(cpus).__name__}")
    chosen = online_cpus() if cpus is None else [_args.in_range(c, "cpu", 0, _args.INT_MAX)
                                                 for c in cpus]
    fds: dict[int, int] = {}
    try:
        for cpu in chosen:
            try:
                fds[cpu] = open_event(attr, pid=pid, cpu=cpu)
            except BpfError as exc:
                if cpus is None and exc.errno == _errno.ENODEV:
                    continue  # went offline meanwhile
                raise
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    if not fds:
        raise BpfError(_errno.ENODEV, f"no online CPU to open {attr.describe()} on")
    return PerfEventSet(attr, fds, pid)


def _check_attr(attr: PerfEventAttr) -> None:
    if not isinstance(attr, PerfEventAttr):
        raise TypeError(f"attr must be a PerfEventAttr, not {type(attr).__name__}")


def _require_sampling(attr: PerfEventAttr) -> None:
    _check_attr(attr)
    if not attr.sampling and attr.type != PerfType.TRACEPOINT:
        raise ValueError(f"a program attached to {attr.describe()} runs once per sample, and "
                         "this attribute never samples: give it a period or a frequency")


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

    def read(self) -> CounterValue:
        """The perf event's counter (:func:`read_counter`)."""
        self._check()
        return read_counter(self._perf_fd)

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


def attach_event(prog_fd: int, attr: PerfEventAttr, *, pid: int = -1, cpu: int = -1,
                 cookie: int = 0) -> PerfEventLink:
    """Open one event of ``attr`` (:func:`open_event`) and attach ``prog_fd`` (a PERF_EVENT
    program) to it; ``attr`` must sample (``period`` or ``frequency``)."""
    _require_sampling(attr)
    return _attach_new(prog_fd, open_event(attr, pid=pid, cpu=cpu), cookie)


def attach_per_cpu(prog_fd: int, attr: PerfEventAttr, *, pid: int = -1,
                   cpus: list[int] | None = None, cookie: int = 0) -> PerfEventLinks:
    """Sample every online CPU (or ``cpus``) with ``attr`` and attach ``prog_fd`` (a
    PERF_EVENT program) to each event: the profile tools' loop.  ``pid`` limits the samples to
    one task.  Closing the result detaches the program everywhere.

    ::

        attr = perf_event.PerfEventAttr.named("cpu-clock", frequency=99)
        with perf_event.attach_per_cpu(obj.programs["do_sample"].fd, attr) as links:
            ...
    """
    _require_sampling(attr)
    prog_fd = _args.fd(prog_fd, "prog_fd")
    cookie = _args.u64(cookie, "cookie")
    return open_per_cpu(attr, pid=pid, cpus=cpus).attach(prog_fd, cookie=cookie)


class PerfEventLinks(Handle):
    """One program attached to one perf event per CPU (:func:`attach_per_cpu`); ``close()``
    (or ``detach()``) detaches it from all of them."""

    _what = "perf event attachments"

    def __init__(self, links: dict[int, PerfEventLink], what: str) -> None:
        super().__init__()
        self._links = dict(links)
        owned = list(self._links.values())

        def release() -> None:
            for link in owned:
                link.close()

        self._own(release, f"perf event attachments ({what})")

    @property
    def links(self) -> dict[int, PerfEventLink]:
        """CPU -> the attachment on that CPU."""
        self._check()
        return dict(self._links)

    @property
    def cpus(self) -> list[int]:
        """The CPUs sampled."""
        return sorted(self.links)

    def __len__(self) -> int:
        return len(self.links)

    def __iter__(self) -> Iterator[PerfEventLink]:
        return iter(self.links.values())

    def read(self) -> dict[int, CounterValue]:
        """CPU -> that CPU's counter."""
        return {cpu: link.read() for cpu, link in self.links.items()}

    def detach(self) -> None:
        """Detach the program everywhere: the same as :meth:`close`."""
        self.close()

    def __repr__(self) -> str:
        if self._closed:
            return "<PerfEventLinks closed>"
        return f"<PerfEventLinks on cpus {self.cpus}>"
