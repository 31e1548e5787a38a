"""Deciding each trapped call with the *caller's* privileges, as the kernel would.

The supervisor is root; the program may not be.  Whatever the supervisor executes for the
program must therefore first pass the checks the kernel would have applied to the program's own
calls (the Linux calls compat translates the legacy command into), answered with the kernel's
errno.  The rules, from ``kernel/bpf/syscall.c`` (``map_create``, ``bpf_prog_load``,
``bpf_token_capable``), ``include/linux/capability.h`` (``bpf_capable``, ``perfmon_capable``)
and ``kernel/events/core.c`` (``perf_event_open``), without a BPF token:

* a capability counts only in the initial user namespace (``capable()``), i.e. when the caller
  shares the supervisor's user namespace;  ``CAP_SYS_ADMIN`` stands in for ``CAP_BPF``,
  ``CAP_PERFMON`` and ``CAP_NET_ADMIN``;
* ``BPF_MAP_CREATE`` of HASH or ARRAY: ``EPERM`` when ``kernel.unprivileged_bpf_disabled`` is
  not 0 and the caller lacks ``CAP_BPF``; these two types need nothing when it is 0.  The
  kernel's sanity checks of the sizes (``map_alloc_check``) come first;
* ``BPF_PROG_LOAD``: ``EPERM`` without ``CAP_BPF`` (any type but SOCKET_FILTER and CGROUP_SKB,
  which alone pass with the sysctl at 0), without ``CAP_PERFMON`` for the tracing types
  (KPROBE, TRACEPOINT, PERF_EVENT, RAW_TRACEPOINT, TRACING, LSM, STRUCT_OPS, EXT...) and
  without ``CAP_NET_ADMIN`` for the networking ones;
* element commands on a map fd the caller holds: nothing since Linux 6.5 (the fd is the
  permission).  Before, ``__sys_bpf`` refused *every* command with ``EPERM`` when the sysctl
  was set and the caller lacked ``CAP_BPF`` (:func:`entry_check` finds out which kernel runs);
* ``perf_event_open`` (only for a libbpf object's program, which attaches without a new load):
  ``EACCES`` for a kprobe without ``CAP_PERFMON``, and for a CPU-wide tracepoint when
  ``kernel.perf_event_paranoid`` > 0 without it.

Credentials are read from ``/proc/<tgid>/task/<tid>/status`` of the calling thread while its
call is pending; the caller re-checks ``SECCOMP_IOCTL_NOTIF_ID_VALID`` afterwards, so the thread
(whose credentials cannot change while it is blocked in the call) was the caller.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pylibbpf._ffi.libc import libc
from pylibbpf._ffi.syscalls import syscall

__all__ = ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON", "CAP_SYS_ADMIN", "Credentials",
           "NET_ADMIN_PROG_TYPES", "PERFMON_PROG_TYPES", "entry_check", "read_credentials",
           "sysctl"]

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

_T = TypeVar("_T")

BPF_PROG_TYPE_SOCKET_FILTER = 1
BPF_PROG_TYPE_CGROUP_SKB = 8
# is_perfmon_prog_type(): KPROBE, TRACEPOINT, PERF_EVENT, RAW_TRACEPOINT,
# RAW_TRACEPOINT_WRITABLE, TRACING, STRUCT_OPS, EXT, LSM
PERFMON_PROG_TYPES = frozenset({2, 5, 7, 17, 24, 26, 27, 28, 29})
# is_net_admin_prog_type(): SCHED_CLS, SCHED_ACT, XDP, CGROUP_SOCK, LWT_IN/OUT/XMIT, SOCK_OPS,
# SK_SKB, CGROUP_DEVICE, SK_MSG, LWT_SEG6LOCAL, LIRC_MODE2, FLOW_DISSECTOR, CGROUP_SYSCTL,
# CGROUP_SOCKOPT, CGROUP_SOCK_ADDR, EXT, NETFILTER
NET_ADMIN_PROG_TYPES = frozenset({3, 4, 6, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 22, 23,
                                  25, 28, 32})


def sysctl(name: str, default: int = 0) -> int:
    """An integer under ``/proc/sys/kernel`` (``default`` when it cannot be read)."""
    try:
        with open(f"/proc/sys/kernel/{name}", encoding="ascii") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def _cap(bit: int) -> str:
    return {CAP_NET_ADMIN: "CAP_NET_ADMIN", CAP_SYS_ADMIN: "CAP_SYS_ADMIN",
            CAP_PERFMON: "CAP_PERFMON", CAP_BPF: "CAP_BPF"}.get(bit, f"capability {bit}")


@dataclass(frozen=True)
class Credentials:
    """What the kernel's ``capable()`` would see for one calling thread: its effective
    capabilities, counted only when it shares the supervisor's (initial) user namespace."""

    tid: int
    uid: int
    cap_eff: int
    same_userns: bool = True

    def capable(self, bit: int) -> bool:
        """``capable(bit)`` in the initial user namespace."""
        return self.same_userns and bool(self.cap_eff >> bit & 1)

    def bpf_token_capable(self, bit: int) -> bool:
        """The kernel's ``bpf_token_capable(NULL, bit)``: the capability, or ``CAP_SYS_ADMIN``
        in its place (which also gives ``bpf_capable()`` and ``perfmon_capable()``)."""
        return self.capable(bit) or self.capable(CAP_SYS_ADMIN)

    def describe(self) -> str:
        """``uid 65534, CapEff 0x0`` (for messages)."""
        ns = "" if self.same_userns else ", in another user namespace"
        return f"uid {self.uid}, CapEff {self.cap_eff:#x}{ns}"

    def _refuse(self, what: str, bit: int, err: int = _errno.EPERM) -> OSError:
        return OSError(err, f"{what} needs {_cap(bit)} and the caller ({self.describe()}) "
                       "lacks it; the kernel would refuse it")

    # ------------------------------------------------------------ the kernel's rules

    def check_entry(self, disabled: int) -> None:
        """Kernels before 6.5: ``__sys_bpf`` refuses (every command before 5.19; map creation
        and program loads up to 6.4) first when ``unprivileged_bpf_disabled`` is set and the
        caller lacks ``CAP_BPF``."""
        if disabled and not self.bpf_token_capable(CAP_BPF):
            raise self._refuse(f"bpf() with kernel.unprivileged_bpf_disabled={disabled}",
                               CAP_BPF)

    def check_map_create(self, disabled: int) -> None:
        """``map_create`` for the unprivileged types (HASH, ARRAY)."""
        if disabled and not self.bpf_token_capable(CAP_BPF):
            raise self._refuse(f"BPF_MAP_CREATE with kernel.unprivileged_bpf_disabled="
                               f"{disabled}", CAP_BPF)

    def check_prog_load(self, prog_type: int, disabled: int) -> None:
        """``bpf_prog_load``'s capability checks for ``prog_type``, in the kernel's order."""
        bpf = self.bpf_token_capable(CAP_BPF)
        if disabled and not bpf:
            raise self._refuse(f"BPF_PROG_LOAD with kernel.unprivileged_bpf_disabled="
                               f"{disabled}", CAP_BPF)
        if prog_type not in (BPF_PROG_TYPE_SOCKET_FILTER, BPF_PROG_TYPE_CGROUP_SKB) \
                and not bpf:
            raise self._refuse(f"BPF_PROG_LOAD of program type {prog_type}", CAP_BPF)
        if prog_type in NET_ADMIN_PROG_TYPES and not self.bpf_token_capable(CAP_NET_ADMIN):
            raise self._refuse(f"BPF_PROG_LOAD of program type {prog_type}", CAP_NET_ADMIN)
        if prog_type in PERFMON_PROG_TYPES and not self.bpf_token_capable(CAP_PERFMON):
            raise self._refuse(f"BPF_PROG_LOAD of program type {prog_type}", CAP_PERFMON)

    def check_perf_event_open(self, kprobe: bool, paranoid: int) -> None:
        """``perf_event_open`` of a kprobe (the kprobe PMU) or of a CPU-wide tracepoint."""
        if perf_restricted(paranoid) and not self.capable(CAP_SYS_ADMIN):
            raise self._refuse(f"perf_event_open with kernel.perf_event_paranoid={paranoid} "
                               "(this kernel's restriction, as Debian's)", CAP_SYS_ADMIN,
                               _errno.EACCES)
        if self.bpf_token_capable(CAP_PERFMON):
            return
        if kprobe:
            raise self._refuse("perf_event_open of a kprobe", CAP_PERFMON, _errno.EACCES)
        if paranoid > 0:
            raise self._refuse(f"a CPU-wide perf_event_open with kernel.perf_event_paranoid="
                               f"{paranoid}", CAP_PERFMON, _errno.EACCES)


