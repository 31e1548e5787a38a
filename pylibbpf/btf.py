"""BTF that comes from libbpf: an object's BTF as libbpf holds it, and the kernel's.

Both are read with the one BTF model, :mod:`pylibbpf.elf.btf`:

* :func:`object_btf` gives an :class:`~pylibbpf.Object`'s BTF (``bpf_object__btf``, as libbpf
  fixed it up at open) parsed into a :class:`~pylibbpf.elf.Btf`, kept per object and parsed
  again only when libbpf's copy has changed;
* :class:`KernelBtf` is the running kernel's BTF (vmlinux, or a module's split BTF on top of
  it) as libbpf loads it.  vmlinux holds some 100,000 types, too many to parse in Python on
  every use, so lookups go through libbpf's index (``btf__find_by_name_kind``,
  ``btf__type_by_id``) and only the types asked for are decoded, by the same record decoder
  as :class:`~pylibbpf.elf.Btf`'s::

      with KernelBtf.vmlinux() as kernel:
          func = kernel.find("vfs_read", BtfKind.FUNC)
          proto = kernel.type_by_id(func.type_id)
          [(p.name, kernel.resolve(p.type_id).kind.name) for p in proto.params]
          kernel.member_offset("task_struct", "pid")       # bytes, through anonymous members
          kernel.member("task_struct", "se.vruntime")      # a BtfMember, offset from task_struct
          kernel.size_of("struct task_struct")

A lookup costs well under a millisecond once the BTF is loaded (libbpf reads and indexes
vmlinux in about 10 ms); parsing all of it in Python (``Btf.from_bytes(raw_data())``) takes
seconds.  Module BTF (:meth:`KernelBtf.module`, :func:`module_names`) is split BTF: lookups in
it see the module's types and vmlinux's.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
import os
import struct
import sys
import weakref
from typing import TYPE_CHECKING, Any, Literal

from . import _ffi
from ._handle import Handle
from .elf.btf import (
    VOID,
    Btf,
    BtfKind,
    BtfMember,
    BtfType,
    decode_type_record,
    skip_modifiers,
    type_record_size,
)
from .elf.errors import ElfError
from .errors import BpfError, ClosedError

if TYPE_CHECKING:
    from .maps.base import Map
    from .object import Object

__all__ = ["KernelBtf", "map_btf", "module_names", "object_btf"]

SYSFS_BTF = "/sys/kernel/btf"

_NATIVE: Literal["little", "big"] = "little" if sys.byteorder == "little" else "big"
_HEADER_SIZE = 12
_HEADER = struct.Struct("=III")  # name_off, info, size/type of a type record
_DECL_TAG = int(BtfKind.DECL_TAG)

# The raw BTF each object's parsed BTF was made from: the cache is valid while libbpf's bytes
# are the same (a pre-load setter that edits the BTF, such as resizing a global-data map on
# newer libbpf, changes them).
_object_btfs: weakref.WeakKeyDictionary[Object, tuple[bytes, Btf]] = weakref.WeakKeyDictionary()


def object_btf(obj: Object) -> Btf:
    """The object's BTF as libbpf holds it (``bpf_object__btf`` + ``btf__raw_data``).

    Raises :class:`~pylibbpf.BpfError` with ENOENT when the object has no BTF.
    """
    lib = _ffi.lib()
    handle = lib.bpf_object__btf(obj._p)
    if not handle:
        raise BpfError(_errno.ENOENT, f"object {obj.name!r} has no BTF (compile with -g)")
    size = ctypes.c_uint32(0)
    address = lib.btf__raw_data(handle, ctypes.byref(size))
    if not address:
        raise BpfError(_errno.ENOMEM, f"cannot read the BTF of object {obj.name!r}")
    raw = ctypes.string_at(address, size.value)
    cached = _object_btfs.get(obj)
    if cached is not None and cached[0] == raw:
        return cached[1]
    btf = Btf.from_bytes(raw)
    _object_btfs[obj] = (raw, btf)
    return btf


# The kernel's copy of each standalone map's BTF (a map's btf_id never changes), or None when
# the map has none.
_map_btfs: weakref.WeakKeyDictionary[Map, Btf | None] = weakref.WeakKeyDictionary()


def map_btf(m: Map) -> Btf | None:
    """The BTF that describes ``m``'s key and value types, or ``None`` when it has none.

    A map of an object: the object's BTF (:func:`object_btf`).  A standalone map (from
    ``Map.from_id``, ``from_pinned``, ``from_fd``): the BTF object the kernel keeps for it,
    read by the map's ``btf_id`` (``BPF_BTF_GET_FD_BY_ID``, which needs ``CAP_SYS_ADMIN``)
    and parsed once per map; the type ids of ``btf_key_type_id``/``btf_value_type_id`` index
    into it, as they do for ``bpftool map dump``.  A map created without BTF (``Map.create``)
    has none.
    """
    obj = m.object
    if obj is not None:
        try:
            return object_btf(obj)
        except BpfError as exc:
            if exc.errno == _errno.ENOENT:
                return None
            raise
    if m in _map_btfs:
        m._check()
        return _map_btfs[m]
    btf_id = m.info().btf_id
    btf: Btf | None = None
    if btf_id:
        from .info import btf_raw_data, fd_by_id

        fd = fd_by_id("btf", btf_id)
        try:
            raw = btf_raw_data(fd)
        finally:
            os.close(fd)
        try:
            btf = Btf.from_bytes(raw)
        except ElfError as exc:
            # split BTF (types on top of vmlinux's) does not parse on its own
            raise BpfError(_errno.EINVAL, f"cannot parse BTF id {btf_id} of map "
                           f"{m.name!r}: {exc}") from None
    _map_btfs[m] = btf
    return btf


def module_names() -> list[str]:
    """The kernel modules whose BTF the kernel publishes (``/sys/kernel/btf``: loaded modules
    of a kernel built with ``CONFIG_DEBUG_INFO_BTF_MODULES``), sorted; empty without any."""
    try:
        return sorted(name for name in os.listdir(SYSFS_BTF) if name != "vmlinux")
    except OSError:
        return []


_COMPOSITE = (BtfKind.STRUCT, BtfKind.UNION)
_TAGGED = {"struct": (BtfKind.STRUCT,), "union": (BtfKind.UNION,), "enum": (BtfKind.ENUM,
           BtfKind.ENUM64), "typedef": (BtfKind.TYPEDEF,)}


@functools.cache
def _record_sizes() -> tuple[list[int], list[int]]:
    """Per BTF kind: a type record's bytes without members, and per member (from the one
    record-size rule, :func:`~pylibbpf.elf.btf.type_record_size`), for a fast scan."""
    fixed, per_item = [12] * 32, [0] * 32
    for kind in BtfKind:
        if kind == BtfKind.VOID:
            continue
        empty = type_record_size(_HEADER.pack(0, int(kind) << 24, 0), 0, _NATIVE)
        one = type_record_size(_HEADER.pack(0, int(kind) << 24 | 1, 0), 0, _NATIVE)
        fixed[kind], per_item[kind] = empty, one - empty
    return fixed, per_item


def _free_btf(ptr: Any) -> None:
    _ffi.lib().btf__free(ptr)


class KernelBtf(Handle):
    """The kernel's BTF as libbpf loaded it: :meth:`vmlinux` or :meth:`module`.

    Types come back as :class:`~pylibbpf.elf.btf.BtfType`, decoded on first use and kept.
    Close it (or use ``with``) to free libbpf's copy.
    """

    _what = "kernel BTF"

    def __init__(self, ptr: Any, name: str, base: KernelBtf | None = None,
                 owns_base: bool = False) -> None:
        super().__init__()
        self._ptr = ptr
        self.name = name
        self._base = base  # split BTF reads its base's memory: keep the base open
        self._owns_base = owns_base
        self._types: dict[int, BtfType] = {0: VOID}
        self._tag_cache: dict[str, frozenset[int]] = {}
        self._own(lambda: _free_btf(ptr), f"kernel BTF {name!r}")

    @classmethod
    def vmlinux(cls) -> KernelBtf:
        """The running kernel's BTF (``/sys/kernel/btf/vmlinux`` or where libbpf finds it)."""
        try:
            ptr = _ffi.lib().btf__load_vmlinux_btf()
        except BpfError as exc:
            raise BpfError(exc.errno or _errno.ENOENT, "cannot read the kernel's BTF (a "
                           "kernel built with CONFIG_DEBUG_INFO_BTF has it)") from None
        return cls(ptr, "vmlinux")

    @classmethod
    def module(cls, name: str, base: KernelBtf | None = None) -> KernelBtf:
        """The BTF of kernel module ``name`` (``/sys/kernel/btf/<name>``), split BTF on top
        of ``base`` (vmlinux, loaded for it and closed with it when not given)."""
        own = base is None
        vmlinux = cls.vmlinux() if base is None else base
        try:
            ptr = _ffi.lib().btf__load_module_btf(name.encode(), vmlinux._p)
        except BpfError as exc:
            if own:
                vmlinux.close()
            raise BpfError(exc.errno or _errno.ENOENT, f"cannot read the BTF of kernel "
                           f"module {name!r}") from None
        return cls(ptr, name, vmlinux, owns_base=own)

    @property
    def _p(self) -> Any:
        self._check()
        if self._base is not None and self._base.closed:
            raise ClosedError(f"{self._base.name} BTF (the base of {self.name!r})")
        return self._ptr

    def close(self) -> None:
        """Free libbpf's copy (and the vmlinux BTF :meth:`module` loaded for it)."""
        if self.closed:
            return
        super().close()
        self._ptr = None
        if self._owns_base and self._base is not None:
            self._base.close()

    def __len__(self) -> int:
        """The number of type ids, void included (a module's count includes vmlinux)."""
        return int(_ffi.lib().btf__type_cnt(self._p))

    def _name_at(self, offset: int) -> str:
        raw = _ffi.lib().btf__name_by_offset(self._p, offset)
        if raw is None:
            raise ElfError(f"kernel BTF {self.name!r}: string offset {offset} out of range")
        return bytes(raw).decode("utf-8", "replace")

    def type_by_id(self, type_id: int) -> BtfType:
        """The type with id ``type_id`` (0 is void)."""
        self._check()
        found = self._types.get(type_id)
        if found is not None:
            return found
        address = _ffi.lib().btf__type_by_id(self._p, type_id) if type_id > 0 else None
        if not address:
            raise ElfError(f"kernel BTF {self.name!r} has no type id {type_id}")
        size = type_record_size(ctypes.string_at(address, _HEADER_SIZE), 0, _NATIVE, type_id)
        record = ctypes.string_at(address, size)
        t = decode_type_record(record, 0, type_id, _NATIVE, self._name_at)
        self._types[type_id] = t
        return t

    def find(self, name: str, kind: BtfKind | None = None) -> BtfType | None:
        """The first type named ``name`` (of ``kind``, if given), or None."""
        lib = _ffi.lib()
        encoded = name.encode()
        type_id = (lib.btf__find_by_name(self._p, encoded) if kind is None
                   else lib.btf__find_by_name_kind(self._p, encoded, int(kind)))
        return self.type_by_id(type_id) if type_id > 0 else None

    def resolve(self, t: BtfType | int) -> BtfType:
        """Skip typedef/const/volatile/restrict/type_tag to the underlying type."""
        return skip_modifiers(self.type_by_id, self.type_by_id(t) if isinstance(t, int) else t)

    def _named(self, t: BtfType | int | str) -> BtfType:
        """A type given by id, as a type, or by C name (``"struct task_struct"``,
        ``"task_struct"``: a struct, else a union, else any type of that name)."""
        if isinstance(t, BtfType):
            return t
        if isinstance(t, int) and not isinstance(t, bool):
            return self.type_by_id(t)
        if not isinstance(t, str):
            raise TypeError(f"a BTF type is given by name, id or BtfType, not "
                            f"{type(t).__name__}")
        words = t.split()
        kinds = _TAGGED.get(words[0], ()) if len(words) == 2 else (*_COMPOSITE, None)
        name = words[-1]
        if not kinds or len(words) > 2:
            raise ValueError(f"{t!r} is not a C type name such as 'struct task_struct'")
        for kind in kinds:
            found = self.find(name, kind)
            if found is not None:
                return found
        raise KeyError(f"kernel BTF {self.name!r} has no type {t!r}")

    def size_of(self, t: BtfType | int | str) -> int:
        """The size in bytes of a type (``btf__resolve_size``), given as for :meth:`member`."""
        found = self._named(t)
        size = int(_ffi.lib().btf__resolve_size(self._p, found.id))
        if size < 0:
            raise ElfError(f"kernel BTF {self.name!r}: type [{found.id}] {found.kind.name} "
                           f"{found.name!r} has no size")
        return size

    def member(self, t: BtfType | int | str, path: str) -> BtfMember:
        """The member of a struct or union at ``path`` (``"pid"``, ``"se.vruntime"``), found as
        a C compiler finds it: through anonymous struct and union members.

        ``t`` is a type, a type id or a name (``"task_struct"``, ``"struct task_struct"``).
        The :class:`~pylibbpf.elf.btf.BtfMember` returned has the member's name and type, and
        its ``bit_offset`` counts from the start of ``t``.  Raises :class:`KeyError` when a
        step of the path is missing and :class:`ValueError` when it is not a struct or union.
        """
        outer = self._named(t)
        if not isinstance(path, str) or not path:
            raise ValueError(f"member path must be a non-empty string such as 'se.vruntime', "
                             f"not {path!r}")
        current, offset = outer, 0
        found: BtfMember | None = None
        for step in path.split("."):
            container = self.resolve(current)
            if container.kind not in _COMPOSITE:
                raise ValueError(f"{self._label(outer)}: {path!r} goes through "
                                 f"{self._label(container)}, which is not a struct or union")
            hit = self._find_member(container, step, 0)
            if hit is None:
                raise KeyError(f"{self._label(container)} has no member {step!r}")
            found = BtfMember(step, hit.type_id, offset + hit.bit_offset, hit.bitfield_size)
            offset, current = found.bit_offset, self.type_by_id(hit.type_id)
        assert found is not None
        return found

    def member_offset(self, t: BtfType | int | str, path: str) -> int:
        """The byte offset of the member at ``path`` from the start of ``t`` (as
        :meth:`member`; ``offsetof``).  A bitfield raises :class:`ValueError`: read
        ``member(...).bit_offset`` for it."""
        found = self.member(t, path)
        if found.bitfield_size or found.bit_offset % 8:
            raise ValueError(f"{path!r} is a bitfield at bit {found.bit_offset} of "
                             f"{self._label(self._named(t))}: use member().bit_offset")
        return found.bit_offset // 8

    def _find_member(self, container: BtfType, name: str, depth: int) -> BtfMember | None:
        for m in container.members:
            if m.name == name:
                return m
        if depth >= 32:  # libbpf's MAX_RESOLVE_DEPTH
            return None
        for m in container.members:
            if m.name:
                continue
            inner = self.resolve(m.type_id)
            if inner.kind in _COMPOSITE:
                hit = self._find_member(inner, name, depth + 1)
                if hit is not None:
                    return BtfMember(hit.name, hit.type_id, m.bit_offset + hit.bit_offset,
                                     hit.bitfield_size)
        return None

    def _label(self, t: BtfType) -> str:
        return f"{t.kind.name.lower()} {t.name or '(anon)'} [{t.id}]"

    def tagged(self, tag: str) -> frozenset[int]:
        """The ids of the types a ``DECL_TAG`` named ``tag`` marks (for example
        ``"bpf_kfunc"``, which pahole puts on every kfunc of kernels built with its
        ``decl_tag_kfuncs`` feature).  Scans the BTF once per tag (tens of milliseconds for
        vmlinux); a module's answer covers its own types only."""
        self._check()
        cached = self._tag_cache.get(tag)
        if cached is not None:
            return cached
        result = frozenset(self._scan_tag(tag))
        self._tag_cache[tag] = result
        return result

    def _scan_tag(self, tag: str) -> set[int]:
        first = self.find(tag, BtfKind.DECL_TAG)
        if first is None:
            return set()
        raw = self.raw_data()
        header = int.from_bytes(raw[4:8], sys.byteorder)
        type_off = int.from_bytes(raw[8:12], sys.byteorder)
        type_len = int.from_bytes(raw[12:16], sys.byteorder)
        # strings are deduplicated: every tag of that name shares the first one's name offset
        first_at = ctypes.string_at(_ffi.lib().btf__type_by_id(self._p, first.id), 4)
        name_off = int.from_bytes(first_at, sys.byteorder)
        fixed, per_item = _record_sizes()
        pos, end = header + type_off, header + type_off + type_len
        unpack = _HEADER.unpack_from
        targets: set[int] = set()
        while pos < end:
            this_name, info, target = unpack(raw, pos)
            kind = (info >> 24) & 0x1F
            if kind == _DECL_TAG and this_name == name_off:
                targets.add(target)
            pos += fixed[kind] + per_item[kind] * (info & 0xFFFF)
        return targets

    def raw_data(self) -> bytes:
        """The BTF as bytes (for a module, its split part only):
        ``Btf.from_bytes(KernelBtf.vmlinux().raw_data())`` parses all of vmlinux."""
        size = ctypes.c_uint32(0)
        address = _ffi.lib().btf__raw_data(self._p, ctypes.byref(size))
        if not address:
            raise BpfError(_errno.ENOMEM, f"cannot read kernel BTF {self.name!r}")
        return ctypes.string_at(address, size.value)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self)} types"
        return f"<KernelBtf {self.name!r} ({state})>"
