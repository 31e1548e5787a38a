"""The batch and dict-like operations of a map, built on its element operations.

Batches are ``BPF_MAP_*_BATCH`` calls with buffers bounded by :data:`pylibbpf._args.MAX_BUFFER`;
the dict-like views (``keys()``, ``items()``, ``clear()``...) use batches where the kernel has
them for the map type and fall back to walking the keys, tolerating entries deleted meanwhile.
"""

from __future__ import annotations

import ctypes
import errno as _errno
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from typing import Any

from .. import _args, _ffi
from .._ffi import structs
from .._ffi.structs import new_opts
from ..enums import MapType, UpdateFlags
from ..errors import BpfError, NotSupportedError
from ._elements import Elements, KeyLike, ValueLike, cutter, to_bytes

_ARRAY_TYPES = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY})
_BATCH_TYPES = frozenset({
    MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH,
    MapType.ARRAY, MapType.PERCPU_ARRAY,
})
_NO_KEY_TYPES = frozenset({MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER,
                           MapType.RINGBUF, MapType.USER_RINGBUF})
_BATCH_MIN = 256
_RUN = 512  # pieces cut by one compiled struct format (see _pieces)


def _pieces(buffer: Any, size: int, skip: int, count: int) -> Iterable[bytes]:
    """The first ``count`` pieces of ``size`` bytes of ``buffer``, each followed by ``skip``
    bytes of padding, as ``bytes`` objects made in C (``struct`` unpacks runs of
    :data:`_RUN` pieces with one format, compiled once).  Lazy: consume it before the buffer
    changes."""
    step = size + skip
    whole = count - count % _RUN
    tail = cutter(size, skip, count - whole).unpack_from(buffer, whole * step)
    if not whole:
        return tail
    runs = cutter(size, skip, _RUN).iter_unpack(memoryview(buffer)[:whole * step])
    return chain(chain.from_iterable(runs), tail)


class BatchCursor:
    """libbpf's batch lookup on one map, call after call: the first starts at the map's
    beginning, each later one where the previous stopped (the kernel's opaque position token,
    ``max(key_size, 8)`` bytes, copied from each call's out-token to the next one's in-token).
    ``delete``: ``BPF_MAP_LOOKUP_AND_DELETE_BATCH``."""

    __slots__ = ("_fd", "_func", "_size", "_in", "_out", "_started", "_count", "_count_ref",
                 "_opts", "_opts_ref")

    def __init__(self, fd: int, key_size: int, delete: bool = False) -> None:
        lib = _ffi.lib()
        self._fd = fd
        self._func = lib.bpf_map_lookup_and_delete_batch if delete else lib.bpf_map_lookup_batch
        self._size = max(key_size, 8)
        self._in = ctypes.create_string_buffer(self._size)
        self._out = ctypes.create_string_buffer(self._size)
        self._started = False
        self._count = ctypes.c_uint32()
        self._count_ref = ctypes.byref(self._count)
        self._opts = new_opts(structs.bpf_map_batch_opts)
        self._opts_ref = ctypes.byref(self._opts)

    def read(self, keys: Any, values: Any, room: int) -> tuple[int, int]:
        """One call writing at most ``room`` entries to ``keys`` and ``values`` (buffers or
        addresses): (rc, entries).  ``rc`` 0: more may follow; ``-ENOENT``: these were the
        last; any other ``-errno``: nothing was read and the position stays (``-ENOSPC``: a
        hash bucket holds more than ``room`` entries)."""
        self._count.value = room
        rc = self._func(self._fd, self._in if self._started else None, self._out, keys, values,
                        self._count_ref, self._opts_ref)
        if rc < 0 and rc != -_errno.ENOENT:
            return rc, 0
        if rc == 0:
            ctypes.memmove(self._in, self._out, self._size)
            self._started = True
        return rc, self._count.value


def _sequence(value: Any, what: str) -> Sequence[Any]:
    if isinstance(value, (str, bytes, bytearray, memoryview)) or not isinstance(value, Sequence):
        raise TypeError(f"{what} must be a sequence (a list or tuple), not "
                        f"{type(value).__name__}")
    return value