def _userns(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def read_credentials(tgid: int, tid: int) -> Credentials:
    """The calling thread's credentials now; ``OSError(ESRCH)`` when it is gone.  Read them
    while the call is pending, then confirm it still is (``NOTIF_ID_VALID``)."""
    uid = cap_eff = -1
    try:
        with open(f"/proc/{tgid}/task/{tid}/status", encoding="ascii",
                  errors="replace") as status:
            for line in status:
                if line.startswith("Uid:"):
                    uid = int(line.split()[2])  # the effective uid
                elif line.startswith("CapEff:"):
                    cap_eff = int(line.split()[1], 16)
        same = _userns(f"/proc/{tgid}/task/{tid}/ns/user") == _userns("/proc/self/ns/user")
    except (OSError, ValueError, IndexError):
        raise OSError(_errno.ESRCH, f"thread {tid} is gone") from None
    if cap_eff < 0:
        raise OSError(_errno.ESRCH, f"thread {tid} has no CapEff line")
    return Credentials(tid, uid, cap_eff, same)


# ---------------------------------------------------------------- which kernel is this

# How this kernel's bpf() entry treats an unprivileged caller while unprivileged_bpf_disabled is
# set: EVERY command is refused first (Linux before 5.19), only BPF_MAP_CREATE and BPF_PROG_LOAD
# are (5.19 to 6.4), or NONE is (6.5 on: map_create and bpf_prog_load check it after some of
# their own validation).
EVERY, CREATE_AND_LOAD, NONE = "every command", "map create and program load", "none"
_ENTRY_CHECK: str | None = None
_ENTRY_LOCK = threading.Lock()


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_CAP_V3 = 0x20080522


def _with_effective_caps(keep: int, fn: Callable[[], _T]) -> _T | None:
    """``fn()`` in a throwaway thread whose *effective* capabilities are lowered to ``keep``
    (a mask; the permitted set stays, and credentials are per thread); ``None`` when the
    thread could not lower them."""
    result: list[_T] = []

    def run() -> None:
        header = _CapHeader(_CAP_V3, 0)
        saved = (_CapData * 2)()
        if libc().capget(ctypes.byref(header), saved) != 0:
            return
        lowered = (_CapData * 2)()
        for i in range(2):
            lowered[i].permitted = saved[i].permitted
            lowered[i].inheritable = saved[i].inheritable
            lowered[i].effective = saved[i].permitted & (keep >> (32 * i)) & 0xFFFFFFFF
        if libc().capset(ctypes.byref(header), lowered) != 0:
            return
        try:
            result.append(fn())
        finally:
            libc().capset(ctypes.byref(header), saved)

    thread = threading.Thread(target=run, name="compat-privilege-probe", daemon=True)
    thread.start()
    thread.join()
    return result[0] if result else None


def _probe_entry_check(nr_bpf: int) -> str:
    """Without effective capabilities, make two calls no kernel can accept:
    ``BPF_MAP_LOOKUP_ELEM`` on fd -1 (EPERM: every command is checked at entry, else EBADF) and
    ``BPF_MAP_CREATE`` of map type 0 (EPERM: creation is checked at entry, else EINVAL)."""

    def bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
        rc = syscall(nr_bpf, ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr)))
        return -rc if rc < 0 else 0

    def probe() -> str:
        lookup = ctypes.create_string_buffer(32)
        ctypes.memmove(lookup, (ctypes.c_uint32 * 1)(0xFFFFFFFF), 4)
        every = bpf(1, lookup) == _errno.EPERM  # BPF_MAP_LOOKUP_ELEM
        create = bpf(0, ctypes.create_string_buffer(72)) == _errno.EPERM  # BPF_MAP_CREATE
        return EVERY if every else CREATE_AND_LOAD if create else NONE

    return _with_effective_caps(0, probe) or NONE


