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

import errno as _errno

from pylibbpf import BpfError, lowlevel
from pylibbpf.lowlevel import MapLayout

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
# the legacy (and Linux) element command numbers
_LOOKUP, _UPDATE, _DELETE, _GET_NEXT_KEY = 1, 2, 3, 4


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
    try:
        return lowlevel.map_create(map_type, key_size, value_size, max_entries)
    except BpfError as exc:
        return -(exc.errno or _errno.EINVAL)
    except ValueError:  # a size that is not a u32
        return -_errno.EINVAL


def _layout(fd: int) -> MapLayout | int:
    """The map's layout, or ``-errno`` (EBADF for a closed fd, EINVAL for a non-map)."""
    try:
        return lowlevel.map_layout(fd)
    except BpfError as exc:
        return -(exc.errno or _errno.EINVAL)
    except ValueError:  # not a possible fd number
        return -_errno.EBADF


Data = bytes | int | None


def _element(cmd: int, fd: int, key: Data, value: Data, flags: int,
             strict_legacy_errors: bool, layout: MapLayout | None = None
             ) -> tuple[int, bytes | None]:
    """One element command by the legacy rules: ``(0 or -errno, output)``, the output being
    the value (lookup) or the next key (get_next_key).  Keys and values are checked against
    the map's sizes by :mod:`pylibbpf.lowlevel` (ValueError); the map type is only looked up
    where a legacy rule depends on it."""

    def map_type() -> int | None:
        nonlocal layout
        if layout is None:
            found = _layout(fd)
            if isinstance(found, int):
                return None
            layout = found
        return layout.type

    if cmd == _UPDATE and flags not in (BPF_ANY, BPF_NOEXIST, BPF_EXIST):
        return -_errno.EINVAL, None
    try:
        if cmd == _LOOKUP:
            return 0, lowlevel.map_lookup_elem(fd, key, flags=flags)
        if cmd == _UPDATE:
            lowlevel.map_update_elem(fd, key, value, flags)
            return 0, None
        if cmd == _DELETE:
            lowlevel.map_delete_elem(fd, key)
            return 0, None
        if cmd == _GET_NEXT_KEY:
            following = lowlevel.map_get_next_key(fd, key)
            return (-_errno.ENOENT, None) if following is None else (0, following)
    except KeyError:
        return -_errno.ENOENT, None
    except BpfError as exc:
        err = exc.errno or _errno.EINVAL
        if cmd == _UPDATE:
            if err in (_errno.EEXIST, _errno.ENOENT) and flags != BPF_ANY and \
                    map_type() == BPF_MAP_TYPE_ARRAY:  # legacy ARRAY updates ignore flags
                return _element(cmd, fd, key, value, BPF_ANY, strict_legacy_errors, layout)
            if err == _errno.E2BIG and strict_legacy_errors:
                kind = map_type()
                if kind == BPF_MAP_TYPE_ARRAY:
                    return -_errno.ENOENT, None
                if kind == BPF_MAP_TYPE_HASH:
                    return -_errno.ENOMEM, None
        return -err, None
    return -_errno.EINVAL, None


def legacy_map_elem_op(cmd: int, fd: int, key: int, value: int, flags: int,
                       strict_legacy_errors: bool = False) -> int:
    """One element command on raw user pointers; returns 0 or ``-errno``.

    ``cmd`` is 1..4 (lookup, update, delete, get_next_key); ``value`` is the value or
    ``next_key`` pointer.  The pointers are read and written with ``process_vm_readv``/``writev``
    in the kernel's order (map fd, key, value), so a bad one gives EFAULT as it would there.
    """
    if cmd not in (_LOOKUP, _UPDATE, _DELETE, _GET_NEXT_KEY):
        return -_errno.EINVAL
    if cmd == _UPDATE and flags not in (BPF_ANY, BPF_NOEXIST, BPF_EXIST):
        return -_errno.EINVAL
    layout = _layout(fd & 0xFFFFFFFF)
    if isinstance(layout, int):
        return layout
    try:
        if layout.key_size == 0:
            if key:
                return -_errno.EINVAL
            key_bytes = None
        elif cmd == _GET_NEXT_KEY and not key:
            key_bytes = None  # NULL: the first key
        else:
            key_bytes = _kernel.read_user(key, layout.key_size)
        value_bytes = _kernel.read_user(value, layout.value_bytes) if cmd == _UPDATE else None
        rc, output = _element(cmd, fd & 0xFFFFFFFF, key_bytes, value_bytes, flags,
                              strict_legacy_errors, layout)
        if output is not None:
            _kernel.write_user(value, output)
    except OSError as exc:
        return -(exc.errno or _errno.EFAULT)
    return rc


# ------------------------------------------------------------------------------ Python API

def _check_fd(fd: int) -> int:
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise TypeError(f"a map fd is an int, not {type(fd).__name__}")
    if not 0 <= fd < 1 << 31:
        raise LegacyError(_errno.EBADF, f"{fd} is not a file descriptor: pass the fd "
                          "bpf_create_map returned")
    return int(fd)


def _data(data: bytes | bytearray | memoryview | int, what: str) -> bytes | int:
    # stricter than pylibbpf's encoder on purpose: the legacy calls took bytes or integers
    if isinstance(data, bool) or not isinstance(data, (bytes, bytearray, memoryview, int)):
        raise TypeError(f"{what} must be bytes or an int, not {type(data).__name__}")
    return int(data) if isinstance(data, int) else bytes(data)


def _raise(rc: int, what: str, fd: int, key: object = None) -> None:
    err = -rc
    hints = {
        _errno.EINVAL: "check that the fd is a map bpf_create_map returned, the flags (0, 1 "
                       "or 2) and that ARRAY maps are not deleted from",
        _errno.E2BIG: "the map is full or the index is past max_entries",
        _errno.ENOMEM: "the HASH map is full (legacy errno)",
        _errno.EEXIST: "the key exists and BPF_NOEXIST was given",
        _errno.EBADF: "the fd is not open: pass the fd bpf_create_map returned",
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
    rc, out = _element(_LOOKUP, _check_fd(fd), _data(key, "key"), None, 0, False)
    if rc < 0 or out is None:
        _raise(rc, "lookup", fd, key)
    assert out is not None
    return out


def bpf_update_elem(fd: int, key: bytes | int, value: bytes | int, flags: int = BPF_ANY, *,
                    strict_legacy_errors: bool = False) -> None:
    """Store ``value`` at ``key`` (``flags``: 0 any, 1 NOEXIST, 2 EXIST; ARRAY ignores them)."""
    rc, _out = _element(_UPDATE, _check_fd(fd), _data(key, "key"), _data(value, "value"),
                        flags, strict_legacy_errors)
    if rc < 0:
        _raise(rc, "update", fd, key if rc == -_errno.ENOENT else None)


def bpf_delete_elem(fd: int, key: bytes | int) -> None:
    """Remove ``key``: ENOENT when absent, EINVAL on an ARRAY map."""
    rc, _out = _element(_DELETE, _check_fd(fd), _data(key, "key"), None, 0, False)
    if rc < 0:
        _raise(rc, "delete", fd, key)


def bpf_get_next_key(fd: int, key: bytes | int | None = None) -> bytes | None:
    """The key after ``key``; the first key for ``None`` or a key not in the map (legacy
    rule); ``None`` after the last key."""
    current = None if key is None else _data(key, "key")
    rc, out = _element(_GET_NEXT_KEY, _check_fd(fd), current, None, 0, False)
    if rc == -_errno.ENOENT:
        return None
    if rc < 0:
        _raise(rc, "get_next_key", fd)
    return out
