"""What is legacy-specific about compat's kernel access: user pointers.

The legacy interface is a *syscall* interface whose attrs carry raw user pointers.  Memory a
legacy caller pointed at is read and written through ``process_vm_readv``/``process_vm_writev``
on our own pid: a bad pointer then gives EFAULT, as the legacy kernel answered, instead of a
segmentation fault.  Everything else (maps, program loads, perf events) goes through
:mod:`pylibbpf.lowlevel` and :mod:`pylibbpf.perf_event`.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os

from pylibbpf._ffi.syscalls import number, syscall


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def process_vm(pid: int, write: bool, address: int, buffer: ctypes.Array[ctypes.c_char],
               size: int) -> int:
    """``process_vm_readv``/``writev`` of ``size`` bytes between ``buffer`` and ``address`` in
    process ``pid``: the number of bytes moved, or ``-errno`` (never a fault of our own)."""
    local = _IoVec(ctypes.cast(buffer, ctypes.c_void_p), size)
    remote = _IoVec(address, size)
    call = "process_vm_writev" if write else "process_vm_readv"
    return syscall(number(call), ctypes.c_int(pid), ctypes.byref(local), ctypes.c_ulong(1),
                   ctypes.byref(remote), ctypes.c_ulong(1), ctypes.c_ulong(0))


def _transfer(call: str, address: int, buffer: ctypes.Array[ctypes.c_char], size: int) -> int:
    if address <= 0 or address >= 1 << 64:
        raise OSError(_errno.EFAULT, f"bad user pointer {address:#x}")
    write = call == "process_vm_writev"
    rc = process_vm(os.getpid(), write, address, buffer, size)
    if rc < 0:
        raise OSError(-rc, f"cannot {'write' if write else 'read'} {size} bytes at {address:#x}")
    return rc


def read_user(address: int, size: int) -> bytes:
    """Copy ``size`` bytes at ``address`` in this process; OSError(EFAULT) if unreadable."""
    if size == 0:
        return b""
    out = ctypes.create_string_buffer(size)
    done = _transfer("process_vm_readv", address, out, size)
    if done != size:
        raise OSError(_errno.EFAULT, f"only {done} of {size} bytes readable at {address:#x}")
    return out.raw


def write_user(address: int, data: bytes) -> None:
    """Copy ``data`` to ``address`` in this process; OSError(EFAULT) if not writable
    (read-only memory included, as ``copy_to_user`` in the kernel)."""
    if not data:
        return
    buf = ctypes.create_string_buffer(data, len(data))
    done = _transfer("process_vm_writev", address, buf, len(data))
    if done != len(data):
        raise OSError(_errno.EFAULT, f"only {done} of {len(data)} bytes writable at "
                      f"{address:#x}")


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