class Bulk(Elements):
    """Batch and dict-like operations; a subclass also provides ``type`` and ``max_entries``
    and sets ``_no_batch`` (True once the kernel refused a batch call for this map)."""

    _no_batch: bool

    @property
    def type(self) -> MapType | int:
        raise NotImplementedError

    @property
    def max_entries(self) -> int:
        raise NotImplementedError

    # ----------------------------------------------------------------------------- batches

    def _batch_supported(self) -> bool:
        return not self._no_batch and self.type in _BATCH_TYPES

    def _batch_read(self, delete: bool, batch_size: int | None,
                    keys_only: bool = False) -> list[Any]:
        """Every entry, read with ``BPF_MAP_LOOKUP[_AND_DELETE]_BATCH``: a list of (key, value)
        pairs, or of keys with ``keys_only``.

        One pair of key and value buffers serves every batch call of the dump (grown only when
        a hash bucket does not fit), and the keys and values are cut out of them by
        :func:`_pieces` in C, straight into the list: no copy of a buffer, no Python step per
        entry."""
        fd, ks, vs, total, stride, percpu = self._bound or self._bind()
        count_max, count_cap = self._batch_count(batch_size, ks + total)
        cursor = BatchCursor(fd, ks, delete)
        kbuf = ctypes.create_string_buffer(ks * count_max)
        vbuf = ctypes.create_string_buffer(total * count_max)
        ncpu = total // stride if percpu else 1
        out: list[Any] = []
        while True:
            rc, n = cursor.read(kbuf, vbuf, count_max)
            if rc < 0 and rc != -_errno.ENOENT:
                if rc == -_errno.ENOSPC and count_max < count_cap:
                    # a hash bucket larger than the batch: grow and retry
                    count_max = min(count_max * 2, count_cap)
                    kbuf = ctypes.create_string_buffer(ks * count_max)
                    vbuf = ctypes.create_string_buffer(total * count_max)
                    continue
                raise self._fail(rc, "batch lookup")
            if n:
                keys = _pieces(kbuf, ks, 0, n)
                if keys_only:
                    out.extend(keys)
                elif percpu:
                    # one piece per CPU slot (its padding skipped), ncpu pieces per entry
                    slots = iter(_pieces(vbuf, vs, stride - vs, n * ncpu))
                    out.extend(zip(keys, map(list, zip(*[slots] * ncpu, strict=True)), strict=True))
                else:
                    out.extend(zip(keys, _pieces(vbuf, total, 0, n), strict=True))
            if rc == -_errno.ENOENT:
                return out

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
        bound = self._bound or self._bind()
        fd, ks = bound[0], bound[1]
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys but {len(values)} values")
        if not keys:
            return 0
        _args.in_range(len(keys), "number of keys", 0, _args.U32_MAX)
        kblob = b"".join(to_bytes(k, ks, "key") for k in keys)
        vblob = b"".join(self._value(v, bound) for v in values)
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
        fd, ks, _vs, _total, _stride, _percpu = self._bound or self._bind()
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
        fd, ks, _vs, _total, _stride, _percpu = self._bound or self._bind()
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

    def _fall_back(self, exc: BpfError) -> None:
        """After a refused batch call: remember that this map walks its keys instead, or
        re-raise ``exc`` when the refusal was not about batches."""
        if exc.errno != _errno.EINVAL and not isinstance(exc, NotSupportedError):
            raise exc
        self._no_batch = True

    def keys(self) -> list[bytes]:
        """A snapshot of the keys (safe to delete from the map while looping over it)."""
        if self.type in _NO_KEY_TYPES:
            raise TypeError(f"{self._label} of type {self.type!r} has no keys")
        if self._batch_supported():
            try:
                return self._batch_read(False, None, keys_only=True)
            except BpfError as exc:
                self._fall_back(exc)
        return self._walk_keys()

    def items(self) -> list[tuple[bytes, Any]]:
        """A snapshot of (key, value) pairs; batched where the kernel supports it."""
        if self._batch_supported():
            try:
                return self.lookup_batch()
            except BpfError as exc:
                self._fall_back(exc)
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
        fd, ks, _vs, total, _stride, _percpu = self._bound or self._bind()
        if self.type in _ARRAY_TYPES:
            zero = bytes(total)
            update = _ffi.lib().bpf_map_update_elem
            for index in range(self.max_entries):
                rc = update(fd, to_bytes(index, ks, "key"), zero, 0)
                if rc < 0:
                    raise self._fail(rc, "clear")
            return
        for key in self.keys():
            try:
                self.delete(key)
            except KeyError:
                pass

    def get(self, key: KeyLike, default: Any = None) -> Any:
        """The value at ``key``, or ``default`` when absent."""
        try:
            return self.lookup(key)
        except KeyError:
            return default

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
