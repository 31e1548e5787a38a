"""``ObjectMap``: a map of an :class:`~pylibbpf.Object` (libbpf's ``struct bpf_map``).

Before the object's :meth:`~pylibbpf.Object.load` (or :meth:`~pylibbpf.Object.prepare`) the
map is a definition that the setters change (type, sizes, capacity, flags, pin path, initial
value...); load (or prepare) creates it in the kernel and gives it an fd, which the element
operations then use.  The map lives as long as its object: it keeps the object alive, and
closes with it.

A struct_ops map (``SEC(".struct_ops")``, ``SEC(".struct_ops.link")``) is attached, not read:
:meth:`ObjectMap.attach_struct_ops` registers the struct of BPF programs with the kernel.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from typing import TYPE_CHECKING, Any

from .. import _args, _ffi
from .._ffi.printcb import capture
from ..enums import MapFlags, MapType
from ..errors import BpfError, StateError, error_from_errno
from ..link import StructOpsLink
from ..load_errors import last_warning
from .base import Map

if TYPE_CHECKING:
    from .._handle import Lifetime
    from ..object import Object


class ObjectMap(Map):
    """A map of an :class:`~pylibbpf.Object`: ``obj.maps["name"]``."""

    def __init__(self, obj: Object, life: Lifetime, ptr: Any) -> None:
        super().__init__(_ffi.lib().bpf_map__name(ptr).decode("utf-8", "surrogateescape"))
        self._obj = obj    # keeps the object (and so this map's memory) alive
        self._life = life  # the object's: open? loaded?
        self._ptr = ptr
        self._autoattach = True  # Object.attach() attaches a struct_ops map (as libbpf's flag)
        # the object is closing: the fd the hot path holds is about to be released (weakly:
        # an inner-map view made on demand must not live as long as the object)
        life.on_close(self._object_closed, weak=True)

    # ----------------------------------------------------------------------------- state

    def _check(self) -> None:
        self._life.check()

    @property
    def closed(self) -> bool:
        """True once the map's object is closed."""
        return self._life.closed

    def close(self) -> None:
        """Nothing to do: a map of an object is closed with its object."""

    def _object_closed(self) -> None:
        self._bound = None

    def _libbpf(self, func: str) -> Any:
        self._check()
        return getattr(_ffi.lib(), func)(self._ptr)

    def _setter(self, what: str) -> Any:
        self._life.require_no_maps(f"{what} of map {self._name!r}")
        return self._ptr

    # ----------------------------------------------------------------------------- getters

    @property
    def fd(self) -> int:
        """The map's fd, once the object's :meth:`~pylibbpf.Object.prepare` or
        :meth:`~pylibbpf.Object.load` has created it."""
        fd = int(self._libbpf("bpf_map__fd"))
        if fd < 0:
            if not (self._life.prepared or self._life.loaded):
                raise StateError(_errno.EINVAL, f"map {self._name!r} has no fd before load() "
                                 "(or prepare(), which creates the maps); call one of them on "
                                 "its object first")
            raise StateError(_errno.ENOENT, f"map {self._name!r} was not created "
                             "(autocreate off)")
        return fd

    def _describe(self, field: str) -> int:
        return int(self._libbpf(f"bpf_map__{field}"))

    @property
    def object(self) -> Object:
        """The object the map belongs to."""
        return self._obj

    @property
    def is_internal(self) -> bool:
        """True for libbpf's global-data maps (``.bss``, ``.data``, ``.rodata``, ``.kconfig``)."""
        return bool(self._libbpf("bpf_map__is_internal"))

    @property
    def numa_node(self) -> int:
        """NUMA node requested for the map."""
        return int(self._libbpf("bpf_map__numa_node"))

    @property
    def ifindex(self) -> int:
        """Offload device index."""
        return int(self._libbpf("bpf_map__ifindex"))

    @property
    def pin_path(self) -> str | None:
        """The pin path set on the map, or ``None``."""
        raw = self._libbpf("bpf_map__pin_path")
        return raw.decode() if raw else None

    @property
    def is_pinned(self) -> bool:
        """True when libbpf pinned (or reused a pin of) this map."""
        return bool(self._libbpf("bpf_map__is_pinned"))

    @property
    def autocreate(self) -> bool:
        """Whether load creates this map."""
        return bool(self._libbpf("bpf_map__autocreate"))

    @property
    def inner_map(self) -> ObjectMap | None:
        """The inner map template of a map-in-map (before load)."""
        inner = self._libbpf("bpf_map__inner_map")
        return ObjectMap(self._obj, self._life, inner) if inner else None

    @property
    def initial_value(self) -> bytes:
        """The initial contents libbpf holds for a global-data map, before load.

        After load, read global data through :meth:`Object.global_data`: libbpf 1.1's copy is
        not the kernel's memory.
        """
        ptr, size = self._initial_image()
        # string_at takes a C int size: a section over 2 GiB would overflow it
        return bytes((ctypes.c_char * size).from_address(ptr)) if ptr else b""

    def initial_value_buffer(self) -> memoryview:
        """libbpf's initial contents of a global-data map as a writable view, before load
        (``bpf_map__initial_value``): what is written here is what load puts in the map.

        :class:`~pylibbpf.BpfError` (ENOENT) for a map without initial contents;
        :class:`~pylibbpf.StateError` after load, when libbpf's copy no longer matters.
        """
        self._life.require_no_maps(f"the initial value of map {self._name!r}")
        self._not_struct_ops("initial value")
        ptr, size = self._initial_image()
        if not ptr:
            raise BpfError(_errno.ENOENT, f"map {self._name!r} has no initial value")
        return memoryview((ctypes.c_char * size).from_address(ptr)).cast("B")

    def _initial_image(self) -> tuple[int | None, int]:
        """(address, size) of libbpf's initial image of a global-data map, its size bounded.

        An object declares the size of ``.bss`` without storing its bytes, so a few hundred
        bytes of ELF can claim gigabytes: more than :data:`pylibbpf._args.MAX_VALUE_SIZE`
        (``INT_MAX``, beyond which the kernel refuses an array value with E2BIG) raises
        :class:`~pylibbpf.BpfError` with errno E2BIG instead of copying it.
        """
        size = ctypes.c_size_t(0)
        self._not_struct_ops("initial value")
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
        self._not_struct_ops("initial value")
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
        self._bound = None

    # ----------------------------------------------------------------------------- struct_ops

    @property
    def is_struct_ops(self) -> bool:
        """True for a struct_ops map (``SEC(".struct_ops")`` or ``SEC(".struct_ops.link")``)."""
        return self._describe("type") == MapType.STRUCT_OPS

    def _not_struct_ops(self, what: str) -> None:
        # libbpf >= 1.5 gives a struct_ops map's "initial value" as its own shadow struct,
        # which holds pointers to libbpf's programs: writing bytes over it is not safe
        if self.is_struct_ops:
            raise BpfError(_errno.EOPNOTSUPP, f"the {what} of struct_ops map {self._name!r} "
                           "is not available: libbpf fills the struct from the object's "
                           "programs")

    @property
    def autoattach(self) -> bool:
        """Whether :meth:`Object.attach` attaches this struct_ops map (default ``True``)."""
        self._check()
        return self._autoattach

    def set_autoattach(self, autoattach: bool) -> None:
        """Make :meth:`Object.attach` skip (or attach) this struct_ops map; attach it yourself
        with :meth:`attach_struct_ops`.  (libbpf >= 1.5 has the same flag for its skeleton,
        ``bpf_map__set_autoattach``; pylibbpf keeps its own, so it works with every release.)"""
        self._check()
        self._autoattach = bool(autoattach)

    def _auto_attaches(self) -> bool:
        return self._autoattach and self.is_struct_ops and bool(self.autocreate)

    def attach_struct_ops(self) -> StructOpsLink:
        """Register this struct_ops map's struct of BPF programs with the kernel
        (``bpf_map__attach_struct_ops``): a TCP congestion control becomes selectable by
        name, for example.  Needs the object loaded.

        A map in ``SEC(".struct_ops.link")`` (libbpf >= 1.2, Linux 6.4) gets a BPF link:
        :meth:`~pylibbpf.StructOpsLink.update_map` swaps in another map, and the link can be
        pinned.  A map in ``SEC(".struct_ops")`` is registered by writing its value, which is
        no BPF link: the :class:`~pylibbpf.StructOpsLink` then only unregisters it when
        destroyed, and the kernel does not register that map again (EBUSY).  Either way the
        link is destroyed, at the latest, when the object closes.
        """
        self._check()
        if not self.is_struct_ops:
            kind = self.type
            raise BpfError(_errno.EINVAL, f"map {self._name!r} is not a struct_ops map (it is "
                           f"{getattr(kind, 'name', kind)}); only struct_ops maps attach")
        self._life.require_loaded(f"attaching struct_ops map {self._name!r}")
        self.fd  # noqa: B018 - StateError (ENOENT) for a map with autocreate off
        with capture() as messages:
            try:
                ptr = _ffi.lib().bpf_map__attach_struct_ops(self._ptr)
            except BpfError as exc:
                why = last_warning(messages).removeprefix("libbpf: ")
                if exc.errno == _errno.EBUSY and not self.has_link:
                    why = ("the kernel registers a SEC(\".struct_ops\") map once per load: it "
                           "is registered, or was and cannot be again (open the object "
                           "anew, or declare the map in SEC(\".struct_ops.link\"))")
                raise error_from_errno(
                    exc.errno, f"failed to attach struct_ops map {self._name!r}"
                    + (f": {why}" if why else ""), ("CAP_BPF", "CAP_NET_ADMIN")) from None
        return StructOpsLink(ptr, self, self._obj, self._life)

    @property
    def has_link(self) -> bool:
        """For a struct_ops map: True when its attachment is a BPF link
        (``SEC(".struct_ops.link")``, libbpf >= 1.2: the map has ``BPF_F_LINK``)."""
        return self.is_struct_ops and bool(self._describe("map_flags") & MapFlags.LINK)

    # ----------------------------------------------------------------------------- pinning

    def _pin(self, raw: bytes) -> None:
        self._check()
        _ffi.lib().bpf_map__pin(self._ptr, raw)

    def _unpin(self, raw: bytes | None) -> None:
        self._check()
        try:
            _ffi.lib().bpf_map__unpin(self._ptr, raw)
        except BpfError as exc:
            raise error_from_errno(exc.errno, f"failed to unpin map {self._name!r}") from None

