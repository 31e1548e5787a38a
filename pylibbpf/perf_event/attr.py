"""Any perf event: the event types and ids, and :class:`PerfEventAttr` (what
``struct perf_event_attr`` holds that matters to a BPF tool)."""

from __future__ import annotations

import ctypes
import dataclasses
import enum
from typing import Any

from .. import _args
from .._ffi import structs

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
