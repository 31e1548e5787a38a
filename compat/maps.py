"""Legacy map calls (spec §5) on Linux maps.

The legacy kernel had HASH and ARRAY maps only, with a few rules of its own.  compat keeps the
legacy *behaviour* always (other types and ARRAY keys other than 4 bytes are refused; ARRAY
updates ignore their flags) and maps errnos where Linux and the legacy kernel differ only when
``strict_legacy_errors=True``:

=============================  ===============  ====================
failure                        Linux (default)  legacy (strict)
=============================  ===============  ====================
ARRAY update, index too large  E2BIG            ENOENT
HASH update, map full          E2BIG            ENOMEM
=============================  ===============  ====================
"""

from __future__ import annotations

import ctypes
import errno as _errno
import struct
import sys

from . import _kernel
from .errors import LegacyError

__all__ = [
    "BPF_MAP_TYPE_HASH", "BPF_MAP_TYPE_ARRAY", "BPF_ANY", "BPF_NOEXIST", "BPF_EXIST",
    "MissingKeyError", "bpf_create_map", "bpf_lookup_elem", "bpf_update_elem",
    "bpf_delete_elem", "bpf_get_next_key", "legacy_map_create", "legacy_map_elem_op",
]

BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
_LEGACY_TYPES = {BPF_MAP_TYPE_HASH: "HASH", BPF_MAP_TYPE_ARRAY: "ARRAY"}


class MissingKeyError(LegacyError, KeyError):
    """The key is not in the map (errno ENOENT); also a :class:`KeyError`."""

    def __str__(self) -> str:
        return LegacyError.__str__(self)


def legacy_map_create(map_type: int, key_size: int, value_size: int, max_entries: int) -> int:
    """Create a map by the legacy rules; returns an fd or ``-errno`` (never raises)."""
    if map_type not in _LEGACY_TYPES:
        return -_errno.EINVAL
    if map_type == BPF_MAP_TYPE_ARRAY and key_size != 4:
        return -_errno.EINVAL
    attr = ctypes.create_string_buffer(_kernel.LINUX_ATTR_SIZE)
    struct.pack_into("=IIII", attr, 0, map_type, key_size, value_size, max_entries)
    return _kernel.bpf(_kernel.BPF_MAP_CREATE, attr)


def _map_type(fd: int) -> int | None:
    info = _kernel.map_info(fd)
    return None if isinstance(info, int) else info[0]


def legacy_map_elem_op(cmd: int, fd: int, key: int, value: int, flags: int,
                       strict_legacy_errors: bool = False) -> int:
    """One element command on raw user pointers; returns 0 or ``-errno``.

    ``cmd`` is 1..4 (lookup, update, delete, get_next_key); ``value`` is the value or
    ``next_key`` pointer.  The kernel checks the pointers itself (a bad one gives EFAULT).
    """
    attr = ctypes.create_string_buffer(_kernel.LINUX_ATTR_SIZE)
    if cmd == _kernel.BPF_MAP_UPDATE_ELEM and flags not in (BPF_ANY, BPF_NOEXIST, BPF_EXIST):
        return -_errno.EINVAL
    struct.pack_into("=IIQQQ", attr, 0, fd & 0xFFFFFFFF, 0, key, value, flags)
    rc = _kernel.bpf(cmd, attr)
    if rc >= 0 or cmd != _kernel.BPF_MAP_UPDATE_ELEM:
        return rc
    if rc in (-_errno.EEXIST, -_errno.ENOENT) and flags != BPF_ANY:
        if _map_type(fd) == BPF_MAP_TYPE_ARRAY:  # legacy ARRAY updates ignore flags
            return legacy_map_elem_op(cmd, fd, key, value, BPF_ANY, strict_legacy_errors)
    if rc == -_errno.E2BIG and strict_legacy_errors:
        kind = _map_type(fd)
        if kind == BPF_MAP_TYPE_ARRAY:
            return -_errno.ENOENT
        if kind == BPF_MAP_TYPE_HASH:
            return -_errno.ENOMEM
    return rc


# ------------------------------------------------------------------------------ Python API

def _sizes(fd: int) -> tuple[int, int, int]:
    info = _kernel.map_info(fd)
    if isinstance(info, int):
        raise LegacyError(-info, f"fd {fd} is not a BPF map: pass the fd bpf_create_map "
                          "returned")
    return info[0], info[1], info[2]


def _encode(data: bytes | bytearray | memoryview | int, size: int, what: str) -> bytes:
    if isinstance(data, bool) or not isinstance(data, (bytes, bytearray, memoryview, int)):
        raise TypeError(f"{what} must be bytes or an int, not {type(data).__name__}")
    if isinstance(data, int):
        try:
            return data.to_bytes(size, sys.byteorder, signed=data < 0)
        except OverflowError:
            raise ValueError(f"{what} {data} does not fit in {size} bytes") from None
    raw = bytes(data)
    if len(raw) != size:
        raise ValueError(f"{what} is {len(raw)} bytes; this map's {what} size is {size}")
    return raw


