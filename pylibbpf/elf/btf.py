"""A decoder for BTF (the ``.BTF`` section): types, sizes, member offsets, and C printing.

Usage::

    btf = Btf.from_bytes(data)
    t = btf.find("event")            # first type named "event"
    btf.size_of(t)                   # bytes, like btf__resolve_size()
    [(m.name, m.bit_offset, m.bitfield_size) for m in btf.resolve(t).members]
    print(btf.format_c(t))           # the definition as `bpftool btf dump ... format c` prints it

Every walk over the type graph is bounded (:data:`MAX_DEPTH`), so cyclic or corrupt BTF raises
:class:`~pylibbpf.elf.errors.ElfError` instead of looping.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import Literal

from .errors import ElfError

__all__ = ["Btf", "BtfKind", "BtfType", "BtfMember", "BtfParam", "BtfVarSecinfo", "MAX_DEPTH"]

BTF_MAGIC = 0xEB9F
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
_REF_KINDS = {BtfKind.PTR, BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT,
              BtfKind.FUNC, BtfKind.FUNC_PROTO, BtfKind.VAR, BtfKind.DECL_TAG, BtfKind.TYPE_TAG}
_SIZED_KINDS = {BtfKind.INT, BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.DATASEC,
                BtfKind.FLOAT, BtfKind.ENUM64}
_MODIFIERS = {BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT,
              BtfKind.TYPE_TAG}

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


@dataclass
class Btf:
    """Decoded ``.BTF``: ``types[i]`` is type id ``i`` (id 0 is ``void``)."""

    types: list[BtfType]
    byteorder: Literal["little", "big"] = "little"
    strings: bytes = b""
    _by_name: dict[str, list[int]] = field(default_factory=dict, repr=False)
    _align_cache: dict[int, int] = field(default_factory=dict, repr=False)

    @classmethod
    def from_bytes(cls, data: bytes) -> Btf:
        """Decode a ``.BTF`` section; raises :class:`ElfError` on malformed input."""
        return _parse(bytes(data))

    def __post_init__(self) -> None:
        for t in self.types:
            if t.name:
                self._by_name.setdefault(t.name, []).append(t.id)

    def string_at(self, offset: int) -> str:
        """The NUL-terminated string at ``offset`` of the BTF string section."""
        if not 0 <= offset < len(self.strings):
            raise ElfError(f"BTF string offset {offset} out of range")
        end = self.strings.find(b"\0", offset)
        if end < 0:
            raise ElfError(f"BTF string at {offset} is not NUL-terminated")
        return self.strings[offset:end].decode("utf-8", "replace")

    def __len__(self) -> int:
        return len(self.types)

    def type_by_id(self, type_id: int) -> BtfType:
        """The type with id ``type_id`` (0 is void)."""
        if not 0 <= type_id < len(self.types):
            raise ElfError(f"BTF type id {type_id} out of range (0..{len(self.types) - 1})")
        return self.types[type_id]

    def find(self, name: str, kind: BtfKind | None = None) -> BtfType | None:
        """The first type named ``name`` (optionally of ``kind``), or None."""
        for type_id in self._by_name.get(name, ()):
            t = self.types[type_id]
            if kind is None or t.kind == kind:
                return t
        return None

    def find_all(self, name: str) -> list[BtfType]:
        """Every type named ``name``."""
        return [self.types[i] for i in self._by_name.get(name, ())]

    def _get(self, t: BtfType | int) -> BtfType:
        return self.type_by_id(t) if isinstance(t, int) else t

    def resolve(self, t: BtfType | int) -> BtfType:
        """Skip typedef/const/volatile/restrict/type_tag to the underlying type."""
        cur = self._get(t)
        for _ in range(MAX_DEPTH):
            if cur.kind not in _MODIFIERS:
                return cur
            cur = self.type_by_id(cur.type_id or 0)
        raise ElfError(f"BTF type [{self._get(t).id}]: modifier chain too deep or cyclic")

    def size_of(self, t: BtfType | int) -> int:
        """Size in bytes (libbpf's ``btf__resolve_size``)."""
        cur = self._get(t)
        nelems = 1
        for _ in range(MAX_DEPTH):
            if cur.kind in _SIZED_KINDS:
                size = (cur.size or 0) * nelems
                if size > 0xFFFFFFFF:
                    raise ElfError(f"BTF type [{self._get(t).id}]: size overflows 32 bits")
                return size
            if cur.kind == BtfKind.PTR:
                return PTR_SIZE * nelems
            if cur.kind in _MODIFIERS or cur.kind in (BtfKind.VAR, BtfKind.DECL_TAG):
                cur = self.type_by_id(cur.type_id or 0)
            elif cur.kind == BtfKind.ARRAY:
                nelems *= cur.nelems
                cur = self.type_by_id(cur.elem_type_id)
            else:
                raise ElfError(f"BTF type [{cur.id}] of kind {cur.kind.name} has no size")
        raise ElfError(f"BTF type [{self._get(t).id}]: type chain too deep or cyclic")

    def align_of(self, t: BtfType | int, _depth: int = 0) -> int:
        """Natural alignment in bytes (libbpf's ``btf__align_of``); 1 for a packed struct."""
        cur = self._get(t)
        cached = self._align_cache.get(cur.id)
        if cached is not None:
            return cached
        if _depth > MAX_DEPTH:
            raise ElfError(f"BTF type [{cur.id}]: type chain too deep or cyclic")
        if cur.kind in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.FLOAT):
            result = min(PTR_SIZE, cur.size or 0)
        elif cur.kind == BtfKind.PTR:
            result = PTR_SIZE
        elif cur.kind in _MODIFIERS:
            result = self.align_of(cur.type_id or 0, _depth + 1)
        elif cur.kind == BtfKind.ARRAY:
            result = self.align_of(cur.elem_type_id, _depth + 1)
        elif cur.kind in (BtfKind.STRUCT, BtfKind.UNION):
            best = 1
            result = 0
            for m in cur.members:
                align = self.align_of(m.type_id, _depth + 1)
                best = max(best, align)
                if m.bitfield_size == 0 and align and m.bit_offset % (8 * align):
                    result = 1  # a misaligned member: the struct is packed
                    break
            if not result:
                result = 1 if (cur.size or 0) % best else best
        else:
            raise ElfError(f"BTF type [{cur.id}] of kind {cur.kind.name} has no alignment")
        self._align_cache[cur.id] = result
        return result

    def member_offsets(self, t: BtfType | int) -> list[tuple[str, int, int]]:
        """``(name, bit_offset, bitfield_size)`` for each member of a struct/union."""
        cur = self.resolve(t)
        if cur.kind not in (BtfKind.STRUCT, BtfKind.UNION):
            raise ElfError(f"BTF type [{cur.id}] is {cur.kind.name}, not a struct or union")
        return [(m.name, m.bit_offset, m.bitfield_size) for m in cur.members]

    def int_value_of(self, t: BtfType | int) -> int | None:
        """For a ``.maps`` ``__uint(name, N)`` field (pointer to ``int[N]``): N; else None."""
        cur = self.resolve(t)
        if cur.kind != BtfKind.PTR:
            return None
        arr = self.resolve(cur.type_id or 0)
        if arr.kind != BtfKind.ARRAY:
            return None
        return arr.nelems

    def type_name(self, t: BtfType | int) -> str:
        """The C spelling of a type used in a declaration (``struct event``, ``u32 *``...)."""
        from .btfc import CPrinter

        return CPrinter(self).decl(self._get(t).id, "")

    def format_c(self, t: BtfType | int) -> str:
        """The C definition of ``t`` (struct/union/enum/typedef/...) without the final ``;``.

        Matches what ``bpftool btf dump file X format c`` (libbpf 1.1's ``btf_dump``) prints.
        """
        from .btfc import CPrinter

        return CPrinter(self).definition(self._get(t).id)


