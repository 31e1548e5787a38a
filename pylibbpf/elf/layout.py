"""Where things are in a BTF type: ``sizeof``, ``offsetof`` and NumPy dtypes.

``offsetof(btf, "struct event", "hdr.pid")`` follows a member path as C does: dots through
nested structs and unions (members of anonymous ones are found by their own names), ``[i]``
through arrays.  Pure Python over :class:`~pylibbpf.elf.btf.Btf`.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from .btf import INT_BOOL, INT_CHAR, INT_SIGNED, MAX_DEPTH, Btf, BtfKind, BtfType

__all__ = ["find_type", "is_char", "numpy_dtype", "offsetof", "sizeof"]

_STEP = re.compile(r"\.?([A-Za-z_]\w*)|\[(\d+)\]")
_ORDER = "<" if sys.byteorder == "little" else ">"


def find_type(btf: Btf, type_: BtfType | int | str) -> BtfType:
    """The type given as a :class:`BtfType`, an id, or a C name (``"struct event"``,
    ``"event"``, ``"u32"``); :class:`KeyError` when the name is not in ``btf``."""
    if isinstance(type_, str):
        found = btf.find_c_type(type_)
        if found is None:
            raise KeyError(f"no type {type_!r} in this BTF")
        return found
    return btf.type_by_id(type_) if isinstance(type_, int) else type_


def is_char(btf: Btf, type_id: int) -> bool:
    """Plain ``char`` only: ``unsigned char``/``__u8`` arrays are bytes of data (ints)."""
    t = btf.resolve(type_id)
    return t.kind == BtfKind.INT and t.size == 1 and (
        bool(t.encoding & INT_CHAR) or t.name == "char")


def sizeof(btf: Btf, type_: BtfType | int | str) -> int:
    """``sizeof(type)`` in bytes (a flexible array member counts for nothing, as in C)."""
    return btf.size_of(find_type(btf, type_))


def _member(btf: Btf, container: BtfType, name: str, depth: int = 0) -> tuple[int, int] | None:
    """(bit offset, type id) of member ``name``, looking into anonymous members."""
    if depth > MAX_DEPTH:
        return None
    for m in container.members:
        if m.name == name:
            if m.bitfield_size:
                raise ValueError(f"{name} is a bitfield: it has no byte offset")
            return m.bit_offset, m.type_id
        if not m.name:
            inner = btf.resolve(m.type_id)
            found = _member(btf, inner, name, depth + 1)
            if found is not None:
                return m.bit_offset + found[0], found[1]
    return None


def offsetof(btf: Btf, type_: BtfType | int | str, path: str) -> int:
    """``offsetof(type, path)`` in bytes: ``"pid"``, ``"hdr.pid"``, ``"args[3]"``.

    Raises :class:`KeyError` for a member the type does not have, :class:`ValueError` for a
    malformed path, a bitfield, or an index past the array."""
    cur = btf.resolve(find_type(btf, type_))
    label = btf.type_name(cur)
    bits = 0
    pos = 0
    steps = 0
    while pos < len(path):
        step = _STEP.match(path, pos)
        if step is None or (steps == 0 and path.startswith(".")):
            raise ValueError(f"bad member path {path!r} at {path[pos:]!r}")
        name, index = step.group(1), step.group(2)
        if name is not None:
            if cur.kind not in (BtfKind.STRUCT, BtfKind.UNION):
                raise ValueError(f"{path[:pos] or label} is not a struct or union")
            found = _member(btf, cur, name)
            if found is None:
                raise KeyError(f"{label} has no member {path[:step.end()].lstrip('.')!r}")
            bits += found[0]
            cur = btf.resolve(found[1])
        else:
            if cur.kind != BtfKind.ARRAY:
                raise ValueError(f"{path[:pos] or label} is not an array")
            i = int(index)
            if cur.nelems and i >= cur.nelems:
                raise ValueError(f"index {i} is past {path[:pos]}[{cur.nelems}]")
            elem = btf.resolve(cur.elem_type_id)
            bits += 8 * i * btf.size_of(elem)
            cur = elem
        pos = step.end()
        steps += 1
    if not steps:
        raise ValueError("offsetof needs a member path")
    return bits // 8


def numpy_dtype(btf: Btf, type_: BtfType | int | str) -> Any:
    """A NumPy structured dtype for a struct of ints, floats, enums and fixed arrays
    (char arrays become ``S<n>``); for :meth:`EventBatch.to_numpy`."""
    import numpy as np

    def dtype_of(type_id: int) -> Any:
        t = btf.resolve(type_id)
        if t.kind == BtfKind.INT:
            if t.encoding & INT_BOOL:
                return np.dtype("?")
            kind = "i" if t.encoding & INT_SIGNED else "u"
            return np.dtype(f"{_ORDER}{kind}{t.size}")
        if t.kind in (BtfKind.ENUM, BtfKind.ENUM64):
            return np.dtype(f"{_ORDER}{'i' if t.kind_flag else 'u'}{t.size}")
        if t.kind == BtfKind.PTR:
            return np.dtype(f"{_ORDER}u8")
        if t.kind == BtfKind.FLOAT:
            return np.dtype(f"{_ORDER}f{t.size}")
        if t.kind == BtfKind.ARRAY:
            if is_char(btf, t.elem_type_id):
                return np.dtype(f"S{t.nelems}")
            return np.dtype((dtype_of(t.elem_type_id), (t.nelems,)))
        if t.kind in (BtfKind.STRUCT, BtfKind.UNION):
            names, formats, offsets = [], [], []
            for m in t.members:
                if m.bitfield_size or not m.name:
                    continue  # no NumPy equivalent: read them with a Codec
                names.append(m.name)
                formats.append(dtype_of(m.type_id))
                offsets.append(m.bit_offset // 8)
            spec: Any = {"names": names, "formats": formats, "offsets": offsets,
                         "itemsize": t.size}
            return np.dtype(spec)
        raise ValueError(f"BTF type [{t.id}] of kind {t.kind.name} has no NumPy dtype")

    return dtype_of(find_type(btf, type_).id)
