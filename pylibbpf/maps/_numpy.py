"""A whole map as NumPy arrays (:meth:`pylibbpf.Map.to_numpy`).

The batch calls write straight into two preallocated NumPy buffers, one for the keys and one
for the values, sized by ``max_entries`` (plus a little room, as C's dump has) and doubled only
if a map holds more than that; the result's arrays are views of those buffers.  No Python
object is made per entry, and the memory is the raw key and value bytes.  NumPy is imported
only here, when an export is asked for.
"""

from __future__ import annotations

import errno as _errno
from typing import TYPE_CHECKING, Any

from .. import _args
from ..errors import BpfError
from ._bulk import BatchCursor

if TYPE_CHECKING:
    from .base import Map

# Room past max_entries, so that the call that finds the end of a full map has somewhere to
# write (and a per-CPU hash bucket that straddles the end fits).
_SLACK = 256


def numpy() -> Any:
    """The ``numpy`` module, or ImportError saying how to install it."""
    try:
        import numpy as np
    except ImportError:
        raise ImportError("this needs NumPy: pip install 'pylibbpf[numpy]' (or numpy)") from None
    return np


class MapArrays:
    """A map's entries as two NumPy arrays of one length: :attr:`keys` and :attr:`values`.

    ``len()`` is the number of entries; unpacking gives the two arrays
    (``keys, values = m.to_numpy()``).  Per-CPU maps' :attr:`values` have a second axis, one
    column per possible CPU.
    """

    __slots__ = ("keys", "values")

    def __init__(self, keys: Any, values: Any) -> None:
        self.keys = keys
        self.values = values

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Any:
        return iter((self.keys, self.values))

    def __repr__(self) -> str:
        return (f"<MapArrays {len(self)} entries: keys {self.keys.dtype}, values "
                f"{self.values.dtype}{'' if self.values.ndim == 1 else ' per CPU'}>")


def _dtype(np: Any, m: Map, given: Any, type_id: int, size: int, what: str) -> Any:
    if given is not None:
        dtype = np.dtype(given)
        if dtype.itemsize != size:
            raise ValueError(f"{what}_dtype {dtype} is {dtype.itemsize} bytes; map "
                             f"{m.name!r} has {size}-byte {what}s")
        return dtype
    if type_id:
        from ..elf.layout import numpy_dtype

        try:
            btf = m.btf  # a standalone map's: the kernel's copy (needs CAP_SYS_ADMIN)
            dtype = None if btf is None else numpy_dtype(btf, type_id)
        except (ValueError, KeyError, BpfError):
            dtype = None  # no BTF to read, no NumPy equivalent (a union of bitfields...)
        if dtype is not None and dtype.itemsize == size:
            return dtype
    return np.dtype((np.void, size))


def to_numpy(m: Map, key_dtype: Any = None, value_dtype: Any = None) -> MapArrays:
    """The body of :meth:`pylibbpf.Map.to_numpy`."""
    np = numpy()
    fd, ks, vs, total, stride, percpu = m._bound or m._bind()
    kdt = _dtype(np, m, key_dtype, m.btf_key_type_id, ks, "key")
    vdt = _dtype(np, m, value_dtype, m.btf_value_type_id, vs, "value")
    keys = values = None
    if m._batch_supported():
        try:
            keys, values, n = _read_batches(np, m, fd, ks, total)
        except BpfError as exc:
            m._fall_back(exc)
    if keys is None or values is None:
        keys, values, n = _read_walking(np, m, ks, total, stride, percpu)
    keys = keys[:n * ks].view(kdt)
    if not percpu:
        return MapArrays(keys, values[:n * total].view(vdt))
    ncpu = total // stride
    if vdt.itemsize == stride:
        return MapArrays(keys, values[:n * total].view(vdt).reshape(n, ncpu))
    # each CPU's value sits in an 8-byte aligned slot: a strided view skips the padding
    return MapArrays(keys, np.ndarray((n, ncpu), dtype=vdt, buffer=values,
                                      strides=(total, stride)))


def _read_batches(np: Any, m: Map, fd: int, ks: int, total: int) -> tuple[Any, Any, int]:
    """(key bytes, value bytes, entries) read by ``BPF_MAP_LOOKUP_BATCH`` calls, each asking
    for as many entries as the buffers have room for."""
    # max_entries, unless that is more than MAX_BUFFER bytes: then grow from there as needed
    # (np.empty: pages no entry reaches are never touched, so never resident)
    capacity = min(m.max_entries + _SLACK,
                   max(4 * _SLACK, _args.MAX_BUFFER // max(ks + total, 1)))
    keys = np.empty(capacity * ks, dtype=np.uint8)
    values = np.empty(capacity * total, dtype=np.uint8)
    cursor = BatchCursor(fd, ks)
    n = 0
    while True:
        room = capacity - n
        if room < _SLACK:  # more entries than max_entries (added during the dump): grow
            capacity *= 2
            keys, values = _grown(np, keys, n * ks, capacity * ks), _grown(
                np, values, n * total, capacity * total)
            continue
        rc, got = cursor.read(keys.ctypes.data + n * ks, values.ctypes.data + n * total,
                              min(room, _args.U32_MAX))
        if rc < 0 and rc != -_errno.ENOENT:
            if rc == -_errno.ENOSPC:  # a hash bucket larger than the room left
                capacity = max(capacity, n + 2 * room)
                keys, values = _grown(np, keys, n * ks, capacity * ks), _grown(
                    np, values, n * total, capacity * total)
                continue
            raise m._fail(rc, "batch lookup")
        n += got
        if rc == -_errno.ENOENT:
            break
    if n < capacity // 2:  # a sparse map: give the untouched room back
        keys, values = keys[:n * ks].copy(), values[:n * total].copy()
    return keys, values, n


def _grown(np: Any, old: Any, used: int, size: int) -> Any:
    new = np.empty(size, dtype=np.uint8)
    new[:used] = old[:used]
    return new


def _read_walking(np: Any, m: Map, ks: int, total: int, stride: int,
                  percpu: bool) -> tuple[Any, Any, int]:
    """(key bytes, value bytes, entries) of a map without batches: its items, packed."""
    pairs = m.items()
    keys = np.frombuffer(bytearray(b"".join(k for k, _v in pairs)), dtype=np.uint8)
    if percpu:
        packed = b"".join(slot.ljust(stride, b"\0") for _k, v in pairs for slot in v)
    else:
        packed = b"".join(v for _k, v in pairs)
    values = np.frombuffer(bytearray(packed), dtype=np.uint8)
    return keys, values, len(pairs)
