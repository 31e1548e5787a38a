"""A level gate in front of the Python print callback, so that libbpf's debug lines nobody
listens to never enter Python.

libbpf 1.1 prints about 20 debug lines per open + load through its print function; each one
entering a ctypes callback costs the GIL, a Python frame and a level check (about 12 µs per
load in all).  libbpf has no level filter of its own, so the gate is a few instructions of
machine code: compare libbpf's level argument with a threshold word that Python sets, return 0
when the level is above it, and otherwise jump to the ctypes callback with every register and
the stack untouched (so the ``va_list`` argument passes through as libbpf made it).

The code lives in a page of its own, written while it is read-write and then made read and
execute only (never writable and executable at once).  It exists for x86-64 only; on any other
machine, when the kernel or a policy (SELinux ``execmem``, PaX, a W^X rule) refuses executable
anonymous memory, or when ``PYLIBBPF_PRINT_GATE=0`` is set in the environment, :func:`build`
returns ``None`` and libbpf calls the Python callback for every message, as without a gate.

The threshold only ever drops messages Python would drop too: warnings always pass, and
:mod:`pylibbpf._ffi.printcb` narrows the threshold from the logger's levels when a call starts
and opens it fully when the call ends.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
from typing import Any

from .libc import libc

ENV = "PYLIBBPF_PRINT_GATE"
"""Set to ``0`` to call the Python print callback for every libbpf message (no machine code)."""

OPEN = 0xFFFF_FFFF
"""The threshold that lets every level through."""

_PAGE = 4096
_PROT_READ, _PROT_WRITE, _PROT_EXEC = 1, 2, 4
_MAP_PRIVATE, _MAP_ANONYMOUS = 0x02, 0x20
_MAP_FAILED = ctypes.c_void_p(-1).value


def _x86_64(threshold: int, target: int) -> bytes:
    """``int gate(unsigned level, const char *fmt, va_list ap)``: 0 when ``level`` is above
    ``*threshold`` (unsigned), else a tail jump to ``target``.  Only r11 (scratch in the SysV
    ABI, never an argument) and the flags are touched before the jump."""
    code = b"".join((
        b"\xf3\x0f\x1e\xfa",                       # endbr64 (a no-op without CET)
        b"\x49\xbb" + struct.pack("<Q", threshold),  # movabs r11, threshold
        b"\x41\x3b\x3b",                           # cmp edi, dword ptr [r11]
        b"\x77\x0d",                               # ja drop (13 bytes on)
        b"\x49\xbb" + struct.pack("<Q", target),    # movabs r11, target
        b"\x41\xff\xe3",                           # jmp r11
        b"\x31\xc0",                               # drop: xor eax, eax
        b"\xc3",                                   # ret
    ))
    assert len(code) == 35  # ja (ending at 19) skips 13 bytes to "drop" at 32
    return code


_ASSEMBLERS = {"x86_64": _x86_64, "amd64": _x86_64}


class Gate:
    """The gate's code page and its threshold word (both live as long as the process)."""

    __slots__ = ("address", "threshold", "_code")

    def __init__(self, address: int, threshold: Any, code: bytes) -> None:
        self.address = address  # where the code starts: what libbpf is given
        self.threshold = threshold  # a ctypes.c_uint32: levels above its value are dropped
        self._code = code


def build(target: int, machine: str | None = None) -> Gate | None:
    """A gate in front of the C function at ``target``, open (every level passes); ``None``
    where there is none (another machine, no executable memory, or :data:`ENV` is ``0``)."""
    if os.environ.get(ENV, "").strip() == "0":
        return None
    assemble = _ASSEMBLERS.get((machine or platform.machine()).lower())
    if assemble is None:
        return None
    threshold = ctypes.c_uint32(OPEN)
    code = assemble(ctypes.addressof(threshold), target)
    c = libc()
    page = c.mmap(None, _PAGE, _PROT_READ | _PROT_WRITE, _MAP_PRIVATE | _MAP_ANONYMOUS, -1, 0)
    if not page or page == _MAP_FAILED:
        return None
    ctypes.memmove(page, code, len(code))
    if c.mprotect(page, _PAGE, _PROT_READ | _PROT_EXEC) != 0:
        c.munmap(page, _PAGE)
        return None
    return Gate(page, threshold, code)
