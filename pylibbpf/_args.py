"""Argument checks for values that reach C.

ctypes converts a Python int to a C integer by truncation and a Python string to ``char *`` up to
its first NUL, so an out-of-range number or an embedded NUL would silently become another value
(``repeat=-1`` turns into 4,294,967,295 rounds, ``"/sys/fs/bpf/x\\0/../etc"`` into
``/sys/fs/bpf/x``).  Every public entry point passes integers and strings through these helpers
first: a wrong type raises :class:`TypeError`, a wrong value :class:`ValueError`, and both name
the argument.
"""

from __future__ import annotations

import os
from typing import Any

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
INT_MAX = (1 << 31) - 1


def integer(value: Any, what: str) -> int:
    """``value`` as an ``int``; ``bool`` and non-integers are refused (``TypeError``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return int(value)


def in_range(value: Any, what: str, low: int, high: int) -> int:
    """``value`` as an ``int`` in ``[low, high]``, else ``ValueError`` naming ``what``."""
    number = integer(value, what)
    if not low <= number <= high:
        raise ValueError(f"{what} {number} is out of range [{low}, {high}]")
    return number


def u32(value: Any, what: str) -> int:
    """An unsigned 32-bit value (``__u32`` in the kernel's and libbpf's interfaces)."""
    return in_range(value, what, 0, U32_MAX)


def u64(value: Any, what: str) -> int:
    """An unsigned 64-bit value (``__u64``)."""
    return in_range(value, what, 0, U64_MAX)


def c_int(value: Any, what: str) -> int:
    """A signed C ``int``."""
    return in_range(value, what, -INT_MAX - 1, INT_MAX)


def non_negative_int(value: Any, what: str) -> int:
    """A C ``int`` that must not be negative (sizes and counts libbpf takes as ``int``)."""
    return in_range(value, what, 0, INT_MAX)


def fd(value: Any, what: str = "fd") -> int:
    """A file descriptor number (``0 <= fd <= INT_MAX``)."""
    number = integer(value, what)
    if not 0 <= number <= INT_MAX:
        raise ValueError(f"{what} {number} is not a file descriptor")
    return number


def cstr(value: Any, what: str, max_len: int | None = None) -> bytes:
    """``value`` (``str``) encoded for a ``const char *``: no NUL inside, at most ``max_len`` bytes."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    data = value.encode("utf-8", "surrogateescape")
    if b"\0" in data:
        raise ValueError(f"{what} {value!r} contains a NUL character")
    if max_len is not None and len(data) > max_len:
        raise ValueError(f"{what} {value!r} is {len(data)} bytes; at most {max_len} fit")
    return data


def cpath(value: Any, what: str = "path") -> bytes:
    """A filesystem path (``str``, ``bytes`` or ``os.PathLike``) encoded for C, without NUL."""
    try:
        data = os.fsencode(value)
    except TypeError:
        raise TypeError(f"{what} must be a str, bytes or os.PathLike, "
                        f"not {type(value).__name__}") from None
    if b"\0" in data:
        raise ValueError(f"{what} {value!r} contains a NUL character")
    if not data:
        raise ValueError(f"{what} is empty")
    return data
