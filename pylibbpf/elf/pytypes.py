"""BTF made from Python type descriptions: :class:`BtfWriter`, and NumPy structured dtypes
(``ctypes`` classes are described by :mod:`pylibbpf.typesource` with the same writer: this
package never imports ctypes).

Every type source becomes BTF, so that the one codec (:mod:`pylibbpf.elf.codec`) decodes and
encodes it with the same value conventions as a type from an object:

=================================  =====================================================
ctypes / NumPy                     BTF (and so the value)
=================================  =====================================================
``c_char * N`` / ``S<N>``          ``char[N]``: ``str``
``c_bool`` / ``?``                 ``_Bool``: ``bool``
other integers / ``i``, ``u``      INT of that size and sign: ``int``
``c_float``... / ``f2 f4 f8``      FLOAT: ``float``
pointers, ``c_void_p``             PTR: ``int``
``T * N`` / a sub-array            ARRAY: ``list``
Structure, Union / a record dtype  STRUCT, UNION: ``dict``; ``_anonymous_`` members and
                                   bitfields as in C
=================================  =====================================================

Offsets and sizes are the ones ctypes or NumPy computed (``_pack_``, ``align=True``...).
Byte order must be the host's: the codec reads native integers.
"""

from __future__ import annotations

import sys
from typing import Any

from .btf import INT_BOOL, INT_CHAR, INT_SIGNED, VOID, Btf, BtfKind, BtfMember, BtfType

__all__ = ["BtfWriter", "btf_from_dtype"]

_INT_NAMES = {1: "char", 2: "short", 4: "int", 8: "long long", 16: "__int128"}
_FLOAT_NAMES = {2: "_Float16", 4: "float", 8: "double", 16: "long double"}


class BtfWriter:
    """Appends BTF types, sharing the scalar ones."""

    def __init__(self) -> None:
        self.types: list[BtfType] = [VOID]
        self.shared: dict[tuple[Any, ...], int] = {}

    def add(self, **fields: Any) -> int:
        type_id = len(self.types)
        self.types.append(BtfType(id=type_id, **fields))
        return type_id

    def scalar(self, key: tuple[Any, ...], **fields: Any) -> int:
        found = self.shared.get(key)
        if found is None:
            found = self.shared[key] = self.add(**fields)
        return found

    def integer(self, size: int, signed: bool, *, char: bool = False,
                boolean: bool = False) -> int:
        if boolean:
            name = "_Bool"
        elif char:
            name = "char"
        else:
            base = _INT_NAMES.get(size, f"__int{8 * size}")
            name = base if signed and size > 1 else (
                "signed char" if signed else f"unsigned {base}")
        encoding = (INT_SIGNED if signed else 0) | (INT_CHAR if char else 0) | (
            INT_BOOL if boolean else 0)
        return self.scalar(("int", name, size), kind=BtfKind.INT, name=name, size=size,
                           encoding=encoding, bits=8 * size)

    def floating(self, size: int) -> int:
        name = _FLOAT_NAMES.get(size, f"float{8 * size}")
        return self.scalar(("float", size), kind=BtfKind.FLOAT, name=name, size=size)

    def pointer(self) -> int:
        return self.scalar(("ptr",), kind=BtfKind.PTR, type_id=0)

    def array(self, elem: int, count: int) -> int:
        index = self.integer(4, False)
        return self.add(kind=BtfKind.ARRAY, elem_type_id=elem, index_type_id=index,
                        nelems=count)

    def btf(self) -> Btf:
        return Btf(list(self.types))


# --------------------------------------------------------------------------------------- NumPy

def _dtype_type(w: BtfWriter, dt: Any, name: str = "") -> int:
    if dt.subdtype is not None:
        base, shape = dt.subdtype
        type_id = _dtype_type(w, base)
        for count in reversed(shape):
            type_id = w.array(type_id, count)
        return type_id
    if dt.names is not None:
        members = []
        for field in dt.names:
            fdt, offset = dt.fields[field][:2]
            members.append(BtfMember(field, _dtype_type(w, fdt), 8 * offset))
        return w.add(kind=BtfKind.STRUCT, name=name, size=dt.itemsize, vlen=len(members),
                     members=tuple(members))
    if dt.byteorder not in ("=", "|") and dt.byteorder != ("<" if sys.byteorder == "little"
                                                           else ">"):
        raise ValueError(f"dtype {dt} is not in the host's byte order")
    kind = dt.kind
    if kind == "b":
        return w.integer(dt.itemsize, False, boolean=True)
    if kind in "iu":
        return w.integer(dt.itemsize, kind == "i")
    if kind == "f":
        return w.floating(dt.itemsize)
    if kind == "S":
        return w.array(w.integer(1, True, char=True), dt.itemsize)
    if kind == "V":
        return w.array(w.integer(1, False), dt.itemsize)
    raise TypeError(f"dtype {dt} ({kind!r}) has no BTF equivalent")


def btf_from_dtype(dtype: Any, name: str) -> Btf:
    """BTF holding the structured NumPy ``dtype`` as ``struct name`` (a nested record field
    is a struct with no tag of its own)."""
    import numpy as np

    dt = np.dtype(dtype)
    if dt.names is None:
        raise TypeError(f"dtype {dt} is not a structured (record) dtype")
    w = BtfWriter()
    _dtype_type(w, dt, name)
    return w.btf()