def _probe_perf_restricted() -> bool:
    """Debian's kernels carry a patch that makes ``perf_event_paranoid`` 3 (their default)
    refuse every ``perf_event_open`` without ``CAP_SYS_ADMIN`` (EACCES), where mainline
    treats 3 as 2 and ``CAP_PERFMON`` suffices.  Holding only ``CAP_PERFMON``, open a CPU-wide
    clock event: EACCES means this kernel restricts."""

    def probe() -> bool:
        from pylibbpf import BpfError, perf_event

        try:
            os.close(perf_event.open_cpu_clock(0, period_ns=1_000_000_000))
        except BpfError as exc:
            return exc.errno == _errno.EACCES
        return False

    return bool(_with_effective_caps(1 << CAP_PERFMON, probe))


_PERF_RESTRICTED: bool | None = None


def perf_restricted(paranoid: int) -> bool:
    """Does ``perf_event_paranoid`` (``paranoid``) refuse ``perf_event_open`` to every caller
    without ``CAP_SYS_ADMIN`` on this kernel?  Probed once, when the sysctl is above 2."""
    global _PERF_RESTRICTED
    if paranoid <= 2:
        return False
    with _ENTRY_LOCK:
        if _PERF_RESTRICTED is None:
            _PERF_RESTRICTED = _probe_perf_restricted()
        return _PERF_RESTRICTED


def entry_check(nr_bpf: int, disabled: int) -> str:
    """Which commands this kernel refuses an unprivileged caller at ``bpf()`` entry while
    ``unprivileged_bpf_disabled`` is set: :data:`EVERY`, :data:`CREATE_AND_LOAD` or
    :data:`NONE`.  Found out once, the first time it matters (the sysctl set); :data:`NONE`
    while the sysctl is 0, as the check then never applies."""
    global _ENTRY_CHECK
    if not disabled:
        return NONE
    with _ENTRY_LOCK:
        if _ENTRY_CHECK is None:
            _ENTRY_CHECK = _probe_entry_check(nr_bpf)
        return _ENTRY_CHECK
