"""Codecs compiled once per *flat* BTF type: one :class:`struct.Struct` and two generated
functions, instead of a walk over the members on every call.

A type is flat when every byte of it is a whole-byte scalar laid out without overlap: ints of
1, 2, 4 or 8 bytes (``_Bool`` of 1), enums, pointers, floats of 2, 4 or 8 bytes, ``char``
arrays, fixed arrays of these and structs of these (nested included).  Bitfields, unions,
anonymous members, flexible arrays and odd-sized ints are not flat: their types keep the
generic codec of :mod:`pylibbpf.elf.codec`.

The generated decoder unpacks the record with one ``unpack_from`` and builds the same value the
generic codec returns (a ``dict`` per struct in member order, a ``list`` per array, ``str`` for
``char`` arrays, the enum's ``IntEnum`` member); ``build`` is that second half alone, for
readers that unpack many records with one ``iter_unpack``.  The generated encoder takes only the
common, exact shape (a ``dict`` naming every member, ``list`` arrays of the full length, exact
``int``/``bool``/``float``/``str``/``bytes`` leaves, the checks ``struct`` does not make done
inline); anything else, and any value ``struct`` refuses, goes to the generic encoder, which
either encodes it the same way or raises its usual error naming the member.  So results and
errors are the generic codec's by construction, and the fast path costs one ``pack`` and a type
test per member.
"""

from __future__ import annotations

import enum
import io
import struct
import tokenize
from collections.abc import Callable
from typing import Any

from .btf import INT_BOOL, INT_SIGNED, Btf, BtfKind, BtfType
from .layout import is_char

__all__ = ["FlatCodec", "compile_flat"]

_INTS = {1: "b", 2: "h", 4: "i", 8: "q"}
_FLOATS = {2: "e", 4: "f", 8: "d"}
_MAX_LEAVES = 4096  # beyond this the generated code is too long to be worth it
_UNROLL = 16  # scalar arrays up to this length are checked and built element by element inline
_UNPACK_MAX = 255  # inline loops unpack a record's tuple into locals up to this many items


class _NotFlat(Exception):
    pass


class FlatCodec:
    """The compiled halves of a flat type: ``decode(data, offset=0)`` and ``encode(value)``
    (both fall back to the generic functions given for anything off the fast path)."""

    __slots__ = ("struct", "decode", "encode", "build", "source", "_value", "_consts", "_items")

    def __init__(self, packer: struct.Struct, decode: Callable[..., Any],
                 encode: Callable[[Any], bytes], build: Callable[[tuple[Any, ...]], Any],
                 source: str) -> None:
        self.struct = packer
        self.decode = decode
        self.encode = encode
        #: the value from the tuple ``struct.unpack`` gives: ``decode(data)`` is
        #: ``build(struct.unpack_from(data))`` for any ``data`` of at least ``struct.size``
        #: bytes (a reader that unpacks many records at once calls only this per record)
        self.build = build
        self.source = source
        self._value = ""  # the expression of the value over the unpacked tuple ``t``
        self._consts: dict[str, Any] = {}  # the names it uses
        self._items = 0  # the unpacked tuple's length

    def inline(self, template: str, name: str, **names: Any) -> Callable[..., Any]:
        """Function ``name`` of ``template``, Python source in which ``{value}`` stands for
        the expression of the value (what ``build(t)`` returns) over the unpacked tuple that
        ``{t}`` names, compiled with ``names`` in scope: ``for {t} in source: f({value})``
        then makes each record's value with no call of ``build``.

        ``{t}`` becomes a tuple of locals (``(_0, _1, ...)``, the record's items unpacked by
        the loop itself) when the tuple has at most ``_UNPACK_MAX`` items and the value takes
        them one by one, else the name ``t`` (the value then indexes and slices it)."""
        scope: dict[str, Any] = dict(self._consts, **names)
        target, value = _unpacking(self._value, self._items)
        code = template.replace("{t}", target).replace("{value}", value)
        exec(compile(code, f"<flat codec loop {name}>", "exec"), scope)  # noqa: S102
        return scope[name]  # type: ignore[no-any-return]


