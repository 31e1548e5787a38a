"""Global variables of a BPF object (``.bss``, ``.data``, ``.rodata``, ``.data.*``) by name.

Before the maps exist, reads and writes go to libbpf's initial image of the section (so
``.rodata`` constants can be set).  Once ``prepare()`` or ``load()`` has created the maps they go
to the kernel's memory, mapped with ``mmap`` on the map's fd: read-write for ``.bss``/``.data``,
read-only for ``.rodata`` (frozen by libbpf).  libbpf 1.1's ``bpf_map__initial_value`` still
points at a private copy after a plain load, so it is never used after the maps are created.

Variable layouts come from the object's BTF ``DATASEC`` as libbpf fixed it up at open
(:func:`pylibbpf.btf.object_btf`), read by the same code as :class:`pylibbpf.elf.ObjectFile`'s
(:mod:`pylibbpf.elf.datasec`).
"""

from __future__ import annotations

import errno as _errno
import mmap
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from . import _args
from .btf import object_btf
from .elf.btf import BtfKind
from .elf.codec import Codec, codec
from .elf.datasec import Variable, datasec_variables
from .elf.errors import ElfError
from .errors import BpfError, StateError
from .lowlevel import to_bytes

if TYPE_CHECKING:
    from ._handle import Lifetime
    from .maps.of_object import ObjectMap
    from .object import Object


def _variables(obj: Object, section: str) -> dict[str, Variable]:
    try:
        btf = object_btf(obj)
        datasec = btf.find(section, BtfKind.DATASEC)
        variables = [] if datasec is None else datasec_variables(btf, datasec.secinfos)
    except BpfError as exc:
        if exc.errno != _errno.ENOENT:
            raise
        raise BpfError(_errno.ENOENT, f"object {obj.name!r} has no BTF: global variables of "
                       f"{section} cannot be named (compile with -g)") from None
    except ElfError as exc:  # BTF that libbpf accepted but pylibbpf.elf cannot read
        raise BpfError(_errno.EINVAL, f"{section} of object {obj.name!r}: {exc}") from None
    if datasec is None:
        raise KeyError(f"object {obj.name!r} has no global data section {section!r}")
    return {var.name: var for var in variables}


