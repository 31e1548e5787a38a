"""ioctl request numbers: the kernel's ``_IO``/``_IOR``/``_IOW``/``_IOWR`` encoding.

``include/uapi/asm-generic/ioctl.h``: the number in bits 0-7, the type character in 8-15, the
argument's size in the 14 bits from 16 and the direction in the top 2 bits (write 1, read 2).
powerpc, mips, sparc and alpha (``arch/*/include/uapi/asm/ioctl.h``) keep 13 size bits and 3
direction bits, and there ``_IO`` has a direction bit of its own (none 1, read 2, write 4).

Use it through the module, as the C macros read: ``ioctl.iow("$", 8, 4)`` is
``_IOW('$', 8, __u32)``.
"""

from __future__ import annotations

import platform
from typing import NamedTuple


class _Layout(NamedTuple):
    none: int
    read: int
    write: int
    size_bits: int


_GENERIC = _Layout(none=0, read=2, write=1, size_bits=14)
_THREE_DIRECTION_BITS = _Layout(none=1, read=2, write=4, size_bits=13)
_THREE_DIRECTION_BITS_MACHINES = ("ppc", "powerpc", "mips", "sparc", "alpha")


def _layout(machine: str | None) -> _Layout:
    machine = platform.machine() if machine is None else machine
    if machine.startswith(_THREE_DIRECTION_BITS_MACHINES):
        return _THREE_DIRECTION_BITS
    return _GENERIC


def _ioc(layout: _Layout, direction: int, kind: str, nr: int, size: int) -> int:
    if len(kind) != 1 or not 0 <= ord(kind) < 256:
        raise ValueError(f"an ioctl type is one byte, not {kind!r}")
    if not 0 <= nr < 256:
        raise ValueError(f"an ioctl number is one byte, not {nr}")
    if not 0 <= size < 1 << layout.size_bits:
        raise ValueError(f"an ioctl argument of {size} bytes does not fit the request number")
    return (direction << (16 + layout.size_bits)) | (size << 16) | (ord(kind) << 8) | nr


def io(kind: str, nr: int, *, machine: str | None = None) -> int:
    """``_IO(kind, nr)``: a request without an argument.  ``machine`` as
    ``platform.machine()`` names it, this machine by default."""
    layout = _layout(machine)
    return _ioc(layout, layout.none, kind, nr, 0)


def ior(kind: str, nr: int, size: int, *, machine: str | None = None) -> int:
    """``_IOR(kind, nr, type)``, ``size`` being ``sizeof(type)``: the kernel writes the
    argument."""
    layout = _layout(machine)
    return _ioc(layout, layout.read, kind, nr, size)


def iow(kind: str, nr: int, size: int, *, machine: str | None = None) -> int:
    """``_IOW(kind, nr, type)``, ``size`` being ``sizeof(type)``: the kernel reads the
    argument."""
    layout = _layout(machine)
    return _ioc(layout, layout.write, kind, nr, size)


def iowr(kind: str, nr: int, size: int, *, machine: str | None = None) -> int:
    """``_IOWR(kind, nr, type)``, ``size`` being ``sizeof(type)``: the kernel reads and writes
    the argument."""
    layout = _layout(machine)
    return _ioc(layout, layout.read | layout.write, kind, nr, size)