def _raise(rc: int, what: str, fd: int, key: object = None) -> None:
    err = -rc
    hints = {
        _errno.EINVAL: "check the map fd, the flags (0, 1 or 2) and that ARRAY maps are not "
                       "deleted from",
        _errno.E2BIG: "the map is full or the index is past max_entries",
        _errno.ENOMEM: "the HASH map is full (legacy errno)",
        _errno.EEXIST: "the key exists and BPF_NOEXIST was given",
        _errno.EBADF: "the fd is not open",
    }
    text = f"legacy {what} on map fd {fd} failed"
    if err in hints:
        text += f": {hints[err]}"
    if err == _errno.ENOENT and key is not None:
        raise MissingKeyError(err, f"{text}: key {key!r} is not in the map "
                              "(ARRAY: index past max_entries)")
    raise LegacyError(err, text)


def bpf_create_map(map_type: int, key_size: int, value_size: int, max_entries: int) -> int:
    """Create a legacy map (HASH=1 or ARRAY=2, ARRAY keys 4 bytes); returns its fd.

    The fd is the caller's (legacy fds were never freed: close it with ``os.close`` when done).
    """
    fd = legacy_map_create(map_type, key_size, value_size, max_entries)
    if fd < 0:
        if map_type not in _LEGACY_TYPES:
            raise LegacyError(-fd, f"map type {map_type} is not a legacy map type: use "
                              "BPF_MAP_TYPE_HASH (1) or BPF_MAP_TYPE_ARRAY (2)")
        if map_type == BPF_MAP_TYPE_ARRAY and key_size != 4:
            raise LegacyError(-fd, f"ARRAY maps need key_size 4, not {key_size}")
        raise LegacyError(-fd, f"cannot create {_LEGACY_TYPES[map_type]} map (key {key_size}, "
                          f"value {value_size}, max_entries {max_entries}): sizes and "
                          "max_entries must be non-zero")
    return fd


def bpf_lookup_elem(fd: int, key: bytes | int) -> bytes:
    """The value at ``key``; :class:`MissingKeyError` (ENOENT) when absent."""
    _type, ks, vs = _sizes(fd)
    kb = ctypes.create_string_buffer(_encode(key, ks, "key"), ks)
    out = ctypes.create_string_buffer(vs)
    rc = legacy_map_elem_op(_kernel.BPF_MAP_LOOKUP_ELEM, fd, ctypes.addressof(kb),
                            ctypes.addressof(out), 0)
    if rc < 0:
        _raise(rc, "lookup", fd, key)
    return out.raw


def bpf_update_elem(fd: int, key: bytes | int, value: bytes | int, flags: int = BPF_ANY, *,
                    strict_legacy_errors: bool = False) -> None:
    """Store ``value`` at ``key`` (``flags``: 0 any, 1 NOEXIST, 2 EXIST; ARRAY ignores them)."""
    _type, ks, vs = _sizes(fd)
    kb = ctypes.create_string_buffer(_encode(key, ks, "key"), ks)
    vb = ctypes.create_string_buffer(_encode(value, vs, "value"), vs)
    rc = legacy_map_elem_op(_kernel.BPF_MAP_UPDATE_ELEM, fd, ctypes.addressof(kb),
                            ctypes.addressof(vb), flags, strict_legacy_errors)
    if rc < 0:
        _raise(rc, "update", fd, key if rc == -_errno.ENOENT else None)


def bpf_delete_elem(fd: int, key: bytes | int) -> None:
    """Remove ``key``: ENOENT when absent, EINVAL on an ARRAY map."""
    _type, ks, _vs = _sizes(fd)
    kb = ctypes.create_string_buffer(_encode(key, ks, "key"), ks)
    rc = legacy_map_elem_op(_kernel.BPF_MAP_DELETE_ELEM, fd, ctypes.addressof(kb), 0, 0)
    if rc < 0:
        _raise(rc, "delete", fd, key)


def bpf_get_next_key(fd: int, key: bytes | int | None = None) -> bytes | None:
    """The key after ``key``; the first key for ``None`` or a key not in the map (legacy
    rule); ``None`` after the last key."""
    _type, ks, _vs = _sizes(fd)
    kb = None if key is None else ctypes.create_string_buffer(_encode(key, ks, "key"), ks)
    out = ctypes.create_string_buffer(ks)
    rc = legacy_map_elem_op(_kernel.BPF_MAP_GET_NEXT_KEY, fd,
                            0 if kb is None else ctypes.addressof(kb), ctypes.addressof(out), 0)
    if rc == -_errno.ENOENT:
        return None
    if rc < 0:
        _raise(rc, "get_next_key", fd)
    return out.raw
