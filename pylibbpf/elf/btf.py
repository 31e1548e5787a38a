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

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from .btfc import CPrinter
from .btftypes import (
    INT_BOOL,
    INT_CHAR,
    INT_SIGNED,
    MAX_DEPTH,
    MODIFIERS,
    PTR_SIZE,
    REF_KINDS,
    SIZED_KINDS,
    VOID,
    BtfEnumValue,
    BtfKind,
    BtfMember,
    BtfParam,
    BtfType,
    BtfVarSecinfo,
)
from .errors import ElfError

__all__ = ["Btf", "BtfKind", "BtfType", "BtfMember", "BtfParam", "BtfVarSecinfo", "MAX_DEPTH",
           "MODIFIERS", "decode_type_record", "skip_modifiers", "type_record_size",
           # the model, re-exported: it lives in btftypes so that btfc can use it
           "BtfEnumValue", "INT_BOOL", "INT_CHAR", "INT_SIGNED", "PTR_SIZE", "VOID"]

BTF_MAGIC = 0xEB9F
_TAGGED_KINDS = {"struct": (BtfKind.STRUCT,), "union": (BtfKind.UNION,),
                 "enum": (BtfKind.ENUM, BtfKind.ENUM64)}
# Kinds a C type name cannot mean: `codec(btf, "x")` names a type, not a function or variable.
_NOT_VALUE_TYPES = {BtfKind.FUNC, BtfKind.VAR, BtfKind.DATASEC, BtfKind.FWD}


def skip_modifiers(type_by_id: Callable[[int], BtfType], t: BtfType) -> BtfType:
    """``t`` without its typedef/const/volatile/restrict/type_tag layers, in any BTF that
    gives types by id (:class:`Btf`, or libbpf's through :mod:`pylibbpf.btf`)."""
    cur = t
    for _ in range(MAX_DEPTH):
        if cur.kind not in MODIFIERS:
            return cur
        cur = type_by_id(cur.type_id or 0)
    raise ElfError(f"BTF type [{t.id}]: modifier chain too deep or cyclic")


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

    def find_c_type(self, c_name: str) -> BtfType | None:
        """The type a C spelling names: ``"struct event"``, ``"union u"``, ``"enum color"``
        (ENUM or ENUM64), or a plain name (``"u32"``, ``"event"``: the first type of that name
        that is not a function, variable, section or forward declaration); None if none."""
        words = c_name.split()
        if len(words) == 2 and words[0] in _TAGGED_KINDS:
            for kind in _TAGGED_KINDS[words[0]]:
                found = self.find(words[1], kind)
                if found is not None:
                    return found
            return None
        return next((t for t in self.find_all(c_name) if t.kind not in _NOT_VALUE_TYPES), None)

    def resolve(self, t: BtfType | int) -> BtfType:
        """Skip typedef/const/volatile/restrict/type_tag to the underlying type."""
        return skip_modifiers(self.type_by_id, self._get(t))

    def size_of(self, t: BtfType | int) -> int:
        """Size in bytes (libbpf's ``btf__resolve_size``)."""
        cur = self._get(t)
        nelems = 1
        for _ in range(MAX_DEPTH):
            if cur.kind in SIZED_KINDS:
                size = (cur.size or 0) * nelems
                if size > 0xFFFFFFFF:
                    raise ElfError(f"BTF type [{self._get(t).id}]: size overflows 32 bits")
                return size
            if cur.kind == BtfKind.PTR:
                return PTR_SIZE * nelems
            if cur.kind in MODIFIERS or cur.kind in (BtfKind.VAR, BtfKind.DECL_TAG):
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
        elif cur.kind in MODIFIERS:
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
        return CPrinter(self).decl(self._get(t).id, "")

    def format_c(self, t: BtfType | int) -> str:
        """The C definition of ``t`` (struct/union/enum/typedef/...) without the final ``;``.

        Matches what ``bpftool btf dump file X format c`` (libbpf 1.1's ``btf_dump``) prints.
        """
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
    while pos < len(types_blob):
        if pos + 12 > len(types_blob):
            raise ElfError(f".BTF: truncated type at offset {pos}")
        type_id = len(types)
        size = type_record_size(types_blob, pos, bo, type_id)
        if pos + size > len(types_blob):
            kind = BtfKind((struct.unpack_from(e + "I", types_blob, pos + 4)[0] >> 24) & 0x1F)
            raise ElfError(f".BTF: type [{type_id}] ({kind.name}) is truncated")
        types.append(decode_type_record(types_blob, pos, type_id, bo, name_at))
        pos += size
    _check_refs(types)
    return Btf(types, bo, strings)


# The bytes a type record takes after its 12-byte header: a fixed part, and one per vlen item.
_EXTRA_FIXED = {BtfKind.INT: 4, BtfKind.ARRAY: 12, BtfKind.VAR: 4, BtfKind.DECL_TAG: 4}
_EXTRA_PER_ITEM = {BtfKind.STRUCT: 12, BtfKind.UNION: 12, BtfKind.ENUM: 8, BtfKind.ENUM64: 12,
                   BtfKind.FUNC_PROTO: 8, BtfKind.DATASEC: 12}
