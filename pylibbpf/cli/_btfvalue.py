"""Bytes of a BTF type as the JSON ``bpftool map dump`` prints under ``"formatted"``.

The shapes are bpftool's (``btf_dumper.c``), which differ from :mod:`pylibbpf.elf.codec`'s
Python values on purpose, so that a script written for ``bpftool -j`` reads ours:

* integers are numbers; ``_Bool`` is true/false; a ``char`` (encoding CHAR) is a one-character
  string; bitfields, and integers not 8/16/32/64 bits wide, are hex strings (``"0x1f"``);
* an enum is its enumerator's name, or the number when no enumerator has that value;
* a ``char`` array holding a printable NUL-terminated string is that string; any other array
  is a list;
* a struct or union is an object of every member (a union shows all of them);
* a pointer is its address as a number;
* a variable is ``{"name": value}`` and a data section ``{".bss": [{"var": value}, ...]}``.

bpftool refuses a ``float``; here it is a number.
"""

from __future__ import annotations

import struct
import sys
from typing import Any

from ..elf.btf import INT_BOOL, INT_CHAR, INT_SIGNED, Btf, BtfKind, BtfType

__all__ = ["formatted"]

_MODS = (BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT, BtfKind.TYPE_TAG)
_FLOATS = {4: "<f", 8: "<d", 2: "<e"}
_MAX_DEPTH = 64
_ORDER = sys.byteorder


def formatted(btf: Btf, type_id: int, data: bytes, offset: int = 0) -> Any:
    """The value of type ``type_id`` held at ``data[offset:]``."""
    return _value(btf, type_id, data, offset, 0, 0)


def _hex(value: int) -> str:
    return f"0x{value:x}"


def _bits(data: bytes, offset: int, bit_offset: int, nr_bits: int) -> str:
    span = (bit_offset + nr_bits + 7) // 8
    word = int.from_bytes(data[offset:offset + span], _ORDER)
    return _hex((word >> bit_offset) & ((1 << nr_bits) - 1))


def _int(t: BtfType, data: bytes, offset: int, bit_offset: int) -> Any:
    nr_bits = t.bits
    if bit_offset or t.int_offset or nr_bits % 8:
        total = bit_offset + t.int_offset
        return _bits(data, offset + total // 8, total % 8, nr_bits)
    if nr_bits == 128:
        return _hex(int.from_bytes(data[offset:offset + 16], _ORDER))
    size = nr_bits // 8
    raw = data[offset:offset + size]
    if t.encoding & INT_BOOL:
        return any(raw)
    if t.encoding & INT_CHAR:
        return chr(raw[0])
    if nr_bits not in (8, 16, 32, 64):
        return _bits(data, offset, 0, nr_bits)
    return int.from_bytes(raw, _ORDER, signed=bool(t.encoding & INT_SIGNED))


def _is_string(btf: Btf, t: BtfType, data: bytes, offset: int) -> bool:
    if not t.nelems:
        return False
    elem = btf.type_by_id(t.elem_type_id)
    while elem.kind in (BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT):
        elem = btf.type_by_id(elem.type_id or 0)
    if elem.kind != BtfKind.INT or elem.size != 1:
        return False
    if not elem.encoding & INT_CHAR and elem.name != "char":
        return False
    for b in data[offset:offset + t.nelems]:
        if b == 0:
            return True
        if b <= 0x1F or b >= 0x7F:
            return False
    return False


def _value(btf: Btf, type_id: int, data: bytes, offset: int, bit_offset: int,
           depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise ValueError(f"BTF type [{type_id}]: nested too deep to print")
    t = btf.type_by_id(type_id)
    kind = t.kind
    if kind in _MODS:
        return _value(btf, t.type_id or 0, data, offset, bit_offset, depth + 1)
    if kind == BtfKind.INT:
        return _int(t, data, offset, bit_offset)
    if kind == BtfKind.PTR:
        return int.from_bytes(data[offset:offset + 8], _ORDER)
    if kind in (BtfKind.ENUM, BtfKind.ENUM64):
        size = t.size or 4
        signed = kind == BtfKind.ENUM or t.kind_flag
        value = int.from_bytes(data[offset:offset + size], _ORDER, signed=signed)
        mask = (1 << (8 * size)) - 1
        for v in t.enum_values:
            if v.value & mask == value & mask:
                return v.name
        return value
    if kind == BtfKind.FLOAT:
        fmt = _FLOATS.get(t.size or 0)
        if fmt is None:
            return _hex(int.from_bytes(data[offset:offset + (t.size or 0)], _ORDER))
        return struct.unpack_from(fmt, data, offset)[0]
    if kind == BtfKind.ARRAY:
        if _is_string(btf, t, data, offset):
            return data[offset:offset + t.nelems].split(b"\0", 1)[0].decode("ascii")
        step = btf.size_of(t.elem_type_id)
        return [_value(btf, t.elem_type_id, data, offset + i * step, 0, depth + 1)
                for i in range(t.nelems)]
    if kind in (BtfKind.STRUCT, BtfKind.UNION):
        out: dict[str, Any] = {}
        for m in t.members:
            at = offset + m.bit_offset // 8
            if m.bitfield_size:
                out[m.name] = _bits(data, at, m.bit_offset % 8, m.bitfield_size)
            else:
                out[m.name] = _value(btf, m.type_id, data, at, m.bit_offset % 8, depth + 1)
        return out
    if kind == BtfKind.VAR:
        return {t.name: _value(btf, t.type_id or 0, data, offset, bit_offset, depth + 1)}
    if kind == BtfKind.DATASEC:
        return {t.name: [_value(btf, s.type_id, data, offset + s.offset, 0, depth + 1)
                         for s in t.secinfos]}
    raise ValueError(f"BTF type [{t.id}] of kind {kind.name} holds no value")