def _parse(data: bytes) -> Btf:
    if len(data) < 24:
        raise ElfError(f".BTF: {len(data)} bytes is too short for a BTF header")
    magic_le = struct.unpack_from("<H", data)[0]
    if magic_le == BTF_MAGIC:
        bo: Literal["little", "big"] = "little"
    elif struct.unpack_from(">H", data)[0] == BTF_MAGIC:
        bo = "big"
    else:
        raise ElfError(f".BTF: bad magic {magic_le:#06x}")
    e = "<" if bo == "little" else ">"
    _magic, version, _flags, hdr_len = struct.unpack_from(e + "HBBI", data)
    if version != 1:
        raise ElfError(f".BTF: unsupported version {version}")
    if hdr_len < 24 or hdr_len > len(data):
        raise ElfError(f".BTF: header length {hdr_len} out of bounds")
    type_off, type_len, str_off, str_len = struct.unpack_from(e + "IIII", data, 8)
    body = len(data) - hdr_len
    if type_off + type_len > body or str_off + str_len > body:
        raise ElfError(".BTF: type or string section out of bounds")
    if type_off % 4:
        raise ElfError(".BTF: type section not 4-byte aligned")
    strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
    if str_len and strings[0] != 0:
        raise ElfError(".BTF: string section does not start with an empty string")
    types_blob = data[hdr_len + type_off:hdr_len + type_off + type_len]

    def name_at(off: int) -> str:
        if off >= len(strings):
            raise ElfError(f".BTF: name offset {off} out of the string section")
        end = strings.find(b"\0", off)
        if end < 0:
            raise ElfError(f".BTF: string at {off} is not NUL-terminated")
        return strings[off:end].decode("utf-8", "replace")

    types: list[BtfType] = [VOID]
    pos = 0
    u32 = struct.Struct(e + "I")
    while pos < len(types_blob):
        if pos + 12 > len(types_blob):
            raise ElfError(f".BTF: truncated type at offset {pos}")
        name_off, info, size_type = struct.unpack_from(e + "III", types_blob, pos)
        pos += 12
        type_id = len(types)
        kind_no = (info >> 24) & 0x1F
        try:
            kind = BtfKind(kind_no)
        except ValueError:
            raise ElfError(f".BTF: type [{type_id}] has unknown kind {kind_no}") from None
        if kind == BtfKind.VOID:
            raise ElfError(f".BTF: type [{type_id}] has kind 0 (void)")
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        name = name_at(name_off)
        common: dict[str, object] = {"id": type_id, "kind": kind, "name": name,
                                     "kind_flag": kflag, "vlen": vlen}
        if kind in _SIZED_KINDS:
            common["size"] = size_type
        elif kind in _REF_KINDS:
            common["type_id"] = size_type

        def need(n: int, pos: int = pos, type_id: int = type_id, kind: BtfKind = kind) -> None:
            if pos + n > len(types_blob):
                raise ElfError(f".BTF: type [{type_id}] ({kind.name}) is truncated")

        t: BtfType
        if kind == BtfKind.INT:
            need(4)
            (word,) = u32.unpack_from(types_blob, pos)
            pos += 4
            t = BtfType(**common, encoding=(word >> 24) & 0xF,  # type: ignore[arg-type]
                        int_offset=(word >> 16) & 0xFF, bits=word & 0xFF)
        elif kind == BtfKind.ARRAY:
            need(12)
            elem, index, nelems = struct.unpack_from(e + "III", types_blob, pos)
            pos += 12
            t = BtfType(**common, elem_type_id=elem, index_type_id=index,  # type: ignore[arg-type]
                        nelems=nelems)
        elif kind in (BtfKind.STRUCT, BtfKind.UNION):
            need(12 * vlen)
            members = []
            for _ in range(vlen):
                m_name, m_type, m_off = struct.unpack_from(e + "III", types_blob, pos)
                pos += 12
                if kflag:
                    members.append(BtfMember(name_at(m_name), m_type, m_off & 0xFFFFFF,
                                             m_off >> 24))
                else:
                    members.append(BtfMember(name_at(m_name), m_type, m_off))
            t = BtfType(**common, members=tuple(members))  # type: ignore[arg-type]
        elif kind == BtfKind.ENUM:
            need(8 * vlen)
            values = []
            for _ in range(vlen):
                v_name, v_val = struct.unpack_from(e + "Ii" if kflag else e + "II",
                                                   types_blob, pos)
                pos += 8
                values.append(BtfEnumValue(name_at(v_name), v_val))
            t = BtfType(**common, enum_values=tuple(values))  # type: ignore[arg-type]
        elif kind == BtfKind.ENUM64:
            need(12 * vlen)
            values = []
            for _ in range(vlen):
                v_name, lo, hi = struct.unpack_from(e + "III", types_blob, pos)
                pos += 12
                val = (hi << 32) | lo
                if kflag and val >= 1 << 63:
                    val -= 1 << 64
                values.append(BtfEnumValue(name_at(v_name), val))
            t = BtfType(**common, enum_values=tuple(values))  # type: ignore[arg-type]
        elif kind == BtfKind.FUNC_PROTO:
            need(8 * vlen)
            params = []
            for _ in range(vlen):
                p_name, p_type = struct.unpack_from(e + "II", types_blob, pos)
                pos += 8
                params.append(BtfParam(name_at(p_name), p_type))
            t = BtfType(**common, params=tuple(params))  # type: ignore[arg-type]
        elif kind == BtfKind.VAR:
            need(4)
            (linkage,) = u32.unpack_from(types_blob, pos)
            pos += 4
            t = BtfType(**common, linkage=linkage)  # type: ignore[arg-type]
        elif kind == BtfKind.DATASEC:
            need(12 * vlen)
            infos = []
            for _ in range(vlen):
                v_type, v_off, v_size = struct.unpack_from(e + "III", types_blob, pos)
                pos += 12
                infos.append(BtfVarSecinfo(v_type, v_off, v_size))
            t = BtfType(**common, secinfos=tuple(infos))  # type: ignore[arg-type]
        elif kind == BtfKind.DECL_TAG:
            need(4)
            (comp,) = struct.unpack_from(e + "i", types_blob, pos)
            pos += 4
            t = BtfType(**common, component_idx=comp)  # type: ignore[arg-type]
        elif kind == BtfKind.FUNC:
            t = BtfType(**common, linkage=vlen)  # type: ignore[arg-type]
        else:
            t = BtfType(**common)  # type: ignore[arg-type]
        types.append(t)
    _check_refs(types)
    return Btf(types, bo, strings)


def _check_refs(types: list[BtfType]) -> None:
    count = len(types)
    for t in types:
        refs: list[int] = []
        if t.type_id is not None:
            refs.append(t.type_id)
        if t.kind == BtfKind.ARRAY:
            refs += [t.elem_type_id, t.index_type_id]
        refs += [m.type_id for m in t.members]
        refs += [p.type_id for p in t.params]
        refs += [s.type_id for s in t.secinfos]
        for ref in refs:
            if ref >= count:
                raise ElfError(f".BTF: type [{t.id}] refers to missing type [{ref}]")
