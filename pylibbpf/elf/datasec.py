"""Global variables of a data section (``.data``, ``.rodata``, ``.bss``, ``.kconfig``...).

One :class:`Variable` serves both sides: the ELF reader's internal maps
(:attr:`MapDef.variables <pylibbpf.elf.MapDef.variables>`) and the live view over a loaded
object's memory (:attr:`pylibbpf.GlobalData.variables`), and both read a BTF ``DATASEC`` with
:func:`datasec_variables`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from .btf import Btf, BtfKind, BtfVarSecinfo

__all__ = ["Variable", "datasec_variables"]

_LINKAGES = {0: "static", 1: "global", 2: "extern"}


@dataclass(frozen=True)
class Variable:
    """A global variable of a data section, or a kconfig extern.

    ``offset`` and ``size`` place it in its section; ``type_id`` is its BTF type (0 where the
    object has no BTF) and ``type_name`` that type's C spelling; ``linkage`` is ``"static"``,
    ``"global"`` or ``"extern"`` (``""`` where not known).
    """

    name: str
    offset: int
    size: int
    type_id: int
    type_name: str = ""
    linkage: str = ""

    @property
    def btf_type_id(self) -> int:
        """Deprecated: the name ``pylibbpf.Variable`` gave :attr:`type_id` before the two
        ``Variable`` classes became this one."""
        warnings.warn("Variable.btf_type_id is deprecated; use Variable.type_id",
                      DeprecationWarning, stacklevel=2)
        return self.type_id


def datasec_variables(btf: Btf, secinfos: Iterable[BtfVarSecinfo]) -> list[Variable]:
    """The variables of a ``DATASEC``'s entries (its functions, in ``.ksyms``, are left out).

    Raises :class:`~pylibbpf.elf.ElfError` for an entry that names no type of ``btf``.
    """
    out = []
    for si in secinfos:
        var = btf.type_by_id(si.type_id)
        if var.kind != BtfKind.VAR:
            continue
        type_id = var.type_id or 0
        out.append(Variable(var.name, si.offset, si.size, type_id, btf.type_name(type_id),
                            _LINKAGES.get(var.linkage, str(var.linkage))))
    return out
