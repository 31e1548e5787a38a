"""Opening any event, per CPU or per task, and reading it as a counter: :func:`open_event`,
:func:`open_per_cpu` (a :class:`PerfEventSet`), :func:`read_counter`."""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import struct
from pathlib import Path
from typing import NamedTuple

from .. import _args
from .._ffi.syscalls import number, syscall
from ..errors import BpfError, NotSupportedError, error_from_errno
from ._open import (
    _CAPS,
    PERF_EVENT_IOC_DISABLE,
    PERF_EVENT_IOC_ENABLE,
    PERF_EVENT_IOC_RESET,
    PERF_FLAG_FD_CLOEXEC,
    _ioctl,
)
from .attr import _NO_PMU_TYPES, PerfEventAttr, PerfType


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


def _check_attr(attr: PerfEventAttr) -> None:
    if not isinstance(attr, PerfEventAttr):
        raise TypeError(f"attr must be a PerfEventAttr, not {type(attr).__name__}")


def _require_sampling(attr: PerfEventAttr) -> None:
    _check_attr(attr)
    if not attr.sampling and attr.type != PerfType.TRACEPOINT:
        raise ValueError(f"a program attached to {attr.describe()} runs once per sample, and "
                         "this attribute never samples: give it a period or a frequency")