_STRUCTS = {order: {fmt: struct.Struct(("<" if order == "little" else ">") + fmt)
                    for fmt in ("I", "i", "II", "Ii", "III")}
            for order in ("little", "big")}


def _kind(info: int, type_id: int) -> BtfKind:
    kind_no = (info >> 24) & 0x1F
    try:
        kind = BtfKind(kind_no)
    except ValueError:
        raise ElfError(f".BTF: type [{type_id}] has unknown kind {kind_no}") from None
    if kind == BtfKind.VOID:
        raise ElfError(f".BTF: type [{type_id}] has kind 0 (void)")
    return kind


def type_record_size(data: bytes | bytearray | memoryview, pos: int = 0,
                     byteorder: Literal["little", "big"] = "little", type_id: int = 0) -> int:
    """The size in bytes of the type record whose 12-byte header is at ``data[pos]``,
    header included (``type_id`` names it in errors)."""
    info = _STRUCTS[byteorder]["I"].unpack_from(data, pos + 4)[0]
    kind = _kind(info, type_id)
    return int(12 + _EXTRA_FIXED.get(kind, 0) + _EXTRA_PER_ITEM.get(kind, 0) * (info & 0xFFFF))


def decode_type_record(data: bytes | bytearray | memoryview, pos: int, type_id: int,
                       byteorder: Literal["little", "big"],
                       name_at: Callable[[int], str]) -> BtfType:
    """Decode the type record at ``data[pos]``, complete as :func:`type_record_size` says, as
    type ``type_id``; ``name_at(offset)`` reads the string table."""
    fmt = _STRUCTS[byteorder]
    three, two = fmt["III"], fmt["II"]
    name_off, info, size_type = three.unpack_from(data, pos)
    pos += 12
    kind = _kind(info, type_id)
    vlen = info & 0xFFFF
    kflag = bool(info >> 31)
    common: dict[str, object] = {"id": type_id, "kind": kind, "name": name_at(name_off),
                                 "kind_flag": kflag, "vlen": vlen}
    if kind in SIZED_KINDS:
        common["size"] = size_type
    elif kind in REF_KINDS:
        common["type_id"] = size_type
    if kind == BtfKind.INT:
        (word,) = fmt["I"].unpack_from(data, pos)
        return BtfType(**common, encoding=(word >> 24) & 0xF,  # type: ignore[arg-type]
                       int_offset=(word >> 16) & 0xFF, bits=word & 0xFF)
    if kind == BtfKind.ARRAY:
        elem, index, nelems = three.unpack_from(data, pos)
        return BtfType(**common, elem_type_id=elem, index_type_id=index,  # type: ignore[arg-type]
                       nelems=nelems)
    if kind in (BtfKind.STRUCT, BtfKind.UNION):
        members = []
        for _ in range(vlen):
            m_name, m_type, m_off = three.unpack_from(data, pos)
            pos += 12
            if kflag:
                members.append(BtfMember(name_at(m_name), m_type, m_off & 0xFFFFFF, m_off >> 24))
            else:
                members.append(BtfMember(name_at(m_name), m_type, m_off))
        return BtfType(**common, members=tuple(members))  # type: ignore[arg-type]
    if kind == BtfKind.ENUM:
        pair = fmt["Ii"] if kflag else two
        values = []
        for _ in range(vlen):
            v_name, v_val = pair.unpack_from(data, pos)
            pos += 8
            values.append(BtfEnumValue(name_at(v_name), v_val))
        return BtfType(**common, enum_values=tuple(values))  # type: ignore[arg-type]
    if kind == BtfKind.ENUM64:
        values = []
        for _ in range(vlen):
            v_name, lo, hi = three.unpack_from(data, pos)
            pos += 12
            val = (hi << 32) | lo
            if kflag and val >= 1 << 63:
                val -= 1 << 64
            values.append(BtfEnumValue(name_at(v_name), val))
        return BtfType(**common, enum_values=tuple(values))  # type: ignore[arg-type]
    if kind == BtfKind.FUNC_PROTO:
        params = []
        for _ in range(vlen):
            p_name, p_type = two.unpack_from(data, pos)
            pos += 8
            params.append(BtfParam(name_at(p_name), p_type))
        return BtfType(**common, params=tuple(params))  # type: ignore[arg-type]
    if kind == BtfKind.VAR:
        (linkage,) = fmt["I"].unpack_from(data, pos)
        return BtfType(**common, linkage=linkage)  # type: ignore[arg-type]
    if kind == BtfKind.DATASEC:
        infos = []
        for _ in range(vlen):
            v_type, v_off, v_size = three.unpack_from(data, pos)
            pos += 12
            infos.append(BtfVarSecinfo(v_type, v_off, v_size))
        return BtfType(**common, secinfos=tuple(infos))  # type: ignore[arg-type]
    if kind == BtfKind.DECL_TAG:
        (comp,) = fmt["i"].unpack_from(data, pos)
        return BtfType(**common, component_idx=comp)  # type: ignore[arg-type]
    if kind == BtfKind.FUNC:
        return BtfType(**common, linkage=vlen)  # type: ignore[arg-type]
    return BtfType(**common)  # type: ignore[arg-type]


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
