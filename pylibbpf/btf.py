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
"""

from __future__ import annotations

import ctypes
import errno as _errno
import sys
import weakref
from typing import TYPE_CHECKING, Any, Literal

from . import _ffi
from ._handle import Handle
from .elf.btf import (
    VOID,
    Btf,
    BtfKind,
    BtfType,
    decode_type_record,
    skip_modifiers,
    type_record_size,
)
from .elf.errors import ElfError
from .errors import BpfError, ClosedError

if TYPE_CHECKING:
    from .object import Object

__all__ = ["KernelBtf", "object_btf"]

_NATIVE: Literal["little", "big"] = "little" if sys.byteorder == "little" else "big"
_HEADER_SIZE = 12

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
