"""A BTF <-> Python codec: decode the bytes of a BTF type into Python values and back.

A :class:`Codec` is built once from a BTF type and turns the bytes of that type into Python
values and back:

=====================  ===================================================================
BTF                    Python
=====================  ===================================================================
INT                    ``int`` (signed per the encoding); ``bool`` for ``_Bool``
ENUM / ENUM64          a member of an ``IntEnum`` named after the C enum (``int`` when the
                       value has no enumerator); encode from the enum, its name or an int
char arrays            ``str`` (up to the first NUL); encode from ``str`` or ``bytes``
other ARRAY            ``list`` (nested for multi-dimensional arrays)
STRUCT / UNION         ``dict`` of member name to value; members of anonymous structs and
                       unions appear in the enclosing dict, as in C; bitfields included.
                       A union decodes every member; encode it from a dict with one member
PTR                    ``int`` (the address)
FLOAT                  ``float``
typedef/const/...      the type they name
=====================  ===================================================================

Encoding is strict: unknown member names, ints out of the field's range, a non-``bool`` for a
``_Bool`` and strings too long raise ``ValueError`` (a :class:`FieldError` naming the member,
``"inner.a"``); members not given are zero.  ``codec.encode(codec.decode(raw)) == raw`` for any
bytes whose padding is zero.

Variable-length records: when a struct's last member is an array, a record may stop inside it
(a fixed prefix plus a buffer sized by a field, ``char args[TOTAL]`` written up to
``args_size``) or run past the struct (a flexible array member, ``__u32 vals[]``).  ``decode``
then gives every member before it, and the array cut to the whole elements present: a list, or
for a ``char`` array the ``bytes`` present (NULs included: such a buffer often holds several
strings).  :attr:`Codec.min_size` is the shortest record accepted (the offset of that array).

Pure Python over :class:`~pylibbpf.elf.btf.Btf`; :mod:`pylibbpf.typed` builds its views on it.
"""

from __future__ import annotations

import enum
import struct
import sys
from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from ._flat import FlatCodec, compile_flat
from .btf import INT_BOOL, INT_SIGNED, Btf, BtfKind, BtfMember, BtfType
from .layout import find_type, is_char, numpy_dtype

__all__ = ["Codec", "FieldError", "codec", "numpy_dtype"]

_FLOATS = {2: "e", 4: "f", 8: "d"}
_ORDER = sys.byteorder


