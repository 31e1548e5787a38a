"""A map's values as memory (:meth:`pylibbpf.Map.memory`): ``mmap`` of the map's fd.

The kernel lets user space map the values of an ARRAY created with ``BPF_F_MMAPABLE`` (libbpf
creates global-data maps that way): every read and write is then a plain memory access, with no
syscall.  The values lie one after another, each in a slot of its size rounded up to 8 bytes.

Lifetime: a map keeps one mapping per access mode and hands out views of it; each view holds
the mapping (a buffer export of the ``mmap``) until it is released or collected.  Closing the
map (or its object) unmaps the memory at once if no view is left, and otherwise drops the map's
own reference, so that the last view unmaps it; ``memory()`` on a closed map raises
:class:`~pylibbpf.ClosedError`.  The views are not revoked at close, on purpose: NumPy arrays
made with ``numpy.ndarray(buffer=view)`` keep a reference to the view but no buffer export, so
releasing the view would unmap memory under them.  The kernel keeps a mapped map's memory alive,
so a view that outlives its map reads and writes the memory of that (detached) map, never
memory that was freed.
"""

from __future__ import annotations

import errno as _errno
import mmap
from typing import TYPE_CHECKING, Any

from ..enums import MapFlags, MapType
from ..errors import BpfError, NotSupportedError
from ._elements import cpu_slot

if TYPE_CHECKING:
    from .base import Map


class Mapping:
    """The mappings of one map (read-only and writable), and the views handed out of them."""

    __slots__ = ("_maps",)

    def __init__(self) -> None:
        self._maps: dict[bool, mmap.mmap] = {}

    def view(self, m: Map, readonly: bool | None) -> memoryview:
        """A view of ``m``'s values; ``readonly`` None: writable when the map allows it."""
        length = _length(m)
        fd = m.fd
        if readonly is None:
            try:
                region = self._mapped(m, fd, length, writable=True)
            except BpfError as exc:
                if exc.errno not in (_errno.EPERM, _errno.EACCES):
                    raise
                region = self._mapped(m, fd, length, writable=False)
        else:
            region = self._mapped(m, fd, length, writable=not readonly)
        view = memoryview(region)[:length]
        if readonly and not view.readonly:
            view = view.toreadonly()
        return view

    def _mapped(self, m: Map, fd: int, length: int, *, writable: bool) -> mmap.mmap:
        found = self._maps.get(writable)
        if found is not None:
            return found
        pages = max(mmap.PAGESIZE, -(-length // mmap.PAGESIZE) * mmap.PAGESIZE)
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        try:
            region = mmap.mmap(fd, pages, mmap.MAP_SHARED, prot)
        except OSError as exc:
            err = exc.errno or _errno.EINVAL
            hint = (" (the map is frozen or read-only for user space: ask for "
                    "readonly=True)" if writable and err in (_errno.EPERM, _errno.EACCES)
                    else "")
            raise BpfError(err, f"failed to map {m._label} into memory "
                           f"({'read-write' if writable else 'read-only'}){hint}") from None
        return self._maps.setdefault(writable, region)

    def close(self) -> None:
        """Unmap now if no view is left; else the last view unmaps (see the module's
        documentation)."""
        maps, self._maps = self._maps, {}
        for region in maps.values():
            try:
                region.close()
            except BufferError:
                pass  # unmapped when its last export is released


def _length(m: Map) -> int:
    """Bytes of the map's values in memory, after checking that it can be mapped."""
    kind = m.type
    if kind != MapType.ARRAY or not m.flags & MapFlags.MMAPABLE:
        what = getattr(kind, "name", kind)
        raise NotSupportedError(f"{m._label} cannot be mapped into memory: only an ARRAY "
                                f"created with BPF_F_MMAPABLE (MapFlags.MMAPABLE) or a "
                                f"global-data map can be (it is {what}, flags "
                                f"{m.flags:#x})", _errno.EINVAL)
    slot = cpu_slot(m.value_size)  # 8-byte aligned, as a CPU's value is
    return (m.max_entries - 1) * slot + m.value_size if m.max_entries else 0


def ndarray(m: Map, view: memoryview, dtype: Any) -> Any:
    """``view`` as a NumPy array of ``dtype``, one element per map slot.  The array's base is
    ``view``, which holds the mapping for as long as the array lives."""
    from ._numpy import numpy

    np = numpy()
    dtype = np.dtype(dtype)
    slot = cpu_slot(m.value_size)
    if dtype.itemsize != m.value_size:
        raise ValueError(f"dtype {dtype} is {dtype.itemsize} bytes; {m._label} has "
                         f"{m.value_size}-byte values")
    return np.ndarray((m.max_entries,), dtype=dtype, buffer=view, strides=(slot,))
