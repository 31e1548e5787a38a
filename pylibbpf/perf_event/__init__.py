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

from ._open import (
    PERF_EVENT_IOC_DISABLE as PERF_EVENT_IOC_DISABLE,
)
from ._open import (
    PERF_EVENT_IOC_ENABLE as PERF_EVENT_IOC_ENABLE,
)
from ._open import (
    PERF_EVENT_IOC_RESET as PERF_EVENT_IOC_RESET,
)
from ._open import (
    PERF_EVENT_IOC_SET_BPF as PERF_EVENT_IOC_SET_BPF,
)
from ._open import (
    open_cpu_clock,
    open_kprobe,
    open_tracepoint,
    open_uprobe,
    pmu_available,
    tracefs_root,
    tracepoint_id,
)
from .attr import HardwareEvent, PerfEventAttr, PerfType, SoftwareEvent
from .counters import CounterValue, disable, enable, online_cpus, open_event, read_counter, reset
from .links import (
    PerfEventLink,
    attach,
    attach_cpu_clock,
    attach_event,
    attach_kprobe,
    attach_tracepoint,
    attach_uprobe,
)
from .per_cpu import PerfEventLinks, PerfEventSet, attach_per_cpu, open_per_cpu

__all__ = [
    "CounterValue", "HardwareEvent", "PerfEventAttr", "PerfEventLink", "PerfEventLinks",
    "PerfEventSet", "PerfType", "SoftwareEvent", "attach", "attach_cpu_clock", "attach_event",
    "attach_kprobe", "attach_per_cpu", "attach_tracepoint", "attach_uprobe", "disable", "enable",
    "online_cpus", "open_cpu_clock", "open_event", "open_kprobe", "open_per_cpu",
    "open_tracepoint", "open_uprobe", "pmu_available", "read_counter", "reset", "tracefs_root",
    "tracepoint_id",
]
