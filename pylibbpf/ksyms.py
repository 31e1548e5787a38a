"""Kernel addresses to symbols, from ``/proc/kallsyms``: libbpf-tools' ``ksyms__load()``,
``ksyms__map_addr()`` and ``ksyms__get_symbol()`` (trace_helpers.c), for the kernel stacks of
a ``STACK_TRACE`` map.

::

    ksyms = Ksyms.load()                      # one read of /proc/kallsyms (~0.1-0.3 s)
    for ip in stacks[kern_stack_id]:
        if ip:
            print(ksyms.describe(ip))         # "vfs_read+0x9a"

Only the symbols of code are kept (types ``t``/``T``/``w``/``W``), so an address maps to the
function it is in.  Reading the file needs no privilege, but the kernel shows a process without
CAP_SYSLOG zero addresses (``kernel.kptr_restrict``): :meth:`Ksyms.load` raises
:class:`~pylibbpf.BpfPermissionError` then, as an empty table would map nothing.
"""

from __future__ import annotations

import bisect
import errno
from typing import NamedTuple

from .errors import BpfError, BpfPermissionError

__all__ = ["Ksym", "Ksyms"]

KALLSYMS = "/proc/kallsyms"
_CODE = frozenset(b"tTwW")


class Ksym(NamedTuple):
    """One kernel symbol: its name, start address and module (None: the kernel itself)."""

    name: str
    address: int
    module: str | None = None


class Ksyms:
    """The kernel's code symbols sorted by address; :meth:`map_addr` finds the one holding an
    address.  Symbols of modules loaded later are not known: load again to see them."""

    def __init__(self, symbols: list[Ksym]) -> None:
        self.symbols = sorted(symbols, key=lambda s: s.address)
        self._addresses = [s.address for s in self.symbols]
        self._by_name: dict[str, Ksym] = {}
        for sym in self.symbols:
            self._by_name.setdefault(sym.name, sym)

    @classmethod
    def load(cls, path: str = KALLSYMS) -> Ksyms:
        """Read ``path`` (``/proc/kallsyms``).  Raises :class:`BpfPermissionError` when every
        address is hidden from this process, :class:`BpfError` (ENOENT) when it cannot be
        read."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise BpfError(exc.errno or errno.ENOENT, f"cannot read {path}: {exc}") from None
        symbols: list[Ksym] = []
        hidden = 0
        for line in data.splitlines():
            fields = line.split()
            if len(fields) < 3 or fields[1][0] not in _CODE:
                continue
            address = int(fields[0], 16)
            if address == 0:
                hidden += 1
                continue
            module = fields[3].strip(b"[]").decode() if len(fields) > 3 else None
            symbols.append(Ksym(fields[2].decode(errors="replace"), address, module))
        if hidden and not symbols:
            raise BpfPermissionError(errno.EPERM, f"{path} hides kernel addresses from this "
                                     "process (kernel.kptr_restrict; needs CAP_SYSLOG)")
        return cls(symbols)

    def __len__(self) -> int:
        return len(self.symbols)

    def map_addr(self, address: int) -> tuple[Ksym, int] | None:
        """The symbol ``address`` falls in and the offset into it, or None below the first
        symbol (``ksyms__map_addr``; like it, the last symbol has no end)."""
        at = bisect.bisect_right(self._addresses, address) - 1
        if at < 0:
            return None
        sym = self.symbols[at]
        return sym, address - sym.address

    def get_symbol(self, name: str) -> Ksym | None:
        """The symbol called ``name`` (the lowest address of that name), or None."""
        return self._by_name.get(name)

    def describe(self, address: int, *, offset: bool = True) -> str:
        """``name+0x1f`` (``[module]`` appended for a module's symbol), or the address in hex
        when no symbol holds it."""
        found = self.map_addr(address)
        if found is None:
            return f"{address:#x}"
        sym, off = found
        text = f"{sym.name}+{off:#x}" if offset and off else sym.name
        return f"{text} [{sym.module}]" if sym.module else text
