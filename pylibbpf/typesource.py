"""``Types``: a set of C types from any source, decoded by the one codec.

C text and headers are compiled into BTF by :mod:`pylibbpf.elf.csource`, NumPy dtypes are
described by :mod:`pylibbpf.elf.pytypes`; ctypes classes are described here (the ``elf``
package never imports ctypes), with the same value conventions: ``c_char * N`` is a ``char``
array (``str``), ``c_bool`` a ``_Bool``, nested structures dicts, ``_anonymous_`` members and
bitfields as in C.

Every source becomes BTF, then :func:`pylibbpf.elf.codec.codec` does the rest, so a type from a
header decodes exactly like the same type from an object's BTF::

    types = Types.from_header("event.h", include_dirs=["include"])    # clang, cached
    types = Types.from_c("struct event { __u32 pid; char comm[16]; };", cflags=[...])
    types = Types.from_ctypes(Event)                                   # ctypes.Structure
    types = Types.from_dtype(np.dtype([...]), "event")                 # NumPy record dtype
    types["struct event"].decode(data)           # a Codec
    types.sizeof("struct event"), types.offsetof("struct event", "args")
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .elf.btf import Btf, BtfKind, BtfMember, BtfType
from .elf.codec import Codec, codec
from .elf.csource import compile_btf, declared_names
from .elf.layout import numpy_dtype, offsetof, sizeof
from .elf.pytypes import BtfWriter, btf_from_dtype

__all__ = ["Types", "btf_from_ctypes"]

_SIMPLE_INTS = {"b": True, "B": False, "h": True, "H": False, "i": True, "I": False,
                "l": True, "L": False, "q": True, "Q": False}
_TAGS = {BtfKind.STRUCT: "struct", BtfKind.UNION: "union", BtfKind.ENUM: "enum",
         BtfKind.ENUM64: "enum"}
_BASE_TYPES = ("__u8", "__s8", "__u16", "__s16", "__u32", "__s32", "__u64", "__s64")
# each guarded, so that a -D__u32=... of the caller's cflags wins
_PRELUDE = "\n".join(f"#ifndef {t}\ntypedef {'unsigned' if t[2] == 'u' else 'signed'} "
                     f"{ {'8': 'char', '16': 'short', '32': 'int', '64': 'long long'}[t[3:]] } "
                     f"{t};\n#endif" for t in _BASE_TYPES)


def _is_foreign_order(cls: type) -> bool:
    other = "BigEndian" if sys.byteorder == "little" else "LittleEndian"
    return any(base.__name__.startswith(other) for base in cls.__mro__)


def _ctypes_type(w: BtfWriter, cls: Any, made: dict[Any, int]) -> int:
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


def _ctypes_composite(w: BtfWriter, cls: Any, made: dict[Any, int]) -> int:
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
    w = BtfWriter()
    made: dict[Any, int] = {}
    for cls in classes:
        _ctypes_type(w, cls, made)
    return w.btf()


class Types:
    """C types with their BTF: look one up by its C name (``types["struct event"]``) for its
    :class:`~pylibbpf.elf.codec.Codec`, or ask for sizes and offsets."""

    def __init__(self, btf: Btf, origin: str = "BTF") -> None:
        self.btf = btf
        self.origin = origin

    @classmethod
    def from_btf(cls, btf: Btf, origin: str = "BTF") -> Types:
        """The types of a :class:`~pylibbpf.elf.btf.Btf` (an object's, a kernel module's...)."""
        return cls(btf, origin)

    @classmethod
    def from_c(cls, source: str, *names: str, include_dirs: Sequence[str | os.PathLike[str]]
               = (), cflags: Sequence[str] = (), clang: str | None = None,
               linux_types: bool = True) -> Types:
        """Types declared in the C text ``source``, compiled with clang (cached by content).

        ``names`` (``"struct event"``, ``"u32"``) picks the types to keep; by default every
        tag and typedef ``source`` itself declares.  ``linux_types`` declares ``__u8`` ...
        ``__s64`` first, unless ``source`` includes headers (which may declare them)."""
        prelude = _PRELUDE + "\n" if linux_types and "#include" not in source else ""
        wanted = names or tuple(declared_names(source))
        if not wanted:
            raise ValueError("no type to compile: the C text declares no struct, union, enum "
                             "or typedef; name the types")
        btf = compile_btf(prelude + source, wanted,
                          include_dirs=[os.fspath(d) for d in include_dirs], cflags=cflags,
                          clang=clang)
        return cls(btf, "C declarations")

    @classmethod
    def from_header(cls, path: str | os.PathLike[str], *names: str,
                    include_dirs: Sequence[str | os.PathLike[str]] = (),
                    cflags: Sequence[str] = (), clang: str | None = None,
                    linux_types: bool = True) -> Types:
        """Types of the header ``path`` (with its own folder and ``include_dirs`` searched for
        what it includes); by default every tag and typedef the header itself declares.

        ``linux_types`` declares ``__u8`` ... ``__s64`` before the header, unless it includes
        headers itself: a libbpf-tools header (``execsnoop.h``) uses them and relies on the
        ``.bpf.c`` or the user side having included ``vmlinux.h`` or ``<linux/types.h>``."""
        header = Path(path).resolve()
        text = header.read_text(errors="replace")
        wanted = names or tuple(declared_names(text))
        dirs = [os.fspath(header.parent), *(os.fspath(d) for d in include_dirs)]
        prelude = _PRELUDE + "\n" if linux_types and "#include" not in text else ""
        btf = compile_btf(f'{prelude}#include "{header}"\n', wanted, include_dirs=dirs,
                          cflags=cflags, clang=clang)
        return cls(btf, header.name)

    @classmethod
    def from_ctypes(cls, *classes: Any) -> Types:
        """Types of ctypes classes: ``Structure``/``Union`` subclasses under their class
        names (``types["struct Event"]`` or ``types["Event"]``), with what they contain."""
        return cls(btf_from_ctypes(*classes), ", ".join(getattr(c, "__name__", repr(c))
                                                         for c in classes))

    @classmethod
    def from_dtype(cls, dtype: Any, name: str = "record") -> Types:
        """A NumPy structured dtype as ``struct name``."""
        return cls(btf_from_dtype(dtype, name), f"dtype {name}")

    def _find(self, type_: BtfType | int | str) -> BtfType:
        if isinstance(type_, str):
            found = self.btf.find_c_type(type_)
            if found is None:
                known = ", ".join(self.names()[:12]) or "none"
                raise KeyError(f"no type {type_!r} in the types of {self.origin} "
                               f"(named types: {known})")
            return found
        return self.btf.type_by_id(type_) if isinstance(type_, int) else type_

    def codec(self, type_: BtfType | int | str) -> Codec:
        """The codec of a type by C name (``"struct event"``, ``"event"``), id or BtfType."""
        return codec(self.btf, self._find(type_))

    __getitem__ = codec

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.btf.find_c_type(name) is not None

    def sizeof(self, type_: BtfType | int | str) -> int:
        """``sizeof`` the type, in bytes."""
        return sizeof(self.btf, self._find(type_))

    def offsetof(self, type_: BtfType | int | str, path: str) -> int:
        """``offsetof(type, path)`` in bytes; ``path`` as in C: ``"hdr.pid"``, ``"args[2]"``."""
        return offsetof(self.btf, self._find(type_), path)

    def numpy_dtype(self, type_: BtfType | int | str) -> Any:
        """The NumPy structured dtype of a struct."""
        return numpy_dtype(self.btf, self._find(type_))

    def names(self) -> list[str]:
        """The named structs, unions, enums and typedefs, as C spells them."""
        out = []
        for t in self.btf.types:
            if t.name and t.kind in _TAGS:
                out.append(f"{_TAGS[t.kind]} {t.name}")
            elif t.name and t.kind == BtfKind.TYPEDEF:
                out.append(t.name)
        return list(dict.fromkeys(out))

    def of_size(self, size: int) -> list[str]:
        """The named structs and unions of ``size`` bytes (a ring record's candidates)."""
        return sorted({f"{_TAGS[t.kind]} {t.name}" for t in self.btf.types
                       if t.kind in (BtfKind.STRUCT, BtfKind.UNION) and t.name
                       and t.size == size})

    def __repr__(self) -> str:
        return f"<Types of {self.origin}: {len(self.btf.types) - 1} BTF types>"
