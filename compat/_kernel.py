"""Raw system calls compat needs: ``bpf()``, ``perf_event_open()``, and safe user-memory reads.

pylibbpf wraps libbpf's object API; the legacy interface is a *syscall* interface whose attrs
carry raw user pointers, so compat talks to the kernel directly here.  Reading memory a legacy
caller pointed at goes through ``process_vm_readv`` on our own pid: a bad pointer then gives
EFAULT instead of a segmentation fault.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import platform
import struct
from functools import cache

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

_SYSCALL_NUMBERS = {
    "x86_64": {"bpf": 321, "perf_event_open": 298, "process_vm_readv": 310},
    "aarch64": {"bpf": 280, "perf_event_open": 241, "process_vm_readv": 270},
    "riscv64": {"bpf": 280, "perf_event_open": 241, "process_vm_readv": 270},
}

# Linux bpf() commands and sizes compat uses.
BPF_MAP_CREATE, BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM = 0, 1, 2
BPF_MAP_DELETE_ELEM, BPF_MAP_GET_NEXT_KEY, BPF_PROG_LOAD = 3, 4, 5
BPF_MAP_FREEZE = 22
BPF_OBJ_GET_INFO_BY_FD = 15
LINUX_ATTR_SIZE = 144

PERF_TYPE_TRACEPOINT = 2
PERF_FLAG_FD_CLOEXEC = 8
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_SET_BPF = 0x40042408
_PERF_ATTR_SIZE = 128


def _nr(name: str) -> int:
    machine = platform.machine()
    try:
        return _SYSCALL_NUMBERS[machine][name]
    except KeyError:
        raise OSError(_errno.ENOSYS, f"compat does not know the {name} syscall number on "
                      f"{machine}") from None


def bpf(cmd: int, attr: ctypes.Array[ctypes.c_char] | bytearray, size: int | None = None) -> int:
    """Call ``bpf(cmd, attr, size)``; returns the result or ``-errno`` (never raises)."""
    if isinstance(attr, bytearray):
        buf = (ctypes.c_char * len(attr)).from_buffer(attr)
    else:
        buf = attr
    length = ctypes.sizeof(buf) if size is None else size
    rc = _libc.syscall(ctypes.c_long(_nr("bpf")), ctypes.c_long(cmd), buf, ctypes.c_ulong(length))
    if rc < 0:
        return -ctypes.get_errno()
    return int(rc)


def perf_event_open(attr: bytes, pid: int, cpu: int, group_fd: int, flags: int) -> int:
    """Call ``perf_event_open``; returns an fd or ``-errno``."""
    buf = ctypes.create_string_buffer(attr, len(attr))
    rc = _libc.syscall(ctypes.c_long(_nr("perf_event_open")), buf, ctypes.c_int(pid),
                       ctypes.c_int(cpu), ctypes.c_int(group_fd), ctypes.c_ulong(flags))
    if rc < 0:
        return -ctypes.get_errno()
    return int(rc)


def perf_attr(type_: int, config: int, config1: int = 0, config2: int = 0) -> bytes:
    """A ``struct perf_event_attr`` with ``sample_period = 1`` and ``wakeup_events = 1``."""
    buf = bytearray(_PERF_ATTR_SIZE)
    struct.pack_into("=IIQQ", buf, 0, type_, _PERF_ATTR_SIZE, config, 1)
    struct.pack_into("=I", buf, 48, 1)  # wakeup_events
    struct.pack_into("=QQ", buf, 56, config1, config2)
    return bytes(buf)


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def read_user(address: int, size: int) -> bytes:
    """Copy ``size`` bytes at ``address`` in this process; OSError(EFAULT) if unreadable."""
    if size == 0:
        return b""
    if address == 0 or address < 0 or address >= 1 << 64:
        raise OSError(_errno.EFAULT, f"bad user pointer {address:#x}")
    out = ctypes.create_string_buffer(size)
    local = _IoVec(ctypes.cast(out, ctypes.c_void_p), size)
    remote = _IoVec(address, size)
    rc = _libc.syscall(ctypes.c_long(_nr("process_vm_readv")), ctypes.c_int(os.getpid()),
                       ctypes.byref(local), ctypes.c_ulong(1), ctypes.byref(remote),
                       ctypes.c_ulong(1), ctypes.c_ulong(0))
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot read {size} bytes at {address:#x}")
    if rc != size:
        raise OSError(_errno.EFAULT, f"only {rc} of {size} bytes readable at {address:#x}")
    return out.raw


def read_user_cstring(address: int, limit: int = 4096) -> bytes:
    """A NUL-terminated string at ``address`` (without the NUL); EFAULT if unreadable,
    ENAMETOOLONG when no NUL is found within ``limit`` bytes."""
    data = b""
    chunk = 64
    while len(data) < limit:
        take = min(chunk, limit - len(data))
        try:
            part = read_user(address + len(data), take)
        except OSError:
            # the string may end just before an unmapped page: read byte by byte there
            part = b""
            for i in range(take):
                try:
                    byte = read_user(address + len(data) + i, 1)
                except OSError:
                    if part and b"\0" in part:
                        break
                    raise OSError(_errno.EFAULT, f"unterminated string at {address:#x}") from None
                part += byte
                if byte == b"\0":
                    break
        end = part.find(b"\0")
        if end >= 0:
            return data + part[:end]
        data += part
    raise OSError(_errno.ENAMETOOLONG, f"string at {address:#x} is longer than {limit} bytes")


def map_info(fd: int) -> tuple[int, int, int, int, int] | int:
    """``(type, key_size, value_size, max_entries, id)`` of map ``fd``, or ``-errno``."""
    info = ctypes.create_string_buffer(88)
    attr = ctypes.create_string_buffer(LINUX_ATTR_SIZE)
    struct.pack_into("=IIQ", attr, 0, fd, len(info), ctypes.addressof(info))
    rc = bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    if rc < 0:
        return rc
    type_, id_, key_size, value_size, max_entries = struct.unpack_from("=IIIII", info.raw, 0)
    return type_, key_size, value_size, max_entries, id_


@cache
def kernel_version_code() -> int:
    """``LINUX_VERSION_CODE`` of the running kernel (kprobe programs on old kernels need it)."""
    parts = (platform.release().split("-")[0].split(".") + ["0", "0"])[:3]
    nums = [int("".join(ch for ch in p if ch.isdigit()) or 0) for p in parts]
    return (nums[0] << 16) + (nums[1] << 8) + min(nums[2], 255)