class GlobalData(Mapping[str, bytes]):
    """The variables of one global-data section, as a mapping of name to ``bytes``.

    ``data["counter"]`` reads, ``data["counter"] = 5`` writes (ints, bytes or ctypes objects
    of the variable's exact size).  An int (or bool) written to an integer, ``_Bool`` or enum
    variable is checked against its BTF type: a ``_Bool`` takes only ``True``/``False``, other
    ints must fit the type's range (``ValueError`` naming the variable).  :meth:`get_int` /
    :meth:`read` give typed access.
    """

    def __init__(self, obj: Object, life: Lifetime, section: str) -> None:
        _args.cstr(section, "section")
        self._obj = obj
        self._life = life  # the object's: open? loaded?
        self.section = section
        self._map: ObjectMap = obj.find_map_by_name(section)
        self._vars = _variables(obj, section)
        self._mmap: mmap.mmap | None = None
        self._scalars: dict[str, Codec | None] = {}

    @property
    def variables(self) -> dict[str, Variable]:
        """Each variable's name, offset, size, BTF type (id and C name) and linkage."""
        return dict(self._vars)

    @property
    def map(self) -> ObjectMap:
        """The internal map that holds the section."""
        return self._map

    @property
    def object(self) -> Object:
        """The object the section belongs to."""
        self._life.check()
        return self._obj

    @property
    def readonly(self) -> bool:
        """True for ``.rodata``-style sections once the maps exist (prepared or loaded)."""
        return self.section.startswith(".rodata") and self._maps_exist()

    def _maps_exist(self) -> bool:
        return self._life.prepared or self._life.loaded

    def _var(self, name: str) -> Variable:
        try:
            return self._vars[name]
        except KeyError:
            raise KeyError(f"no variable {name!r} in {self.section} of object "
                           f"{self._obj.name!r}; it has: {', '.join(self._vars)}") from None

    def _memory(self) -> tuple[Any, int]:
        """(buffer, size) of the live memory: libbpf's image before the maps exist, the
        kernel's once prepare() or load() has created them."""
        self._life.check()
        if not self._maps_exist():
            image = self._map.initial_value_buffer()  # BpfError ENOENT if there is none
            return image, len(image)
        if self._mmap is None:
            value_size = self._map.value_size
            length = (value_size + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE
            prot = mmap.PROT_READ if self.section.startswith(".rodata") else (
                mmap.PROT_READ | mmap.PROT_WRITE)
            try:
                self._mmap = mmap.mmap(self._map.fd, length, mmap.MAP_SHARED, prot)
            except OSError as exc:
                raise BpfError(exc.errno or _errno.EINVAL, f"failed to map {self.section} "
                               f"of object {self._obj.name!r} into memory") from None
        return self._mmap, self._map.value_size

    def read(self, name: str) -> bytes:
        """The current bytes of variable ``name``."""
        var = self._var(name)
        memory, size = self._memory()
        self._within(var, size)
        if isinstance(memory, mmap.mmap):
            return memory[var.offset:var.offset + var.size]
        return bytes(memory[var.offset:var.offset + var.size])

    def write(self, name: str, value: Any) -> None:
        """Set variable ``name`` (exact size; ints are encoded in native byte order)."""
        var = self._var(name)
        if self.readonly:
            raise StateError(_errno.EPERM, f"{name!r} is in {self.section}, which is read-only "
                             f"after load (and prepare()); set it before load() or "
                             f"prepare() (object {self._obj.name!r} is {self._life.state})")
        if value.__class__ is int or value.__class__ is bool:
            data = self._scalar(var, value)
        else:
            data = to_bytes(value, var.size, f"value of {name!r}")
        memory, size = self._memory()
        self._within(var, size)
        memory[var.offset:var.offset + var.size] = data

    def _scalar(self, var: Variable, value: int) -> bytes:
        """``value`` encoded for an integer, ``_Bool`` or enum variable by its BTF type (so
        ``flag = 5`` is refused, not stored as 0x05); other variables take ints as bytes."""
        if var.name not in self._scalars:
            btf = object_btf(self._obj)
            t = btf.resolve(var.type_id)
            if t.kind == BtfKind.VAR:
                t = btf.resolve(t.type_id or 0)
            scalar = t.kind in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64) and t.size == var.size
            self._scalars[var.name] = codec(btf, t) if scalar else None
        found = self._scalars[var.name]
        if found is None:
            return to_bytes(value, var.size, f"value of {var.name!r}")
        try:
            return found.encode(value)
        except ValueError as exc:
            raise ValueError(f"{var.name!r} in {self.section} ({found.name}): {exc}") from None

    def _within(self, var: Variable, size: int) -> None:
        # the offsets come from the object's BTF: never read or write past the section
        if var.offset + var.size > size:
            raise BpfError(_errno.EINVAL, f"variable {var.name!r} (offset {var.offset}, "
                           f"{var.size} bytes) lies outside {self.section} ({size} bytes)")

    def get_int(self, name: str, *, signed: bool = False) -> int:
        """Variable ``name`` read as a native-endian integer."""
        import sys

        return int.from_bytes(self.read(name), sys.byteorder, signed=signed)

    def close(self) -> None:
        """Unmap the kernel memory (done by :meth:`Object.close`)."""
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None

    def __getitem__(self, name: str) -> bytes:
        return self.read(name)

    def __setitem__(self, name: str, value: Any) -> None:
        self.write(name, value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._vars)

    def __len__(self) -> int:
        return len(self._vars)

    def __repr__(self) -> str:
        return f"<GlobalData {self.section} of {self._obj.name!r}: {', '.join(self._vars)}>"
