"""Relocation descriptors of a program (libbpf's ``struct reloc_desc``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["RelocKind", "Relocation", "Extern"]


class RelocKind(str, enum.Enum):
    """What a relocated instruction refers to.

    ``MAP``: ld_imm64 of a map (``.maps`` or legacy ``maps``); ``DATA``: ld_imm64 of global data
    (an internal map, at ``sym_off``); ``CALL``: bpf-to-bpf call; ``SUBPROG_ADDR``: ld_imm64 of a
    function's address; ``KCONFIG``: ld_imm64 of a ``__kconfig`` extern; ``KSYM``: ld_imm64 of a
    ``__ksym`` variable; ``KFUNC``: call of a ``__ksym`` kernel function; ``EXTERN``: an extern
    without BTF (libbpf refuses it at open).
    """

    MAP = "map"
    DATA = "data"
    CALL = "call"
    SUBPROG_ADDR = "subprog_addr"
    KCONFIG = "kconfig"
    KSYM = "ksym"
    KFUNC = "kfunc"
    EXTERN = "extern"


@dataclass(frozen=True)
class Relocation:
    """One relocation: instruction ``insn_idx`` (program-relative slot) refers to ``symbol``.

    ``map_name`` names the map for MAP/DATA/KCONFIG; ``sym_off`` is the symbol's value (byte
    offset in its section); ``target`` names the sub-program of CALL/SUBPROG_ADDR.
    """

    kind: RelocKind
    insn_idx: int
    sec_insn_idx: int
    symbol: str
    sym_off: int = 0
    map_name: str | None = None
    target: str | None = None

    def to_json(self) -> dict[str, object]:
        """A JSON-friendly description with stable keys."""
        return {"kind": self.kind.value, "insn_idx": self.insn_idx,
                "sec_insn_idx": self.sec_insn_idx, "symbol": self.symbol,
                "sym_off": self.sym_off, "map": self.map_name, "target": self.target}


@dataclass(frozen=True)
class Extern:
    """An undefined symbol the program expects libbpf or the kernel to provide.

    ``kind`` is ``"kconfig"``, ``"ksym"``, ``"kfunc"`` or ``"undefined"`` (no BTF for it).
    For kconfig externs, ``offset``/``size`` place it in the ``.kconfig`` map.
    """

    name: str
    kind: str
    weak: bool
    type_id: int = 0
    offset: int = 0
    size: int = 0

    def to_json(self) -> dict[str, object]:
        """A JSON-friendly description with stable keys."""
        return {"name": self.name, "kind": self.kind, "weak": self.weak,
                "type_id": self.type_id, "offset": self.offset, "size": self.size}