def _unpacking(expr: str, items: int) -> tuple[str, str]:
    """(target, value): where the tuple of ``items`` items is unpacked and ``expr`` made from
    it.  ``("(_0, _1, ...)", expr over those locals)`` when there are 1 to ``_UNPACK_MAX``
    items and ``expr`` takes them one by one, else ``("t", expr)``."""
    unpacked = _unpacked(expr) if 0 < items <= _UNPACK_MAX else None
    if unpacked is None:
        return "t", expr
    return "(" + "".join(f"_{k}, " for k in range(items)) + ")", unpacked


def _unpacked(expr: str) -> str | None:
    """``expr`` with each ``t[k]`` (``k`` a number) turned into the local ``_k``, or None when
    it uses ``t`` otherwise (a slice).  Token by token, so a string in it (a member name, as a
    dict key) is never changed, whatever it holds."""
    tokens = list(tokenize.generate_tokens(io.StringIO(expr).readline))
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == tokenize.NAME and tok.string == "t":
            item = tokens[i + 1:i + 4]
            if (len(item) == 3 and item[0].string == "[" and item[1].type == tokenize.NUMBER
                    and item[1].string.isdigit() and item[2].string == "]"):
                out.append((tokenize.NAME, f"_{item[1].string}"))
                i += 4
                continue
            return None
        out.append((tok.type, tok.string))
        i += 1
    return tokenize.untokenize(out).strip()


