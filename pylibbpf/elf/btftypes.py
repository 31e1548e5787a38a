"""The BTF data model: kinds, types and their parts, as :mod:`pylibbpf.elf.btf` decodes them.

Kept apart from the decoder so that :mod:`pylibbpf.elf.btfc` (C printing) can use the model
while :class:`~pylibbpf.elf.btf.Btf` uses the printer, without an import cycle.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["MAX_DEPTH", "MODIFIERS", "PTR_SIZE", "VOID", "BtfEnumValue", "BtfKind", "BtfMember",
           "BtfParam", "BtfType", "BtfVarSecinfo", "INT_BOOL", "INT_CHAR", "INT_SIGNED",
           "REF_KINDS", "SIZED_KINDS"]

MAX_DEPTH = 32  # libbpf's MAX_RESOLVE_DEPTH
PTR_SIZE = 8


class BtfKind(enum.IntEnum):
    """``BTF_KIND_*``: all kinds known to libbpf 1.1."""

    VOID = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


# Kinds whose third word is a type id (the others hold a size or nothing).
REF_KINDS = frozenset({BtfKind.PTR, BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST,
                       BtfKind.RESTRICT, BtfKind.FUNC, BtfKind.FUNC_PROTO, BtfKind.VAR,
                       BtfKind.DECL_TAG, BtfKind.TYPE_TAG})
SIZED_KINDS = frozenset({BtfKind.INT, BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM,
                         BtfKind.DATASEC, BtfKind.FLOAT, BtfKind.ENUM64})
# The kinds that only qualify or rename another type: what resolving a type skips.
MODIFIERS = frozenset({BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT,
                       BtfKind.TYPE_TAG})

INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4


@dataclass(frozen=True)
class BtfMember:
    """A struct/union member: ``bit_offset`` from the start; ``bitfield_size`` 0 if none."""

    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int = 0


@dataclass(frozen=True)
class BtfParam:
    """A FUNC_PROTO parameter (``type_id`` 0 as the last one means ``...``)."""

    name: str
    type_id: int


@dataclass(frozen=True)
class BtfVarSecinfo:
    """A DATASEC entry: variable ``type_id`` at ``offset`` with ``size`` bytes."""

    type_id: int
    offset: int
    size: int


@dataclass(frozen=True)
class BtfEnumValue:
    """An enumerator."""

    name: str
    value: int


@dataclass(frozen=True)
class BtfType:
    """One BTF type. Fields not meaningful for a kind keep their defaults.

    ``size`` is set for sized kinds, ``type_id`` for kinds that refer to another type (for FUNC
    the prototype, for FUNC_PROTO the return type, for VAR the variable's type).
    """

    id: int
    kind: BtfKind
    name: str = ""
    size: int | None = None
    type_id: int | None = None
    kind_flag: bool = False
    vlen: int = 0
    # INT
    encoding: int = 0
    int_offset: int = 0
    bits: int = 0
    # ARRAY
    elem_type_id: int = 0
    index_type_id: int = 0
    nelems: int = 0
    members: tuple[BtfMember, ...] = ()
    enum_values: tuple[BtfEnumValue, ...] = ()
    params: tuple[BtfParam, ...] = ()
    linkage: int = 0  # FUNC (static/global/extern) and VAR (static/global/extern)
    secinfos: tuple[BtfVarSecinfo, ...] = ()
    component_idx: int = -1  # DECL_TAG

    @property
    def is_signed(self) -> bool:
        """INT with the signed encoding, or ENUM/ENUM64 marked signed."""
        if self.kind == BtfKind.INT:
            return bool(self.encoding & INT_SIGNED)
        return self.kind in (BtfKind.ENUM, BtfKind.ENUM64) and self.kind_flag

    def to_json(self) -> dict[str, object]:
        """A JSON-friendly description (stable keys)."""
        out: dict[str, object] = {"id": self.id, "kind": self.kind.name, "name": self.name}
        if self.size is not None:
            out["size"] = self.size
        if self.type_id is not None:
            out["type_id"] = self.type_id
        if self.kind == BtfKind.INT:
            out.update(bits=self.bits, offset=self.int_offset, encoding=self.encoding)
        if self.kind == BtfKind.ARRAY:
            out.update(type_id=self.elem_type_id, index_type_id=self.index_type_id,
                       nelems=self.nelems)
        if self.members:
            out["members"] = [{"name": m.name, "type_id": m.type_id, "bit_offset": m.bit_offset,
                               "bitfield_size": m.bitfield_size} for m in self.members]
        if self.kind in (BtfKind.ENUM, BtfKind.ENUM64):
            out["values"] = [{"name": v.name, "value": v.value} for v in self.enum_values]
        if self.kind == BtfKind.FUNC_PROTO:
            out["params"] = [{"name": p.name, "type_id": p.type_id} for p in self.params]
        if self.kind in (BtfKind.FUNC, BtfKind.VAR):
            out["linkage"] = self.linkage
        if self.kind == BtfKind.DATASEC:
            out["vars"] = [{"type_id": s.type_id, "offset": s.offset, "size": s.size}
                           for s in self.secinfos]
        if self.kind == BtfKind.DECL_TAG:
            out["component_idx"] = self.component_idx
        if self.kind == BtfKind.FWD:
            out["fwd_kind"] = "union" if self.kind_flag else "struct"
        return out


VOID = BtfType(0, BtfKind.VOID, "void")
