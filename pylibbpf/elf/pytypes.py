"""BTF made from Python type descriptions: a ``ctypes.Structure`` or a NumPy structured dtype.

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

import ctypes
import sys
from typing import Any

from .btf import INT_BOOL, INT_CHAR, INT_SIGNED, VOID, Btf, BtfKind, BtfMember, BtfType

__all__ = ["btf_from_ctypes", "btf_from_dtype"]

_INT_NAMES = {1: "char", 2: "short", 4: "int", 8: "long long", 16: "__int128"}
_SIMPLE_INTS = {"b": True, "B": False, "h": True, "H": False, "i": True, "I": False,
                "l": True, "L": False, "q": True, "Q": False}
_FLOAT_NAMES = {2: "_Float16", 4: "float", 8: "double", 16: "long double"}


class _Writer:
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


# -------------------------------------------------------------------------------------- ctypes

def _is_foreign_order(cls: type) -> bool:
    other = "BigEndian" if sys.byteorder == "little" else "LittleEndian"
    return any(base.__name__.startswith(other) for base in cls.__mro__)


def _ctypes_type(w: _Writer, cls: Any, made: dict[Any, int]) -> int:
    if cls in made:
        return made[cls]
    if isinstance(cls, type) and issubclass(cls, (ctypes.Structure, ctypes.Union)):
        made[cls] = type_id = _ctypes_composite(w, cls, made)
        return type_id
    if isinstance(cls, type) and issubclass(cls, ctypes.Array):
        length: int = getattr(cls, "_length_")  # noqa: B009 (a class attribute)
        return w.array(_ctypes_type(w, cls._type_, made), length)
    if isinstance(cls, type) and issubclass(cls, ctypes._Pointer):
        return w.pointer()
    code = getattr(cls, "_type_", None)
    if not isinstance(cls, type) or not issubclass(cls, ctypes._SimpleCData) or (
            not isinstance(code, str)):
        raise TypeError(f"{cls!r} is not a ctypes type pylibbpf can lay out")
    if _is_foreign_order(cls):
        raise ValueError(f"{cls.__name__} is not in the host's byte order")
    size = ctypes.sizeof(cls)
    if code == "c":
        return w.integer(1, True, char=True)
    if code == "?":
        return w.integer(size, False, boolean=True)
    if code in _SIMPLE_INTS:
        return w.integer(size, _SIMPLE_INTS[code])
    if code in "fdg":
        return w.floating(size)
    if code in "zPZ":
        return w.pointer()
    raise TypeError(f"ctypes type {cls.__name__} ({code!r}) has no BTF equivalent")


def _bitfield(field: Any) -> tuple[int, int]:
    """(bits, bit offset in its storage) of a ctypes bitfield descriptor; bits 0 if none."""
    is_bitfield = getattr(field, "is_bitfield", None)  # Python >= 3.14 says so directly
    if is_bitfield is not None:
        return (field.bit_size, field.bit_offset) if is_bitfield else (0, 0)
    if field.size >> 16:  # before 3.14: (bits << 16) | bit offset
        return field.size >> 16, field.size & 0xFFFF
    return 0, 0


def _ctypes_composite(w: _Writer, cls: Any, made: dict[Any, int]) -> int:
    if _is_foreign_order(cls):
        raise ValueError(f"{cls.__name__} is not in the host's byte order")
    anonymous = set(getattr(cls, "_anonymous_", ()))
    members = []
    for spec in cls._fields_:
        name, ftype = spec[0], spec[1]
        field = getattr(cls, name)
        bits, shift = _bitfield(field)
        type_id = _ctypes_type(w, ftype, made)
        members.append(BtfMember("" if name in anonymous else name, type_id,
                                 8 * field.offset + shift, bits))
    kind = BtfKind.UNION if issubclass(cls, ctypes.Union) else BtfKind.STRUCT
    return w.add(kind=kind, name=cls.__name__, size=ctypes.sizeof(cls), vlen=len(members),
                 kind_flag=any(m.bitfield_size for m in members), members=tuple(members))


def btf_from_ctypes(*classes: Any) -> Btf:
    """BTF holding each ctypes type in ``classes`` (structs and unions under their class
    names, with everything they contain)."""
    w = _Writer()
    made: dict[Any, int] = {}
    for cls in classes:
        _ctypes_type(w, cls, made)
    return w.btf()


# --------------------------------------------------------------------------------------- NumPy

def _dtype_type(w: _Writer, dt: Any, name: str = "") -> int:
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
    w = _Writer()
    _dtype_type(w, dt, name)
    return w.btf()