class _Gen:
    """Walks a flat type once, writing the struct format and the code of both directions."""

    def __init__(self, btf: Btf, resolve: Callable[[int], BtfType],
                 enum_class: Callable[[BtfType], type[enum.IntEnum] | None]) -> None:
        self.btf = btf
        self.resolve = resolve
        self.enum_class = enum_class
        self.fmt: list[str] = []
        self.pos = 0  # bytes laid out so far
        self.index = 0  # items of the unpacked tuple so far
        self.names = 0  # encoder locals so far
        self.consts: dict[str, Any] = {}
        self.enc: list[str] = []  # encoder statements (indented by the caller)
        self.args: list[str] = []  # pack() arguments, in format order
        self.leaves = 0

    def local(self) -> str:
        self.names += 1
        return f"x{self.names}"

    def const(self, value: Any) -> str:
        name = f"c{len(self.consts)}"
        self.consts[name] = value
        return name

    def place(self, offset: int, code: str, size: int) -> int:
        """Lay out ``size`` bytes at ``offset`` as format ``code``; the first tuple index."""
        if offset < self.pos:
            raise _NotFlat  # overlapping or out-of-order members
        if offset > self.pos:
            self.fmt.append(f"{offset - self.pos}x")
        self.fmt.append(code)
        self.pos = offset + size
        first = self.index
        self.index += 1 if code.endswith("s") else max(1, int(code[:-1] or 1))
        self.leaves += 1
        if self.leaves > _MAX_LEAVES:
            raise _NotFlat
        return first

    def scalar(self, t: BtfType) -> tuple[str, int, str, Any]:
        """(format letter, size, kind, extra) of a scalar: kind is "int", "bool", "float" or
        "enum" (extra: the value -> member dict)."""
        kind = t.kind
        if kind == BtfKind.INT:
            size = t.size or 0
            if t.int_offset or t.bits != 8 * size:
                raise _NotFlat
            if t.encoding & INT_BOOL:
                if size != 1:
                    raise _NotFlat
                return "?", 1, "bool", None
            letter = _INTS.get(size)
            if letter is None:
                raise _NotFlat
            return (letter if t.encoding & INT_SIGNED else letter.upper()), size, "int", None
        if kind in (BtfKind.ENUM, BtfKind.ENUM64):
            size = t.size or 4
            letter = _INTS.get(size)
            if letter is None:
                raise _NotFlat
            cls = self.enum_class(t)
            letter = letter if t.kind_flag else letter.upper()
            if cls is None:
                return letter, size, "int", None
            return letter, size, "enum", {int(m): m for m in cls}
        if kind == BtfKind.PTR:
            return "Q", 8, "int", None
        if kind == BtfKind.FLOAT:
            letter = _FLOATS.get(t.size or 0)
            if letter is None:
                raise _NotFlat
            return letter, t.size or 0, "float", None
        raise _NotFlat

    # Each walk lays the type out at ``offset``, returns the decode expression of its value
    # (over the unpacked tuple ``t``) and appends the encoder's checks of local ``var``.

    def walk(self, type_id: int, offset: int, var: str) -> str:
        t = self.resolve(type_id)
        if t.kind == BtfKind.STRUCT:
            return self.struct(t, offset, var)
        if t.kind == BtfKind.ARRAY:
            return self.array(t, offset, var)
        letter, size, kind, extra = self.scalar(t)
        i = self.place(offset, letter, size)
        self.leaf_check(var, kind, extra)
        self.args.append(var)
        if kind == "enum":
            get = self.const(extra.get)
            return f"{get}(t[{i}], t[{i}])"
        return f"t[{i}]"

    def leaf_check(self, var: str, kind: str, extra: Any) -> None:
        if kind == "int":
            self.guard(f"type({var}) is not int")
        elif kind == "bool":
            self.guard(f"type({var}) is not bool")
        elif kind == "float":
            self.guard(f"type({var}) is not float and type({var}) is not int")
        else:  # an enum: an int (IntEnum members are ints); names go the generic way
            self.guard(f"not isinstance({var}, int)")

    def guard(self, condition: str) -> None:
        """A condition sending the value to the generic encoder; consecutive ones are joined
        into one ``if``."""
        if self.enc and self.enc[-1].startswith("if (") and self.enc[-1].endswith(
                "): return slow(value)"):
            self.enc[-1] = self.enc[-1][:-len("): return slow(value)")] + (
                f") or ({condition}): return slow(value)")
        else:
            self.enc.append(f"if ({condition}): return slow(value)")

    def struct(self, t: BtfType, offset: int, var: str) -> str:
        seen: set[str] = set()
        for m in t.members:
            if not m.name or m.bitfield_size or m.bit_offset % 8 or m.name in seen:
                raise _NotFlat
            seen.add(m.name)
        self.guard(f"type({var}) is not dict or len({var}) != {len(seen)}")
        parts = []
        locals_ = [self.local() for _ in t.members]
        if locals_:
            self.enc.append("; ".join(f"{x} = {var}[{m.name!r}]"
                                      for x, m in zip(locals_, t.members, strict=True)))
        for x, m in zip(locals_, t.members, strict=True):
            parts.append(f"{m.name!r}: {self.walk(m.type_id, offset + m.bit_offset // 8, x)}")
        end = offset + (t.size or 0)
        if self.pos > end:
            raise _NotFlat
        if self.pos < end:
            self.fmt.append(f"{end - self.pos}x")
            self.pos = end
        return "{" + ", ".join(parts) + "}"

    def array(self, t: BtfType, offset: int, var: str) -> str:
        count = t.nelems
        if not count:
            raise _NotFlat  # a flexible array: the generic codec's variable-length records
        if is_char(self.btf, t.elem_type_id):
            i = self.place(offset, f"{count}s", count)
            if var == "value":  # the whole value: bytes are the record's, not a string
                self.guard("type(value) is not str")
            y = self.local()  # not ``var``: the generic encoder must get the value as given
            self.enc.append(f"if type({var}) is str: {y} = {var}.encode('utf-8', "
                            "'surrogateescape')")
            self.enc.append(f"elif type({var}) is bytes: {y} = {var}")
            self.enc.append("else: return slow(value)")
            self.guard(f"len({y}) > {count}")
            self.args.append(y)
            return f"t[{i}].split(b'\\0', 1)[0].decode('utf-8', 'surrogateescape')"
        elem = self.resolve(t.elem_type_id)
        self.guard(f"type({var}) is not list or len({var}) != {count}")
        if elem.kind not in (BtfKind.STRUCT, BtfKind.ARRAY):
            letter, size, kind, extra = self.scalar(elem)
            if kind != "enum":  # one run of the format, one slice of the tuple
                i = self.place(offset, f"{count}{letter}", size * count)
                self.leaves += count
                if count <= _UNROLL:
                    locals_ = [self.local() for _ in range(count)]
                    self.enc.append(", ".join(locals_) + f", = {var}")
                    for x in locals_:
                        self.leaf_check(x, kind, None)
                    self.args.extend(locals_)  # the locals just checked: no ``*`` call
                    # a list display: cheaper than a slice and a copy
                    return "[" + ", ".join(f"t[{k}]" for k in range(i, i + count)) + "]"
                y = self.local()
                self.enc.append(f"for {y} in {var}:")
                self.leaf_check(f"{y}", kind, None)
                self.enc[-1] = "    " + self.enc[-1]
                self.enc.append("pass")  # ends the loop: no guard joins the one inside
                self.args.append(f"*{var}")
                return f"[*t[{i}:{i + count}]]"
        size = self.btf.size_of(elem)
        locals_ = [self.local() for _ in range(count)]
        self.enc.append(", ".join(locals_) + f", = {var}")
        items = [self.walk(elem.id, offset + k * size, x) for k, x in enumerate(locals_)]
        return "[" + ", ".join(items) + "]"


