"""The few libc functions pylibbpf calls itself, as a signature table like libbpf's."""

from __future__ import annotations

import ctypes
import os
from ctypes import c_char_p, c_int, c_void_p
from typing import Any

BPF_FS_MAGIC = 0xCAFE4A11
"""``statfs.f_type`` of a BPF filesystem (bpffs, ``linux/magic.h``)."""

SIGNATURES: dict[str, tuple[Any, tuple[Any, ...]]] = {
    "statfs": (c_int, (c_char_p, c_void_p)),
}

# struct statfs is 120 bytes on 64-bit Linux (84 on 32-bit); f_type comes first everywhere, as a
# long, except on s390x where it is an unsigned int.
_STATFS_SIZE = 256
_F_TYPE = ctypes.c_uint32 if os.uname().machine == "s390x" else ctypes.c_long

_libc: Any = None


def libc() -> Any:
    """libc with :data:`SIGNATURES` applied (loaded on first use)."""
    global _libc
    if _libc is None:
        cdll = ctypes.CDLL(None, use_errno=True)
        for name, (restype, argtypes) in SIGNATURES.items():
            func = getattr(cdll, name)
            func.restype, func.argtypes = restype, list(argtypes)
        _libc = cdll
    return _libc


def fs_type(path: bytes) -> int | None:
    """``statfs(path).f_type``, or ``None`` when ``path`` cannot be examined."""
    buf = ctypes.create_string_buffer(_STATFS_SIZE)
    if libc().statfs(path, buf) != 0:
        return None
    return int(_F_TYPE.from_buffer(buf).value) & 0xFFFFFFFF
