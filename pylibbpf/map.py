"""``Map``: a BPF map, from an object (``bpf_map``) or standalone (an fd of its own).

Element operations are one syscall each through ``bpf_map_*_elem`` with sizes validated first,
so no key or value of the wrong length ever reaches the kernel.  Keys and values are ``bytes``
by default; ints and ctypes objects of the right size are accepted wherever a key or value is.
Per-CPU maps return one value per possible CPU.  Maps also behave like dicts.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import sys
import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Union

from . import _args, _ffi
from ._ffi import structs
from ._ffi.structs import new_opts
from ._handle import Handle
from .enums import PER_CPU_MAP_TYPES, MapType, UpdateFlags, enum_or_int
from .errors import (
    BpfError,
    ClosedError,
    NotSupportedError,
    StateError,
    bpffs_error,
    error_from_errno,
)
from .lowlevel import map_create, to_bytes
from .typed import TypedMap

if TYPE_CHECKING:
    from .info import MapInfo
    from .object import Object

KeyLike = Union[bytes, bytearray, memoryview, int, "ctypes._CData"]
ValueLike = Union[bytes, bytearray, memoryview, int, "ctypes._CData", Sequence[Any]]

_BYTEORDER = sys.byteorder
_ARRAY_TYPES = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY})
_BATCH_TYPES = frozenset({
    MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH,
    MapType.ARRAY, MapType.PERCPU_ARRAY,
})
_NO_KEY_TYPES = frozenset({MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER,
                           MapType.RINGBUF, MapType.USER_RINGBUF})
_BATCH_MIN = 256
_U64_MAX = _args.U64_MAX


# The placeholder closed standalone maps' fd numbers point at until they are collected: opened
# once, at import, so that the first close() does not look like an fd leak to fd-counting code.
_devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)


class _FdSlot:
    """A standalone map's fd: ``retire`` releases the map but keeps the number taken (a dup of
    /dev/null), ``close`` frees the number.  Either order is safe; each runs once."""

    __slots__ = ("fd", "retired", "closed")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.retired = False
        self.closed = False

    def retire(self) -> None:
        if self.retired or self.closed:
            return
        self.retired = True
        try:
            os.dup2(_devnull, self.fd, inheritable=False)
        except OSError:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            os.close(self.fd)
        except OSError:
            pass


def _possible_cpus() -> int:
    return int(_ffi.lib().libbpf_num_possible_cpus())


class _Functions:
    """The element-operation functions, resolved once (the hot path skips every lookup)."""

    def __getattr__(self, name: str) -> Any:
        lib = _ffi.lib()
        self.lookup = lib.bpf_map_lookup_elem
        self.update = lib.bpf_map_update_elem
        self.delete = lib.bpf_map_delete_elem
        return self.__dict__[name]


_fns = _Functions()
_tls = threading.local()


def _value_buffer(size: int) -> Any:
    """A per-thread, per-size output buffer: ctypes releases the GIL during the syscall, so a
    buffer shared between threads could be overwritten before its contents are copied out."""
    try:
        return _tls.buffers[size]
    except AttributeError:
        _tls.buffers = {}
    except KeyError:
        pass
    buf = _tls.buffers[size] = ctypes.create_string_buffer(size)
    return buf


def _sequence(value: Any, what: str) -> Sequence[Any]:
    if isinstance(value, (str, bytes, bytearray, memoryview)) or not isinstance(value, Sequence):
        raise TypeError(f"{what} must be a sequence (a list or tuple), not "
                        f"{type(value).__name__}")
    return value


class Map(Handle):
    """A BPF map.  From an :class:`~pylibbpf.Object` (``obj.maps["name"]``) or standalone:
    :meth:`create`, :meth:`from_pinned`, :meth:`from_id`, :meth:`from_fd`."""

    _what = "BPF map"

    def __init__(self) -> None:  # use the constructors below
        super().__init__()
        self._obj: Object | None = None
        self._ptr: Any = None
        self._fd = -1
        self._name = ""
        self._info: tuple[int, int, int, int, int] | None = None  # type, ks, vs, max, flags
        self._cache: tuple[int, int, int, int, bool] | None = None  # fd, ks, vs, stride, percpu
        self._no_batch = False

    # ----------------------------------------------------------------------------- construction

    @classmethod
    def _from_object(cls, obj: Object, ptr: Any) -> Map:
        m = cls()
        m._obj = obj
        m._ptr = ptr
        m._name = _ffi.lib().bpf_map__name(ptr).decode("utf-8", "surrogateescape")
        return m

    @classmethod
    def _adopt_fd(cls, fd: int, description: str) -> Map:
        m = cls()
        m._fd = fd
        slot = _FdSlot(fd)
        m._own(slot.retire, description)   # close(): release the map, keep the number
        weakref.finalize(m, slot.close)     # the number is freed with the Map object
        try:
            info = m.info()
        except BaseException:
            m.close()
            raise
        m._name = info.name
        m._info = (int(info.type), info.key_size, info.value_size, info.max_entries,
                   info.map_flags)
        return m

    @classmethod
    def create(cls, map_type: MapType | int, key_size: int, value_size: int, max_entries: int,
               *, name: str | None = None, flags: int = 0, inner_map_fd: int | None = None,
               numa_node: int | None = None, map_extra: int = 0, btf_fd: int = 0,
               btf_key_type_id: int = 0, btf_value_type_id: int = 0) -> Map:
        """Create a map directly (``bpf_map_create``), without an object."""
        fd = map_create(map_type, key_size, value_size, max_entries, name=name, flags=flags,
                        inner_map_fd=inner_map_fd, numa_node=numa_node, map_extra=map_extra,
                        btf_fd=btf_fd, btf_key_type_id=btf_key_type_id,
                        btf_value_type_id=btf_value_type_id)
        return cls._adopt_fd(fd, f"map {name or ''!r} (fd {fd})")

    @classmethod
    def from_pinned(cls, path: str | os.PathLike[str]) -> Map:
        """Open a map pinned in a bpffs at ``path``.

        A path outside a BPF filesystem raises :class:`~pylibbpf.BpfError` saying so (with the
        kernel's errno, EACCES)."""
        raw = _args.cpath(path)
        try:
            fd = _ffi.lib().bpf_obj_get(raw)
        except BpfError as exc:
            raise bpffs_error(exc.errno, f"failed to open pinned map {os.fsdecode(raw)}", raw,
                              pinning=False) from None
        return cls._adopt_fd(fd, f"map pinned at {os.fsdecode(raw)}")

    @classmethod
    def from_id(cls, map_id: int) -> Map:
        """Open the map with kernel id ``map_id``."""
        map_id = _args.u32(map_id, "map_id")
        try:
            fd = _ffi.lib().bpf_map_get_fd_by_id(map_id)
        except BpfError as exc:
            raise error_from_errno(exc.errno, f"failed to open map id {map_id}",
                                   ("CAP_SYS_ADMIN",)) from None
        return cls._adopt_fd(fd, f"map id {map_id}")

    @classmethod
    def from_fd(cls, fd: int) -> Map:
        """Wrap a duplicate of ``fd`` (the caller keeps ownership of ``fd`` itself)."""
        fd = _args.fd(fd)
        try:
            dup = os.dup(fd)
        except OSError as exc:
            raise BpfError(exc.errno or _errno.EBADF, f"fd {fd} is not open") from None
        return cls._adopt_fd(dup, f"map fd {dup}")

    # ----------------------------------------------------------------------------- state

    def _check(self) -> None:
        if self._obj is not None:
            self._obj._check()
        elif self._closed:
            super()._check()

    def close(self) -> None:
        """Close a standalone map's fd.  Maps of an object are closed with the object.

        The map is released at once, but its fd *number* stays reserved (pointing at
        ``/dev/null``) until this ``Map`` object is garbage-collected: another thread that read
        the fd just before ``close()`` then gets :class:`~pylibbpf.ClosedError` instead of
        reaching whatever new map or file would have reused the number.
        """
        if self._obj is None:
            self._cache = None
            super().close()

    @property
    def closed(self) -> bool:
        """True once the map (or its object) is closed."""
        return self._obj.closed if self._obj is not None else self._closed

    def _setter(self, what: str) -> Any:
        if self._obj is None:
            raise StateError(_errno.EINVAL, f"{what} can only be set on a map of an open "
                             "object, before load")
        self._obj._require_open(f"{what} of map {self._name!r}")
        return self._ptr

    def _prepare(self) -> tuple[int, int, int, int, bool]:
        self._check()
        if self._obj is not None and not self._obj.loaded:
            raise StateError(_errno.EINVAL, f"map {self._name!r} has no fd before load(); "
                             "call load() on its object first")
        fd = self.fd
        kind = self.type
        ks, vs = self.key_size, self.value_size
        percpu = kind in PER_CPU_MAP_TYPES
        stride = (vs + 7) & ~7
        total = stride * _possible_cpus() if percpu else vs
        self._cache = (fd, ks, total, stride, percpu)
        return self._cache

    def _ops(self) -> tuple[int, int, int, int, bool]:
        # The cache is dropped when the map or its object closes, so a non-None cache proves
        # the fd is still ours: one attribute read guards the hot path.
        cache = self._cache
        if cache is None:
            return self._prepare()
        return cache

    # ----------------------------------------------------------------------------- getters

    @property
    def name(self) -> str:
        """The map's name (internal maps: libbpf's ``"<obj>.bss"``-style name)."""
        self._check()
        return self._name

    @property
    def fd(self) -> int:
        """The map's fd (object maps: after load)."""
        self._check()
        if self._obj is None:
            return self._fd
        fd = int(_ffi.lib().bpf_map__fd(self._ptr))
        if fd < 0:
            raise StateError(_errno.EINVAL, f"map {self._name!r} has no fd before load(); "
                             "call load() on its object first")
        return fd

    def _get(self, func: str, index: int) -> int:
        self._check()
        if self._obj is not None:
            return int(getattr(_ffi.lib(), func)(self._ptr))
        assert self._info is not None
        return self._info[index]

    @property
    def type(self) -> MapType | int:
        """The map type (:class:`~pylibbpf.MapType`)."""
        return enum_or_int(MapType, self._get("bpf_map__type", 0))

    @property
    def key_size(self) -> int:
        """Key size in bytes."""
        return self._get("bpf_map__key_size", 1)

    @property
    def value_size(self) -> int:
        """Value size in bytes (per CPU for per-CPU maps)."""
        return self._get("bpf_map__value_size", 2)

    @property
    def max_entries(self) -> int:
        """Capacity of the map."""
        return self._get("bpf_map__max_entries", 3)

    @property
    def flags(self) -> int:
        """The map's creation flags (``BPF_F_*``, see :class:`~pylibbpf.MapFlags`)."""
        return self._get("bpf_map__map_flags", 4)

    map_flags = flags

    def _object_only(self, func: str) -> Any:
        self._check()
        if self._obj is None:
            raise StateError(_errno.EINVAL, f"{func} is only known for maps of an object")
        return getattr(_ffi.lib(), func)(self._ptr)

    @property
    def numa_node(self) -> int:
        """NUMA node requested for the map (object maps)."""
        return int(self._object_only("bpf_map__numa_node"))

    @property
    def ifindex(self) -> int:
        """Offload device index (object maps)."""
        return int(self._object_only("bpf_map__ifindex"))

    @property
    def map_extra(self) -> int:
        """``map_extra`` (bloom filter hash count...)."""
        return int(self._object_only("bpf_map__map_extra"))

    @property
    def is_internal(self) -> bool:
        """True for libbpf's global-data maps (``.bss``, ``.data``, ``.rodata``, ``.kconfig``)."""
        return self._obj is not None and bool(self._object_only("bpf_map__is_internal"))

    @property
    def pin_path(self) -> str | None:
        """The pin path set on the map (object maps), or ``None``."""
        raw = self._object_only("bpf_map__pin_path")
        return raw.decode() if raw else None

    @property
    def is_pinned(self) -> bool:
        """True when libbpf pinned (or reused a pin of) this map."""
        return bool(self._object_only("bpf_map__is_pinned"))

    @property
    def autocreate(self) -> bool:
        """Whether load creates this map."""
        return bool(self._object_only("bpf_map__autocreate"))

    @property
    def btf_key_type_id(self) -> int:
        """BTF type id of the key (0 without BTF)."""
        return int(self._object_only("bpf_map__btf_key_type_id"))

    @property
    def btf_value_type_id(self) -> int:
        """BTF type id of the value (0 without BTF)."""
        return int(self._object_only("bpf_map__btf_value_type_id"))

    @property
    def inner_map(self) -> Map | None:
        """The inner map template of a map-in-map (object maps, before load)."""
        inner = self._object_only("bpf_map__inner_map")
        if not inner:
            return None
        assert self._obj is not None
        return Map._from_object(self._obj, inner)

    @property
    def object(self) -> Object | None:
        """The object the map belongs to, or ``None`` for a standalone map."""
        return self._obj

    @property
    def initial_value(self) -> bytes:
        """The initial contents libbpf holds for a global-data map, before load.

        After load, read global data through :meth:`Object.global_data`: libbpf 1.1's copy is
        not the kernel's memory.
        """
        ptr, size = self._initial_image()
        # string_at takes a C int size: a section over 2 GiB would overflow it
        return bytes((ctypes.c_char * size).from_address(ptr)) if ptr else b""

    def _initial_image(self) -> tuple[int | None, int]:
        """(address, size) of libbpf's initial image of a global-data map, its size bounded.

        An object declares the size of ``.bss`` without storing its bytes, so a few hundred
        bytes of ELF can claim gigabytes: more than :data:`pylibbpf._args.MAX_VALUE_SIZE`
        (``INT_MAX``, beyond which the kernel refuses an array value with E2BIG) raises
        :class:`~pylibbpf.BpfError` with errno E2BIG instead of copying it.
        """
        size = ctypes.c_size_t(0)
        self._check()
        if self._obj is None:
            raise StateError(_errno.EINVAL, "initial_value is only known for maps of an object")
        ptr = _ffi.lib().bpf_map__initial_value(self._ptr, ctypes.byref(size))
        if size.value > _args.MAX_VALUE_SIZE:
            raise BpfError(_errno.E2BIG, f"map {self._name!r} declares a {size.value}-byte "
                           f"initial value; the kernel creates map values of at most "
                           f"{_args.MAX_VALUE_SIZE} bytes (INT_MAX), so it cannot be loaded")
        return ptr, size.value

    # ----------------------------------------------------------------------------- setters

    def set_type(self, map_type: MapType | int) -> None:
        """Change the map type before load."""
        kind = _args.non_negative_int(map_type, "map_type")
        _ffi.lib().bpf_map__set_type(self._setter("type"), kind)

    def set_max_entries(self, max_entries: int) -> None:
        """Change the capacity before load."""
        value = _args.u32(max_entries, "max_entries")
        _ffi.lib().bpf_map__set_max_entries(self._setter("max_entries"), value)

    def set_key_size(self, size: int) -> None:
        """Change the key size before load."""
        value = _args.u32(size, "size")
        _ffi.lib().bpf_map__set_key_size(self._setter("key size"), value)

    def set_value_size(self, size: int) -> None:
        """Change the value size before load."""
        value = _args.u32(size, "size")
        _ffi.lib().bpf_map__set_value_size(self._setter("value size"), value)

    def set_map_flags(self, flags: int) -> None:
        """Change the creation flags before load."""
        value = _args.u32(flags, "flags")
        _ffi.lib().bpf_map__set_map_flags(self._setter("flags"), value)

    set_flags = set_map_flags

    def set_numa_node(self, node: int) -> None:
        """Set the NUMA node before load."""
        value = _args.u32(node, "node")
        _ffi.lib().bpf_map__set_numa_node(self._setter("numa node"), value)

    def set_map_extra(self, extra: int) -> None:
        """Set ``map_extra`` before load."""
        value = _args.u64(extra, "extra")
        _ffi.lib().bpf_map__set_map_extra(self._setter("map_extra"), value)

    def set_ifindex(self, ifindex: int) -> None:
        """Set the offload device before load."""
        value = _args.u32(ifindex, "ifindex")
        _ffi.lib().bpf_map__set_ifindex(self._setter("ifindex"), value)

    def set_autocreate(self, autocreate: bool) -> None:
        """Skip (or restore) creating this map at load."""
        _ffi.lib().bpf_map__set_autocreate(self._setter("autocreate"), bool(autocreate))

    def set_initial_value(self, data: bytes | bytearray | memoryview) -> None:
        """Set the initial contents of a global-data map before load (exact size)."""
        blob = _args.buffer(data, "initial value")
        ptr = self._setter("initial value")
        size = ctypes.c_size_t(0)
        _ffi.lib().bpf_map__initial_value(ptr, ctypes.byref(size))
        if len(blob) != size.value:
            raise ValueError(f"initial value of map {self._name!r} must be {size.value} bytes, "
                             f"got {len(blob)}")
        _ffi.lib().bpf_map__set_initial_value(ptr, blob, len(blob))

    def set_pin_path(self, path: str | os.PathLike[str] | None) -> None:
        """Pin (or reuse a pin) at ``path`` during load."""
        raw = None if path is None else _args.cpath(path)
        _ffi.lib().bpf_map__set_pin_path(self._setter("pin path"), raw)

    def set_inner_map_fd(self, fd: int) -> None:
        """Use the map ``fd`` as the inner map template of a map-in-map."""
        fd = _args.fd(fd)
        _ffi.lib().bpf_map__set_inner_map_fd(self._setter("inner map"), fd)

    def reuse_fd(self, fd: int) -> None:
        """Make load use the existing map ``fd`` instead of creating this map."""
        fd = _args.fd(fd)
        ptr = self._setter("reused fd")
        try:
            _ffi.lib().bpf_map__reuse_fd(ptr, fd)
        except BpfError as exc:
            raise error_from_errno(exc.errno, f"cannot reuse fd {fd} for map "
                                   f"{self._name!r}") from None
        self._cache = None

    # ----------------------------------------------------------------------------- pinning

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin the map at ``path`` in a bpffs (a path elsewhere raises
        :class:`~pylibbpf.BpfError` saying it is not on a BPF filesystem)."""
        raw = _args.cpath(path)
        try:
            if self._obj is not None:
                self._check()
                _ffi.lib().bpf_map__pin(self._ptr, raw)
            else:
                _ffi.lib().bpf_obj_pin(self._ops()[0], raw)
        except BpfError as exc:
            raise bpffs_error(exc.errno, f"failed to pin map {self._name!r} at "
                              f"{os.fsdecode(raw)}", raw, pinning=True) from None

    def unpin(self, path: str | os.PathLike[str] | None = None) -> None:
        """Remove the map's pin (object maps: ``path`` defaults to the map's pin path)."""
        raw = None if path is None else _args.cpath(path)
        if self._obj is None:
            if raw is None:
                raise ValueError("unpin of a standalone map needs the pin path")
            try:
                os.unlink(raw)
            except OSError as exc:
                raise error_from_errno(exc.errno, f"failed to unpin map {self._name!r} at "
                                       f"{os.fsdecode(raw)}") from None
            return
        self._check()
        try:
            _ffi.lib().bpf_map__unpin(self._ptr, raw)
        except BpfError as exc:
            raise error_from_errno(exc.errno, f"failed to unpin map {self._name!r}") from None

    def freeze(self) -> None:
        """Make the map read-only for user space (``BPF_MAP_FREEZE``)."""
        try:
            _ffi.lib().bpf_map_freeze(self._ops()[0])
        except BpfError as exc:
            raise error_from_errno(exc.errno, f"failed to freeze map {self._name!r}") from None

    def typed(self, **kwargs: Any) -> TypedMap[Map]:
        """A view of this map whose keys and values are decoded with BTF (see
        :class:`pylibbpf.typed.TypedMap` for the options); the map itself stays raw ``bytes``."""
        return TypedMap(self, **kwargs)

    def info(self) -> MapInfo:
        """The kernel's view of the map (``bpf_obj_get_info_by_fd``)."""
        from .info import MapInfo

        self._check()
        return MapInfo.from_fd(self._fd if self._obj is None else self.fd)

    # ----------------------------------------------------------------------------- encoding

    def _key(self, key: Any, ks: int) -> bytes | None:
        if ks == 0:  # queue, stack, bloom filter: the kernel wants a NULL key
            if key is not None and key != b"":
                raise ValueError(f"map {self._name!r} has no keys: pass None")
            return None
        if type(key) is bytes and len(key) == ks:
            return key
        return to_bytes(key, ks, "key")

    def _value(self, value: Any, total: int, stride: int, percpu: bool) -> bytes:
        if type(value) is bytes and len(value) == total:
            return value
        if percpu:
            vs = self.value_size
            ncpu = total // stride
            if isinstance(value, (list, tuple)):
                if len(value) != ncpu:
                    raise ValueError(f"per-CPU map {self._name!r} needs {ncpu} values "
                                     f"(one per possible CPU), got {len(value)}")
                parts = value
            else:
                parts = [value] * ncpu
            pad = b"\0" * (stride - vs)
            return b"".join(to_bytes(v, vs, "value") + pad for v in parts)
        return to_bytes(value, total, "value")

    def _decode(self, raw: bytes, stride: int, percpu: bool) -> Any:
        if not percpu:
            return raw
        vs = self.value_size
        return [raw[i:i + vs] for i in range(0, len(raw), stride)]

    def _fail(self, rc: int, what: str, key: Any = None) -> OSError:
        if self.closed:  # closed by another thread while this call was in flight
            return ClosedError(self._what)
        err = -rc if rc < 0 else (ctypes.get_errno() or _errno.EINVAL)
        return error_from_errno(err, f"{what} in map {self._name!r} failed")

    # ----------------------------------------------------------------------------- elements

    def lookup(self, key: KeyLike, flags: int = 0) -> Any:
        """The value at ``key`` (``bytes``; a list of ``bytes`` per CPU for per-CPU maps).

        Raises :class:`KeyError` when the key is absent.
        """
        cache = self._cache
        fd, ks, total, stride, percpu = cache if cache is not None else self._prepare()
        kb = key if type(key) is bytes and len(key) == ks != 0 else self._key(key, ks)
        buf = _value_buffer(total)
        if flags.__class__ is not int or not 0 <= flags <= _U64_MAX:
            flags = _args.u64(flags, "flags")
        rc = (_fns.lookup(fd, kb, buf) if not flags
              else _ffi.lib().bpf_map_lookup_elem_flags(fd, kb, buf, flags))
        if rc < 0:
            if rc == -_errno.ENOENT:
                raise KeyError(key)
            raise self._fail(rc, "lookup")
        return buf.raw if not percpu else self._decode(buf.raw, stride, percpu)

    def get(self, key: KeyLike, default: Any = None) -> Any:
        """The value at ``key``, or ``default`` when absent."""
        try:
            return self.lookup(key)
        except KeyError:
            return default

    def update(self, key: KeyLike | None, value: ValueLike,
               flags: UpdateFlags | int = UpdateFlags.ANY) -> None:
        """Store ``value`` at ``key``.  ``flags``: ANY, NOEXIST (create only), EXIST (replace only).

        A full map raises :class:`~pylibbpf.BpfError` with errno E2BIG; NOEXIST on a present
        key EEXIST; EXIST on an absent key ENOENT.
        """
        cache = self._cache
        fd, ks, total, stride, percpu = cache if cache is not None else self._prepare()
        kb = key if type(key) is bytes and len(key) == ks != 0 else self._key(key, ks)
        vb = value if type(value) is bytes and len(value) == total else self._value(
            value, total, stride, percpu)
        if (flags.__class__ is not int and flags.__class__ is not UpdateFlags
                or not 0 <= flags <= _U64_MAX):
            flags = _args.u64(flags, "flags")
        rc = _fns.update(fd, kb, vb, flags)
        if rc < 0:
            raise self._fail(rc, "update")

    def delete(self, key: KeyLike) -> None:
        """Remove ``key``; :class:`KeyError` when absent."""
        fd, ks, _total, _stride, _percpu = self._ops()
        kb = self._key(key, ks)
        rc = _fns.delete(fd, kb)
        if rc < 0:
            if rc == -_errno.ENOENT:
                raise KeyError(key)
            raise self._fail(rc, "delete")

    def lookup_and_delete(self, key: KeyLike | None = None) -> Any:
        """Atomically read and remove ``key`` (queue/stack maps: pop, with ``key=None``)."""
        fd, ks, total, stride, percpu = self._ops()
        kb = None if key is None else self._key(key, ks)
        buf = ctypes.create_string_buffer(total)
        rc = _ffi.lib().bpf_map_lookup_and_delete_elem(fd, kb, buf)
        if rc < 0:
            if rc == -_errno.ENOENT:
                raise KeyError(key)
            raise self._fail(rc, "lookup_and_delete")
        return self._decode(buf.raw, stride, percpu)

    def get_next_key(self, key: KeyLike | None = None) -> bytes | None:
        """The key after ``key`` (the first key for ``None``), or ``None`` at the end."""
        fd, ks, _total, _stride, _percpu = self._ops()
        kb = None if key is None else self._key(key, ks)
        out = ctypes.create_string_buffer(ks)
        rc = _ffi.lib().bpf_map_get_next_key(fd, kb, out)
        if rc < 0:
            if rc == -_errno.ENOENT:
                return None
            raise self._fail(rc, "get_next_key")
        return out.raw

    # ----------------------------------------------------------------------------- batches

    def _batch_supported(self) -> bool:
        return not self._no_batch and self.type in _BATCH_TYPES

    def _batch_read(self, delete: bool, batch_size: int | None,
                    keys_only: bool = False) -> list[Any]:
        """Every entry, read with ``BPF_MAP_LOOKUP[_AND_DELETE]_BATCH``: a list of (key, value)
        pairs, or of keys with ``keys_only``.  The pairs are cut straight out of the batch
        buffers in one pass (no intermediate key and value lists: a 1 M-entry dump is bound by
        the syscalls, not by Python)."""
        fd, ks, total, stride, percpu = self._ops()
        count_max, count_cap = self._batch_count(batch_size, ks + total)
        lib = _ffi.lib()
        func = lib.bpf_map_lookup_and_delete_batch if delete else lib.bpf_map_lookup_batch
        opts = new_opts(structs.bpf_map_batch_opts)
        token_size = max(ks, 8)
        in_batch = ctypes.create_string_buffer(token_size)
        out_batch = ctypes.create_string_buffer(token_size)
        out: list[Any] = []
        first = True
        while True:
            kbuf = ctypes.create_string_buffer(ks * count_max)
            vbuf = ctypes.create_string_buffer(total * count_max)
            count = ctypes.c_uint32(count_max)
            rc = func(fd, None if first else in_batch, out_batch, kbuf, vbuf,
                      ctypes.byref(count), ctypes.byref(opts))
            if rc < 0 and rc != -_errno.ENOENT:
                if rc == -_errno.ENOSPC and count_max < count_cap:
                    # a hash bucket larger than the batch: grow and retry
                    count_max = min(count_max * 2, count_cap)
                    continue
                raise self._fail(rc, "batch lookup")
            n = count.value
            if n:
                kraw = kbuf.raw[:n * ks]
                key_offsets = range(0, n * ks, ks)
                if keys_only:
                    out.extend(kraw[i:i + ks] for i in key_offsets)
                else:
                    vraw = vbuf.raw[:n * total]
                    value_offsets = range(0, n * total, total)
                    if percpu:
                        out.extend((kraw[i:i + ks], self._decode(vraw[j:j + total], stride, True))
                                   for i, j in zip(key_offsets, value_offsets, strict=True))
                    else:
                        out.extend((kraw[i:i + ks], vraw[j:j + total])
                                   for i, j in zip(key_offsets, value_offsets, strict=True))
            if rc == -_errno.ENOENT:
                return out
            ctypes.memmove(in_batch, out_batch, token_size)
            first = False

    def _batch_count(self, batch_size: int | None, entry_bytes: int) -> tuple[int, int]:
        """(first, largest) number of entries per batch call.

        Both are bounded by ``max_entries`` and by :data:`pylibbpf._args.MAX_BUFFER` bytes of
        key and value buffers, so no declared size can make a batch allocate without limit; an
        explicit ``batch_size`` beyond either bound raises ``ValueError``.
        """
        max_entries = self.max_entries
        by_memory = max(1, _args.MAX_BUFFER // max(entry_bytes, 1))
        cap = max(1, min(max_entries, by_memory))
        if batch_size is None:
            return min(cap, max(_BATCH_MIN, min(max_entries, 1 << 16))), cap
        batch_size = _args.in_range(batch_size, "batch_size", 1, max(max_entries, 1))
        if batch_size > by_memory:
            raise ValueError(f"batch_size {batch_size} needs {batch_size * entry_bytes} bytes "
                             f"of buffers; at most {_args.MAX_BUFFER} (batch_size "
                             f"{by_memory} for this map)")
        return batch_size, cap

    def lookup_batch(self, batch_size: int | None = None) -> list[tuple[bytes, Any]]:
        """Every (key, value) pair, read with ``BPF_MAP_LOOKUP_BATCH`` calls.

        ``batch_size`` (entries per call) is at most ``max_entries``; by default the library
        picks it, keeping the buffers within 256 MiB."""
        return self._batch_read(False, batch_size)

    def lookup_and_delete_batch(self, batch_size: int | None = None) -> list[tuple[bytes, Any]]:
        """Drain the map: every (key, value) pair, removed as it is read (hash maps)."""
        return self._batch_read(True, batch_size)

    def update_batch(self, keys: Sequence[KeyLike], values: Sequence[ValueLike],
                     flags: UpdateFlags | int = UpdateFlags.ANY) -> int:
        """Store many pairs in one ``BPF_MAP_UPDATE_BATCH``; returns how many were stored."""
        flags = _args.u64(flags, "flags")
        keys, values = _sequence(keys, "keys"), _sequence(values, "values")
        fd, ks, total, stride, percpu = self._ops()
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys but {len(values)} values")
        if not keys:
            return 0
        _args.in_range(len(keys), "number of keys", 0, _args.U32_MAX)
        kblob = b"".join(to_bytes(k, ks, "key") for k in keys)
        vblob = b"".join(self._value(v, total, stride, percpu) for v in values)
        count = ctypes.c_uint32(len(keys))
        opts = new_opts(structs.bpf_map_batch_opts, elem_flags=flags)
        rc = _ffi.lib().bpf_map_update_batch(fd, kblob, vblob, ctypes.byref(count),
                                             ctypes.byref(opts))
        if rc < 0:
            raise self._fail(rc, f"batch update (after {count.value} elements)")
        return int(count.value)

    def delete_batch(self, keys: Sequence[KeyLike]) -> int:
        """Remove many keys in one ``BPF_MAP_DELETE_BATCH``; returns how many were removed.

        A key that is absent stops the batch with :class:`KeyError` naming it.
        """
        keys = _sequence(keys, "keys")
        fd, ks, _total, _stride, _percpu = self._ops()
        if not keys:
            return 0
        _args.in_range(len(keys), "number of keys", 0, _args.U32_MAX)
        encoded = [to_bytes(k, ks, "key") for k in keys]
        count = ctypes.c_uint32(len(encoded))
        opts = new_opts(structs.bpf_map_batch_opts)
        rc = _ffi.lib().bpf_map_delete_batch(fd, b"".join(encoded), ctypes.byref(count),
                                             ctypes.byref(opts))
        if rc < 0:
            if rc == -_errno.ENOENT:
                raise KeyError(keys[count.value])
            raise self._fail(rc, "batch delete")
        return int(count.value)

    # ----------------------------------------------------------------------------- dict-like

    def _walk_keys(self) -> list[bytes]:
        fd, ks, _total, _stride, _percpu = self._ops()
        lib = _ffi.lib()
        out = ctypes.create_string_buffer(ks)
        seen: dict[bytes, None] = {}
        limit = 2 * self.max_entries + 16
        current: bytes | None = None
        for _ in range(limit):
            rc = lib.bpf_map_get_next_key(fd, current, out)
            if rc < 0:
                if rc == -_errno.ENOENT:
                    break
                raise self._fail(rc, "get_next_key")
            current = out.raw
            # A key deleted meanwhile makes the kernel restart from the first key: keep
            # walking, but list each key once.
            seen.setdefault(current, None)
        return list(seen)

    def keys(self) -> list[bytes]:
        """A snapshot of the keys (safe to delete from the map while looping over it)."""
        if self.type in _NO_KEY_TYPES:
            raise TypeError(f"map {self._name!r} of type {self.type!r} has no keys")
        if self._batch_supported():
            try:
                return self._batch_read(False, None, keys_only=True)
            except BpfError as exc:
                if exc.errno != _errno.EINVAL and not isinstance(exc, NotSupportedError):
                    raise
                self._no_batch = True
        return self._walk_keys()

    def items(self) -> list[tuple[bytes, Any]]:
        """A snapshot of (key, value) pairs; batched where the kernel supports it."""
        if self._batch_supported():
            try:
                return self.lookup_batch()
            except BpfError as exc:
                if exc.errno != _errno.EINVAL and not isinstance(exc, NotSupportedError):
                    raise
                self._no_batch = True
        pairs = []
        for key in self._walk_keys():
            try:
                pairs.append((key, self.lookup(key)))
            except KeyError:
                continue  # deleted since the keys were listed
        return pairs

    def values(self) -> list[Any]:
        """A snapshot of the values."""
        return [value for _key, value in self.items()]

    def clear(self) -> None:
        """Remove every entry; array maps (which cannot delete) are zeroed instead."""
        fd, ks, total, stride, percpu = self._ops()
        if self.type in _ARRAY_TYPES:
            zero = bytes(total)
            n = self.max_entries
            for index in range(n):
                rc = _ffi.lib().bpf_map_update_elem(fd, to_bytes(index, ks, "key"), zero, 0)
                if rc < 0:
                    raise self._fail(rc, "clear")
            return
        for key in self.keys():
            try:
                self.delete(key)
            except KeyError:
                pass

    def __getitem__(self, key: KeyLike) -> Any:
        return self.lookup(key)

    def __setitem__(self, key: KeyLike, value: ValueLike) -> None:
        self.update(key, value)

    def __delitem__(self, key: KeyLike) -> None:
        self.delete(key)

    def __contains__(self, key: Any) -> bool:
        try:
            self.lookup(key)
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        if self.closed:
            return f"<Map {self._name!r} closed>"
        kind = self.type
        return (f"<Map {self._name!r} {getattr(kind, 'name', kind)} key={self.key_size} "
                f"value={self.value_size} max_entries={self.max_entries}>")