def compile_flat(btf: Btf, type_id: int, resolve: Callable[[int], BtfType],
                 enum_class: Callable[[BtfType], type[enum.IntEnum] | None],
                 slow_decode: Callable[[Any, int], Any],
                 slow_encode: Callable[[Any], bytes]) -> FlatCodec | None:
    """The compiled codec of ``type_id``, or ``None`` when the type is not flat.

    ``resolve`` and ``enum_class`` are the generic codec's (so enum values are members of the
    same classes); ``slow_decode(data, offset)`` and ``slow_encode(value)`` are the generic
    codec's whole-record functions, called for anything off the fast path."""
    gen = _Gen(btf, resolve, enum_class)
    try:
        t = resolve(type_id)
        if t.kind not in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.PTR, BtfKind.FLOAT,
                          BtfKind.ARRAY, BtfKind.STRUCT):
            return None
        expr = gen.walk(type_id, 0, "value")
    except _NotFlat:
        return None
    size = btf.size_of(t)
    if gen.pos != size:
        return None
    packer = struct.Struct("=" + "".join(gen.fmt))
    if packer.size != size:
        return None
    body = "\n        ".join(gen.enc)
    # decode unpacks into locals where the value takes the items one by one (as inline loops)
    items = len(packer.unpack(bytes(packer.size)))
    target, made = _unpacking(expr, items)
    source = (
        "def decode(data, off=0):\n"
        "    try:\n"
        f"        {target} = unpack_from(data, off)\n"
        "    except Exception:\n"
        "        return slow_decode(data, off)\n"
        "    if off < 0:\n"
        "        return slow_decode(data, off)\n"
        f"    return {made}\n"
        "\n"
        "def build(t):\n"
        f"    return {expr}\n"
        "\n"
        "def encode(value):\n"
        "    try:\n"
        f"        {body}\n"
        f"        return pack({', '.join(gen.args)})\n"
        "    except Exception:\n"
        "        pass\n"
        "    return slow(value)\n"
    )
    scope: dict[str, Any] = dict(gen.consts, unpack_from=packer.unpack_from, pack=packer.pack,
                                 slow_decode=slow_decode, slow=slow_encode)
    exec(compile(source, f"<flat codec of BTF type {type_id}>", "exec"), scope)  # noqa: S102
    flat = FlatCodec(packer, scope["decode"], scope["encode"], scope["build"], source)
    flat._value, flat._consts, flat._items = expr, gen.consts, items
    return flat