class FieldError(ValueError):
    """A value that does not fit its member: ``field`` is the member's path (``"inner.a"``,
    ``"arr[2]"``), ``reason`` what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


def _within(exc: ValueError, step: str) -> FieldError:
    """``exc`` raised while encoding member ``step`` (``"a"`` or ``"[2]"``) of a value."""
    if isinstance(exc, FieldError):
        inner = exc.field
        field = step + ("" if not inner else inner if inner.startswith("[") else "." + inner)
        return FieldError(field, exc.reason)
    return FieldError(step, str(exc))


_Tail = Callable[[Any, int, int], Any]  # decode(data, offset, bytes present)


def _no_decode(data: Any, off: int) -> Any:
    raise AssertionError("a char tail is sliced, not decoded element by element")


class Codec:
    """Decodes and encodes one BTF type.  ``size`` is its size in bytes; ``min_size`` the
    shortest record :meth:`decode` accepts (below ``size`` for a struct ending in an array).

    ``decoder(data, offset=0)`` and ``encoder(value)`` are the functions behind :meth:`decode`
    and :meth:`encode` (the same results and errors, one call less: bind them in a hot loop).
    For a flat type (ints, enums, floats, ``char`` and fixed arrays, structs of these: no
    bitfields, unions or flexible arrays) they are compiled once for the type around one
    :class:`struct.Struct` (``flat`` holds it; ``None`` for the other types).
    """

    __slots__ = ("btf", "type", "size", "min_size", "name", "flat", "decoder", "encoder",
                 "_decode", "_encode", "_tail", "_flexible")

    def __init__(self, btf: Btf, type_: BtfType, size: int,
                 decode: Callable[[bytes | memoryview, int], Any],
                 encode: Callable[[Any, bytearray, int], None],
                 tail: tuple[int, bool, _Tail] | None = None) -> None:
        self.btf = btf
        self.type = type_
        self.size = size
        self.name = btf.type_name(type_) if type_.id else "void"
        self._decode = decode
        self._encode = encode
        self._tail: _Tail | None = None
        self.min_size, self._flexible = size, False
        if tail is not None:
            self.min_size, self._flexible, self._tail = tail
        self.flat: FlatCodec | None = None
        self.decoder: Callable[..., Any] = self._decode_generic
        self.encoder: Callable[[Any], bytes] = self._encode_generic

    def _compile(self, builder: _Builder) -> None:
        """Use the compiled codec of the type when it is flat."""
        flat = compile_flat(self.btf, self.type.id, builder.resolve, builder.enum_class,
                            self._decode_generic, self._encode_generic)
        if flat is not None and not self._flexible and flat.struct.size == self.size:
            self.flat, self.decoder, self.encoder = flat, flat.decode, flat.encode

    def decode(self, data: bytes | bytearray | memoryview, offset: int = 0) -> Any:
        """The value held in ``data[offset:]``: ``size`` bytes, or for a struct ending in an
        array at least ``min_size`` (see the module's notes on variable-length records)."""
        return self.decoder(data, offset)

    def _decode_generic(self, data: bytes | bytearray | memoryview, offset: int = 0) -> Any:
        present = len(data) - offset
        raw = data if isinstance(data, (bytes, memoryview)) else bytes(data)
        if present < self.size or self._flexible:
            if self._tail is None or present < self.min_size:
                shortest = "" if self.min_size == self.size else (
                    f" (at least {self.min_size}: the members before its last array)")
                raise ValueError(f"{self.name} is {self.size} bytes{shortest}; got {present}")
            return self._tail(raw, offset, present)
        return self._decode(raw, offset)

    def encode(self, value: Any) -> bytes:
        """The bytes of ``value`` (``bytes`` of the exact size pass through); a value that does
        not fit raises :class:`FieldError` (a ``ValueError``) naming the member."""
        return self.encoder(value)

    def _encode_generic(self, value: Any) -> bytes:
        if isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
            if len(raw) != self.size:
                raise ValueError(f"{self.name} is {self.size} bytes, not {len(raw)}")
            return raw
        out = bytearray(self.size)
        self._encode(value, out, 0)
        return bytes(out)

    if TYPE_CHECKING:
        def __call__(self, data: bytes) -> Any: ...
    else:
        # ``codec(data)`` is ``codec.decoder(data)``: a property made of C parts (no Python
        # frame of its own), as this is what a ring or perf callback calls once per record
        __call__ = property(attrgetter("decoder"))

    def __repr__(self) -> str:
        return f"<Codec {self.name} ({self.size} bytes)>"


# ------------------------------------------------------------------------------------ building


class _Builder:
    def __init__(self, btf: Btf) -> None:
        self.btf = btf
        self.enums: dict[int, type[enum.IntEnum]] = {}

    def resolve(self, type_id: int) -> BtfType:
        """The type ``type_id`` names, without modifiers; a variable stands for its type."""
        t = self.btf.resolve(type_id)
        return self.btf.resolve(t.type_id or 0) if t.kind == BtfKind.VAR else t

    def build(self, type_id: int) -> tuple[int, Any, Any]:
        """(size, decode(data, off), encode(value, out, off)) for ``type_id``."""
        t = self.resolve(type_id)
        kind = t.kind
        if kind == BtfKind.INT:
            return self.integer(t)
        if kind in (BtfKind.ENUM, BtfKind.ENUM64):
            return self.enumeration(t)
        if kind == BtfKind.PTR:
            return self.plain_int(8, False, "pointer")
        if kind == BtfKind.FLOAT:
            return self.floating(t)
        if kind == BtfKind.ARRAY:
            return self.array(t)
        if kind in (BtfKind.STRUCT, BtfKind.UNION, BtfKind.DATASEC):
            return self.composite(t)
        raise ValueError(f"BTF type [{t.id}] {t.name or ''} of kind {kind.name} has no value "
                         "layout (void, a forward declaration or a function)")

    @staticmethod
    def plain_int(size: int, signed: bool, what: str) -> tuple[int, Any, Any]:
        low = -(1 << (8 * size - 1)) if signed else 0
        high = (1 << (8 * size - 1)) - 1 if signed else (1 << (8 * size)) - 1
        from_bytes = int.from_bytes

        def decode(data: Any, off: int) -> int:
            return from_bytes(data[off:off + size], _ORDER, signed=signed)

        def encode(value: Any, out: bytearray, off: int) -> None:
            if isinstance(value, float) or not isinstance(value, int):
                raise ValueError(f"{what} needs an int, not {type(value).__name__}")
            if not low <= value <= high:
                raise ValueError(f"{value} does not fit {what} ({low}..{high})")
            out[off:off + size] = value.to_bytes(size, _ORDER, signed=signed)
        return size, decode, encode

    def integer(self, t: BtfType) -> tuple[int, Any, Any]:
        size = t.size or 0
        signed = bool(t.encoding & INT_SIGNED)
        if t.encoding & INT_BOOL:
            def decode_bool(data: Any, off: int) -> bool:
                return any(data[off:off + size])

            def encode_bool(value: Any, out: bytearray, off: int) -> None:
                if not isinstance(value, bool):  # 5 is not a _Bool: it would store 0x05
                    raise ValueError(f"bool needs True or False, not {value!r}")
                out[off:off + size] = int(bool(value)).to_bytes(size, _ORDER)
            return size, decode_bool, encode_bool
        if t.int_offset or t.bits != 8 * size:  # an INT narrower than its storage
            return self.bits_int(size, t.int_offset, t.bits, signed, t.name or "int")
        return self.plain_int(size, signed, t.name or "int")

    @staticmethod
    def bits_int(size: int, shift: int, bits: int, signed: bool,
                 what: str) -> tuple[int, Any, Any]:
        mask = (1 << bits) - 1

        def decode(data: Any, off: int) -> int:
            word = int.from_bytes(data[off:off + size], _ORDER)
            value = (word >> shift) & mask
            if signed and value >> (bits - 1):
                value -= 1 << bits
            return value

        def encode(value: Any, out: bytearray, off: int) -> None:
            if not isinstance(value, int):
                raise ValueError(f"{what} needs an int, not {type(value).__name__}")
            low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, mask)
            if not low <= value <= high:
                raise ValueError(f"{value} does not fit {bits} bits of {what}")
            word = int.from_bytes(out[off:off + size], _ORDER)
            word = (word & ~(mask << shift)) | ((value & mask) << shift)
            out[off:off + size] = word.to_bytes(size, _ORDER)
        return size, decode, encode

    def enum_class(self, t: BtfType) -> type[enum.IntEnum] | None:
        cached = self.enums.get(t.id)
        if cached is not None or not t.enum_values:
            return cached
        if t.enum_values:
            bits = 8 * (t.size or 4)
            members: dict[str, int] = {}
            for v in t.enum_values:
                value = v.value & ((1 << bits) - 1)
                if t.kind_flag and value >> (bits - 1):
                    value -= 1 << bits
                members[v.name] = value
            cls: type[enum.IntEnum] = enum.IntEnum(  # type: ignore[misc]
                t.name or f"enum_{t.id}", members)
            self.enums[t.id] = cls
        return cls

    def enumeration(self, t: BtfType) -> tuple[int, Any, Any]:
        size = t.size or 4
        signed = t.kind_flag
        cls = self.enum_class(t)
        _size, raw_decode, raw_encode = self.plain_int(size, signed, f"enum {t.name}")
        if cls is None:
            return size, raw_decode, raw_encode
        by_value = {int(m): m for m in cls}
        by_name = cls.__members__

        def decode(data: Any, off: int) -> Any:
            value = raw_decode(data, off)
            return by_value.get(value, value)

        def encode(value: Any, out: bytearray, off: int) -> None:
            if isinstance(value, str):
                try:
                    value = by_name[value]
                except KeyError:
                    raise ValueError(f"enum {t.name} has no enumerator {value!r}") from None
            raw_encode(int(value) if isinstance(value, int) else value, out, off)
        return size, decode, encode

    @staticmethod
    def floating(t: BtfType) -> tuple[int, Any, Any]:
        size = t.size or 0
        fmt = _FLOATS.get(size)
        if fmt is None:
            def decode_raw(data: Any, off: int) -> bytes:
                return bytes(data[off:off + size])

            def encode_raw(value: Any, out: bytearray, off: int) -> None:
                if not isinstance(value, (bytes, bytearray)) or len(value) != size:
                    raise ValueError(f"{t.name} is kept as {size} raw bytes")
                out[off:off + size] = value
            return size, decode_raw, encode_raw
        packer = struct.Struct(("<" if _ORDER == "little" else ">") + fmt)

        def decode(data: Any, off: int) -> float:
            return float(packer.unpack_from(data, off)[0])

        def encode(value: Any, out: bytearray, off: int) -> None:
            if not isinstance(value, (int, float)):
                raise ValueError(f"{t.name} needs a float, not {type(value).__name__}")
            packer.pack_into(out, off, value)
        return size, decode, encode

    def is_char(self, type_id: int) -> bool:
        return is_char(self.btf, type_id)

    def array(self, t: BtfType) -> tuple[int, Any, Any]:
        count = t.nelems
        if self.is_char(t.elem_type_id):
            def decode_str(data: Any, off: int) -> str:
                raw = bytes(data[off:off + count])
                return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")

            def encode_str(value: Any, out: bytearray, off: int) -> None:
                raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
                if not isinstance(raw, (bytes, bytearray)):
                    raise ValueError(f"char[{count}] needs a str or bytes")
                if len(raw) > count:
                    raise ValueError(f"{len(raw)} bytes do not fit char[{count}]")
                out[off:off + count] = bytes(raw).ljust(count, b"\0")
            return count, decode_str, encode_str
        elem_size, elem_decode, elem_encode = self.build(t.elem_type_id)

        def decode(data: Any, off: int) -> list[Any]:
            return [elem_decode(data, off + i * elem_size) for i in range(count)]

        def encode(value: Any, out: bytearray, off: int) -> None:
            if isinstance(value, (str, bytes, dict)) or len(value) > count:
                raise ValueError(f"an array of {count} needs a list of at most {count} items")
            for i, item in enumerate(value):
                try:
                    elem_encode(item, out, off + i * elem_size)
                except ValueError as exc:
                    raise _within(exc, f"[{i}]") from None
        return elem_size * count, decode, encode

    def composite(self, t: BtfType,
                  members: list[BtfMember] | None = None) -> tuple[int, Any, Any]:
        """A struct, union or section; ``members``: only these (a record's fixed prefix)."""
        size = t.size or 0
        fields: list[tuple[str, int, Any, Any]] = []  # name, byte offset, decode, encode
        if t.kind == BtfKind.DATASEC:
            for info in t.secinfos:
                var = self.btf.type_by_id(info.type_id)
                _s, dec, enc = self.build(var.type_id or 0)
                fields.append((var.name, info.offset, dec, enc))
        else:
            for m in t.members if members is None else members:
                if m.bitfield_size:
                    storage = self.resolve(m.type_id)
                    signed = storage.is_signed
                    start = m.bit_offset // 8
                    shift = m.bit_offset % 8
                    span = (shift + m.bitfield_size + 7) // 8
                    _s, dec, enc = self.bits_int(span, shift, m.bitfield_size, signed,
                                                 f"bitfield {m.name}")
                    fields.append((m.name, start, dec, enc))
                    continue
                if m.bit_offset % 8:
                    raise ValueError(f"member {m.name} of {t.name} is not byte-aligned")
                _s, dec, enc = self.build(m.type_id)
                if not m.name:  # anonymous struct/union: its members belong to us
                    fields.append(("", m.bit_offset // 8, dec, enc))
                else:
                    fields.append((m.name, m.bit_offset // 8, dec, enc))
        names = self._names(t)
        is_union = t.kind == BtfKind.UNION
        label = f"{'union' if is_union else 'struct'} {t.name}".strip()

        def decode(data: Any, off: int) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, where, dec, _enc in fields:
                value = dec(data, off + where)
                if name:
                    out[name] = value
                else:
                    out.update(value)
            return out

        def encode(value: Any, out: bytearray, off: int) -> None:
            if not isinstance(value, dict):
                raise ValueError(f"{label} needs a dict, not {type(value).__name__}")
            unknown = set(value) - names
            if unknown:
                raise ValueError(f"{label} has no member {sorted(unknown)[0]!r}")
            if is_union and len(value) > 1:
                # several members (e.g. a decoded union): write them all, then each must read
                # back as given, or they disagree
                given = [(n, w, d, e) for n, w, d, e in fields if n in value]
                for name, where, _dec, enc in given:
                    try:
                        enc(value[name], out, off + where)
                    except ValueError as exc:
                        raise _within(exc, name) from None
                if any(dec(bytes(out), off + where) != value[name]
                       for name, where, dec, _enc in given):
                    raise ValueError(f"{label}: the members given disagree; give one member")
                return
            for name, where, _dec, enc in fields:
                if name:
                    if name in value:
                        try:
                            enc(value[name], out, off + where)
                        except ValueError as exc:
                            raise _within(exc, name) from None
                else:
                    inner = {k: v for k, v in value.items() if k in self._anon_names(t, where)}
                    if inner:
                        enc(inner, out, off + where)
        return size, decode, encode

    def _names(self, t: BtfType) -> set[str]:
        if t.kind == BtfKind.DATASEC:
            return {self.btf.type_by_id(i.type_id).name for i in t.secinfos}
        names: set[str] = set()
        for m in t.members:
            if m.name:
                names.add(m.name)
            else:
                names |= self._names(self.resolve(m.type_id))
        return names

    def _anon_names(self, t: BtfType, byte_offset: int) -> set[str]:
        for m in t.members:
            if not m.name and m.bit_offset // 8 == byte_offset:
                return self._names(self.resolve(m.type_id))
        return set()



    def tail(self, type_id: int) -> tuple[int, bool, _Tail] | None:
        """For a struct whose last member is an array: (the offset of that array, whether it is
        a flexible array member, decode(data, off, present)); else None."""
        t = self.resolve(type_id)
        if t.kind != BtfKind.STRUCT or not t.members:
            return None
        last = max(t.members, key=lambda m: m.bit_offset)
        arr = self.resolve(last.type_id)
        if last.bitfield_size or arr.kind != BtfKind.ARRAY or last.bit_offset % 8:
            return None
        start = last.bit_offset // 8
        others = [m for m in t.members if m is not last]
        if any(m.bit_offset + 8 * self.btf.size_of(m.type_id) > 8 * start
               for m in others if not m.bitfield_size):
            return None  # a member overlaps the array: no prefix to keep
        prefix = self.composite(t, others)[1]
        count = arr.nelems
        as_bytes = self.is_char(arr.elem_type_id)
        elem_size, elem_decode, _enc = (1, _no_decode, None) if as_bytes else self.build(
            arr.elem_type_id)
        name = last.name

        def decode(data: Any, off: int, present: int) -> dict[str, Any]:
            out: dict[str, Any] = prefix(data, off)
            n = (present - start) // elem_size
            if count:
                n = min(n, count)
            first = off + start
            out[name] = (bytes(data[first:first + n]) if as_bytes
                         else [elem_decode(data, first + i * elem_size) for i in range(n)])
            return out
        return start, count == 0, decode


_cache: dict[tuple[int, int], Codec] = {}


def codec(btf: Btf, type_: BtfType | int | str) -> Codec:
    """The :class:`Codec` of a type given as a :class:`BtfType`, an id, or a C name
    (``"struct event"``, ``"event"``, ``"u32"``, ``"enum color"``)."""
    t = find_type(btf, type_)
    key = (id(btf), t.id)
    found = _cache.get(key)
    if found is not None and found.btf is btf:
        return found
    builder = _Builder(btf)
    size, dec, enc = builder.build(t.id)
    made = Codec(btf, t, size, dec, enc, builder.tail(t.id))
    made._compile(builder)
    if len(_cache) > 4096:
        _cache.clear()
    _cache[key] = made
    return made
