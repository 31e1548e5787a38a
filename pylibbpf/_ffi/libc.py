"""libc: every function pylibbpf and compat call in it, as a signature table like libbpf's.

``SIGNATURES[name] = (restype, argtypes)``; ``argtypes`` ``None`` leaves a variadic function
undeclared, so its callers pass ctypes objects of the C types the call takes.  The library is
opened with ``use_errno``: read a failure's errno with :func:`ctypes.get_errno` in the same
thread, right after the call.

libc is opened when this module is imported rather than on the first call, so that a child
forked from a threaded process (fork tests, compat run's supervisor) never has to ``dlopen``.
"""

from __future__ import annotations

import ctypes
import os
from ctypes import c_char_p, c_int, c_long, c_size_t, c_uint32, c_ulong, c_void_p
from typing import Any

SIGNATURES: dict[str, tuple[Any, tuple[Any, ...] | None]] = {
    "syscall": (c_long, None),
    "ioctl": (c_int, (c_int, c_ulong, c_void_p)),
    "capget": (c_int, (c_void_p, c_void_p)),
    "capset": (c_int, (c_void_p, c_void_p)),
    "statfs": (c_int, (c_char_p, c_void_p)),
    "vsnprintf": (c_int, (c_char_p, c_size_t, c_char_p, c_void_p)),
    # the print callback's level gate (pylibbpf._ffi.printgate)
    "mmap": (c_void_p, (c_void_p, c_size_t, c_int, c_int, c_int, c_long)),
    "mprotect": (c_int, (c_void_p, c_size_t, c_int)),
    "munmap": (c_int, (c_void_p, c_size_t)),
    # socket filters (pylibbpf.socket_filter) and tc's network namespaces (pylibbpf.tc)
    "setsockopt": (c_int, (c_int, c_int, c_int, c_void_p, c_uint32)),
    "setns": (c_int, (c_int, c_int)),
}


def _load() -> Any:
    cdll = ctypes.CDLL(None, use_errno=True)
    for name, (restype, argtypes) in SIGNATURES.items():
        func = getattr(cdll, name)
        func.restype = restype
        if argtypes is not None:
            func.argtypes = list(argtypes)
    return cdll


_libc = _load()


def libc() -> Any:
    """libc with :data:`SIGNATURES` applied."""
    return _libc


BPF_FS_MAGIC = 0xCAFE4A11
"""``statfs.f_type`` of a BPF filesystem (bpffs, ``linux/magic.h``)."""

# struct statfs is 120 bytes on 64-bit Linux (84 on 32-bit); f_type comes first everywhere, as a
# long, except on s390x where it is an unsigned int.
_STATFS_SIZE = 256
_F_TYPE = ctypes.c_uint32 if os.uname().machine == "s390x" else ctypes.c_long


def fs_type(path: bytes) -> int | None:
    """``statfs(path).f_type``, or ``None`` when ``path`` cannot be examined."""
    buf = ctypes.create_string_buffer(_STATFS_SIZE)
    if _libc.statfs(path, buf) != 0:
        return None
    return int(_F_TYPE.from_buffer(buf).value) & 0xFFFFFFFF
