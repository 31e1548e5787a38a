"""``Map``: what every BPF map has and does, whichever kind it is.

Element operations are one syscall each with sizes validated first, so no key or value of the
wrong length ever reaches the kernel.  Keys and values are ``bytes`` by default; ints and
ctypes objects of the right size are accepted wherever a key or value is.  Per-CPU maps return
one value per possible CPU.  Maps also behave like dicts.

Every map is an :class:`~pylibbpf.ObjectMap` (a map of an :class:`~pylibbpf.Object`) or a
:class:`~pylibbpf.StandaloneMap` (a map with an fd of its own); each provides what differs
between them (where its fd and its description come from, how it pins and closes).
"""

from __future__ import annotations

import errno as _errno
import os
from typing import TYPE_CHECKING, Any, ClassVar

from .. import _args, _ffi
from .._handle import Handle
from ..enums import MapType, enum_or_int
from ..errors import BpfError, NotSupportedError, bpffs_error, error_from_errno
from ..lowlevel import map_create
from ..typed import TypedMap
from ._bulk import Bulk
from ._elements import Bound, bind, layout_of
from ._memory import Mapping, ndarray

if TYPE_CHECKING:
    from ..elf.btf import Btf
    from ..info import MapInfo
    from ..object import Object
    from ._numpy import MapArrays
    from .standalone import StandaloneMap


