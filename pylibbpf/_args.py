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

U16_MAX = (1 << 16) - 1
U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
INT_MAX = (1 << 31) - 1

OBJ_NAME_MAX = 15
"""Longest map or program name the kernel keeps (``BPF_OBJ_NAME_LEN`` - 1); libbpf cuts longer
names without a word, so they are refused instead."""

MAX_INSNS = 1_000_000
"""Most instructions one program may have (the kernel's ``BPF_COMPLEXITY_LIMIT_INSNS``; it
refuses more with E2BIG, unprivileged callers already above 4,096)."""

MAX_VALUE_SIZE = INT_MAX
"""Largest map value (and so global-data section) the library copies or allocates for: what the
kernel accepts for an array map value.  ``BPF_MAP_CREATE`` refuses ``value_size > INT_MAX`` with
E2BIG for array and hash maps (older kernels stopped earlier, at ``KMALLOC_MAX_SIZE``, 4 MiB
with 4 KiB pages; Linux 6.x creates a 64 MiB array value), so an object whose ``.bss`` declares
more can never be loaded and its declared image is never copied."""

MAX_BUFFER = 256 << 20
"""Most bytes a single output buffer the library allocates on the caller's behalf may take (a
batch of map entries, a test run's output): 256 MiB."""


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
    """``value`` (``str``) encoded for a ``const char *``: no NUL inside, at most ``max_len``
    bytes."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    data = value.encode("utf-8", "surrogateescape")
    if b"\0" in data:
        raise ValueError(f"{what} {value!r} contains a NUL character")
    if max_len is not None and len(data) > max_len:
        raise ValueError(f"{what} {value!r} is {len(data)} bytes; at most {max_len} fit")
    return data


def optional_cstr(value: Any, what: str, max_len: int | None = None) -> bytes | None:
    """Like :func:`cstr`; ``None`` stays ``None`` (a NULL ``const char *``)."""
    return None if value is None else cstr(value, what, max_len)


def obj_name(value: Any, what: str = "name") -> bytes | None:
    """A map or program name for the kernel: at most :data:`OBJ_NAME_MAX` bytes, no NUL.

    ``None`` and ``""`` mean no name (NULL)."""
    if value is None:
        return None
    data = cstr(value, what)
    if len(data) > OBJ_NAME_MAX:
        raise ValueError(f"{what} {value!r} is {len(data)} bytes; the kernel keeps at most "
                         f"{OBJ_NAME_MAX} (BPF_OBJ_NAME_LEN - 1)")
    return data or None


def buffer(value: Any, what: str) -> bytes:
    """A bytes-like ``value`` (``bytes``, ``bytearray``, ``memoryview``, anything with the buffer
    protocol) as ``bytes``; an int (which ``bytes()`` would turn into that many zeros), a ``str``
    or another object raises ``TypeError``."""
    if type(value) is bytes:
        return value
    if isinstance(value, (str, int)):
        raise TypeError(f"{what} must be bytes-like, not {type(value).__name__}")
    try:
        view = memoryview(value)
    except TypeError:
        raise TypeError(f"{what} must be bytes-like, not {type(value).__name__}") from None
    with view:
        return view.tobytes()


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
