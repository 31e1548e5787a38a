"""The system calls made through libc's ``syscall()``: their numbers per architecture, and the call.

Numbers from the kernel's tables (``arch/x86/entry/syscalls/syscall_64.tbl``,
``include/uapi/asm-generic/unistd.h`` for aarch64 and riscv64, and each other architecture's
own).  pylibbpf's own call (``perf_event_open``) is listed for every architecture it knows;
compat's calls only for the ones compat supports.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import platform
from typing import Any

from ..errors import NotSupportedError
from .libc import libc

SAME_EVERYWHERE = {"pidfd_getfd": 438}
"""Calls added since Linux 5.1, numbered alike on every architecture (alpha aside)."""

_ASM_GENERIC = {"bpf": 280, "perf_event_open": 241, "process_vm_readv": 270,
                "process_vm_writev": 271, "seccomp": 277, **SAME_EVERYWHERE}

NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {"bpf": 321, "perf_event_open": 298, "process_vm_readv": 310,
               "process_vm_writev": 311, "seccomp": 317, **SAME_EVERYWHERE},
    "aarch64": _ASM_GENERIC,
    "riscv64": _ASM_GENERIC,
    "loongarch64": {"perf_event_open": 241},
    "i386": {"perf_event_open": 336},
    "armv7l": {"perf_event_open": 364},
    "ppc64le": {"perf_event_open": 319},
    "s390x": {"perf_event_open": 331},
}
"""``NUMBERS[machine][call]``, ``machine`` as ``platform.machine()`` names it (or an alias)."""

_ALIASES = {"arm64": "aarch64", "i686": "i386", "armv6l": "armv7l", "ppc64": "ppc64le"}


def number(name: str) -> int:
    """The number of system call ``name`` on this machine; ``NotSupportedError`` (ENOSYS) when
    it is not in :data:`NUMBERS`."""
    machine = platform.machine()
    try:
        return NUMBERS[_ALIASES.get(machine, machine)][name]
    except KeyError:
        raise NotSupportedError(f"pylibbpf does not know {name}'s number on {machine}",
                                _errno.ENOSYS) from None


def syscall(nr: int, *args: Any) -> int:
    """``syscall(nr, *args)``, each argument a ctypes object of the C type the call takes: its
    result, or ``-errno`` when it failed."""
    result = int(libc().syscall(ctypes.c_long(nr), *args))
    if result >= 0:
        return result
    return -(ctypes.get_errno() or _errno.EINVAL)  # a failure never reads as a success