class Map(Handle, Bulk):
    """A BPF map.  From an :class:`~pylibbpf.Object` (``obj.maps["name"]``, an
    :class:`~pylibbpf.ObjectMap`) or standalone (a :class:`~pylibbpf.StandaloneMap`):
    :meth:`create`, :meth:`from_pinned`, :meth:`from_id`, :meth:`from_fd`."""

    _what = "BPF map"

    # The kind of map the constructors below make: the subclass declared with owns_fd=True
    # (StandaloneMap) registers itself, so that this module needs no import of it.
    _standalone: ClassVar[type[StandaloneMap]]

    def __init_subclass__(cls, *, owns_fd: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if owns_fd:
            Map._standalone = cls  # type: ignore[assignment]

    def __init__(self, name: str) -> None:  # maps come from an Object or the constructors below
        super().__init__()
        self._name = name
        self._bound: Bound | None = None
        self._no_batch = False
        self._mapping: Mapping | None = None

    # ----------------------------------------------------------------------------- construction

    @classmethod
    def create(cls, map_type: MapType | int, key_size: int, value_size: int, max_entries: int,
               *, name: str | None = None, flags: int = 0, inner_map_fd: int | None = None,
               numa_node: int | None = None, map_extra: int = 0, btf_fd: int = 0,
               btf_key_type_id: int = 0, btf_value_type_id: int = 0) -> StandaloneMap:
        """Create a map directly (``bpf_map_create``), without an object."""
        fd = map_create(map_type, key_size, value_size, max_entries, name=name, flags=flags,
                        inner_map_fd=inner_map_fd, numa_node=numa_node, map_extra=map_extra,
                        btf_fd=btf_fd, btf_key_type_id=btf_key_type_id,
                        btf_value_type_id=btf_value_type_id)
        return cls._standalone(fd, f"map {name or ''!r} (fd {fd})")

    @classmethod
    def from_pinned(cls, path: str | os.PathLike[str]) -> StandaloneMap:
        """Open a map pinned in a bpffs at ``path``.

        A path outside a BPF filesystem raises :class:`~pylibbpf.BpfError` saying so (with the
        kernel's errno, EACCES)."""
        raw = _args.cpath(path)
        try:
            fd = _ffi.lib().bpf_obj_get(raw)
        except BpfError as exc:
            raise bpffs_error(exc.errno, f"failed to open pinned map {os.fsdecode(raw)}", raw,
                              pinning=False) from None
        return cls._standalone(fd, f"map pinned at {os.fsdecode(raw)}")

    @classmethod
    def from_id(cls, map_id: int) -> StandaloneMap:
        """Open the map with kernel id ``map_id``."""
        map_id = _args.u32(map_id, "map_id")
        try:
            fd = _ffi.lib().bpf_map_get_fd_by_id(map_id)
        except BpfError as exc:
            raise error_from_errno(exc.errno, f"failed to open map id {map_id}",
                                   ("CAP_SYS_ADMIN",)) from None
        return cls._standalone(fd, f"map id {map_id}")

    @classmethod
    def from_fd(cls, fd: int) -> StandaloneMap:
        """Wrap a duplicate of ``fd`` (the caller keeps ownership of ``fd`` itself)."""
        fd = _args.fd(fd)
        try:
            dup = os.dup(fd)
        except OSError as exc:
            raise BpfError(exc.errno or _errno.EBADF, f"fd {fd} is not open") from None
        return cls._standalone(dup, f"map fd {dup}")

    # ----------------------------------------------------------------------------- each kind

    @property
    def fd(self) -> int:
        """The map's fd (maps of an object: after load)."""
        raise NotImplementedError

    def _describe(self, field: str) -> int:
        """One of the numbers every map has, by its name in :class:`~pylibbpf.MapInfo` (which
        is also libbpf's: ``bpf_map__<field>``)."""
        raise NotImplementedError

    def _pin(self, raw: bytes) -> None:
        raise NotImplementedError

    def _unpin(self, raw: bytes | None) -> None:
        raise NotImplementedError

    @property
    def object(self) -> Object | None:
        """The object the map belongs to, or ``None`` for a standalone map."""
        raise NotImplementedError

    @property
    def btf(self) -> Btf | None:
        """The BTF that describes the key and value types (``btf_key_type_id``,
        ``btf_value_type_id`` index into it), or ``None`` when the map has none.

        For a map of an object, the object's BTF; for a standalone map (``from_id``,
        ``from_pinned``, ``from_fd``), the kernel's copy of the BTF it was created with, read
        by the map's ``btf_id`` once (needs ``CAP_SYS_ADMIN``).  :meth:`typed` and
        :meth:`to_numpy` use it."""
        from ..btf import map_btf

        return map_btf(self)

    @property
    def is_internal(self) -> bool:
        """True for libbpf's global-data maps (``.bss``, ``.data``, ``.rodata``, ``.kconfig``)."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------- every map

    def _bind(self) -> Bound:
        kind = self._describe("type")
        if kind == MapType.STRUCT_OPS:
            # its one value is the kernel's copy of the struct (with the programs' state),
            # written by attaching and cleared by detaching: not data to read or write
            raise NotSupportedError(f"map {self._name!r} is a struct_ops map: its elements "
                                    "are not read or written; attach it with "
                                    "attach_struct_ops()")
        self._bound = bind(self.fd, layout_of(kind, self.key_size, self.value_size))
        return self._bound

    @property
    def _label(self) -> str:
        return f"map {self._name!r}"

    @property
    def name(self) -> str:
        """The map's name (internal maps: libbpf's ``"<obj>.bss"``-style name)."""
        self._check()
        return self._name

    @property
    def type(self) -> MapType | int:
        """The map type (:class:`~pylibbpf.MapType`)."""
        return enum_or_int(MapType, self._describe("type"))

    @property
    def key_size(self) -> int:
        """Key size in bytes."""
        return self._describe("key_size")

    @property
    def value_size(self) -> int:
        """Value size in bytes (per CPU for per-CPU maps)."""
        return self._describe("value_size")

    @property
    def max_entries(self) -> int:
        """Capacity of the map."""
        return self._describe("max_entries")

    @property
    def flags(self) -> int:
        """The map's creation flags (``BPF_F_*``, see :class:`~pylibbpf.MapFlags`)."""
        return self._describe("map_flags")

    map_flags = flags

    @property
    def map_extra(self) -> int:
        """``map_extra`` (bloom filter hash count...)."""
        return self._describe("map_extra")

    @property
    def btf_key_type_id(self) -> int:
        """BTF type id of the key (0 without BTF)."""
        return self._describe("btf_key_type_id")

    @property
    def btf_value_type_id(self) -> int:
        """BTF type id of the value (0 without BTF)."""
        return self._describe("btf_value_type_id")

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin the map at ``path`` in a bpffs (a path elsewhere raises
        :class:`~pylibbpf.BpfError` saying it is not on a BPF filesystem)."""
        raw = _args.cpath(path)
        try:
            self._pin(raw)
        except BpfError as exc:
            raise bpffs_error(exc.errno, f"failed to pin map {self._name!r} at "
                              f"{os.fsdecode(raw)}", raw, pinning=True) from None

    def unpin(self, path: str | os.PathLike[str] | None = None) -> None:
        """Remove the map's pin at ``path`` (maps of an object: by default the map's pin path;
        a standalone map needs ``path``)."""
        self._unpin(None if path is None else _args.cpath(path))

    def freeze(self) -> None:
        """Make the map read-only for user space (``BPF_MAP_FREEZE``)."""
        fd = (self._bound or self._bind())[0]
        try:
            _ffi.lib().bpf_map_freeze(fd)
        except BpfError as exc:
            raise error_from_errno(exc.errno, f"failed to freeze map {self._name!r}") from None

    def typed(self, **kwargs: Any) -> TypedMap[Map]:
        """A view of this map whose keys and values are decoded with BTF (see
        :class:`pylibbpf.typed.TypedMap` for the options); the map itself stays raw ``bytes``."""
        return TypedMap(self, **kwargs)

    def to_numpy(self, key_dtype: Any = None, value_dtype: Any = None) -> MapArrays:
        """Every entry as NumPy arrays: a :class:`~pylibbpf.MapArrays` (``len()`` entries;
        ``keys, values = m.to_numpy()``).

        Read with batch calls straight into the arrays (no Python object per entry; the
        memory is the raw key and value bytes), or key by key where the kernel has no
        batches for the map type.  Per-CPU maps' values have a second axis, one column per
        possible CPU.  The dtypes are ``key_dtype``/``value_dtype`` when given (of the map's
        key and value sizes), else the map's BTF types (:attr:`btf`: a structured dtype for
        a struct), else raw bytes (``numpy.void`` of the size).  Needs NumPy.
        """
        from ._numpy import to_numpy

        return to_numpy(self, key_dtype, value_dtype)

    def memory(self, dtype: Any = None, *, readonly: bool | None = None) -> Any:
        """The map's values as memory: a ``memoryview`` of an ``mmap`` of the map, read and
        written with no syscall at all.

        For an ARRAY created with ``BPF_F_MMAPABLE`` (:attr:`~pylibbpf.MapFlags.MMAPABLE`)
        and for global-data maps (``.bss``, ``.data``; ``.rodata`` read-only once loaded);
        any other map raises :class:`~pylibbpf.NotSupportedError`.  Value ``i`` starts at
        byte ``i * slot``, ``slot`` being the value size rounded up to 8.  With ``dtype``
        (of the value size; needs NumPy) the result is a NumPy array with one element per
        slot instead.  ``readonly`` True maps read-only; False insists on writable; None
        (default) is writable unless the map is frozen or read-only for user space.

        After the map (or its object) is closed, ``memory()`` raises
        :class:`~pylibbpf.ClosedError`; views taken before stay valid memory (each holds the
        mapping, and the kernel keeps a mapped map's memory) until they are released: the
        memory is unmapped with the last of them.
        """
        self._check()
        if self._mapping is None:
            mapping = Mapping()
            self._life.on_close(mapping.close)
            self._mapping = mapping
        view = self._mapping.view(self, readonly)
        return view if dtype is None else ndarray(self, view, dtype)

    def info(self) -> MapInfo:
        """The kernel's view of the map (``bpf_obj_get_info_by_fd``)."""
        from ..info import MapInfo

        return MapInfo.from_fd(self.fd)

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        if self.closed:
            return f"<Map {self._name!r} closed>"
        kind = self.type
        return (f"<Map {self._name!r} {getattr(kind, 'name', kind)} key={self.key_size} "
                f"value={self.value_size} max_entries={self.max_entries}>")

