"""The batch and dict-like operations of a map, built on its element operations.

Batches are ``BPF_MAP_*_BATCH`` calls with buffers bounded by :data:`pylibbpf._args.MAX_BUFFER`;
the dict-like views (``keys()``, ``items()``, ``clear()``...) use batches where the kernel has
them for the map type and fall back to walking the keys, tolerating entries deleted meanwhile.

A large dump reads ahead (:class:`_ReadAhead`): a helper thread makes the next batch call while
the caller cuts the previous batch into Python objects.  ctypes releases the GIL during the
call, so on a machine with two CPUs the kernel's walk of the map and the building of the result
overlap instead of taking turns; the calls, their order and the result are the same.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import queue
import threading
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
# Reading ahead: the default batch of a dump that reads ahead (small enough that the last
# batch, which nothing overlaps, is cut quickly; large enough that the hand-over between the
# threads, tens of microseconds, is rare), and the smallest batch worth a hand-over.
_AHEAD_BATCH = 16384
_AHEAD_MIN = 1024


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


class _Buffers:
    """A key buffer and a value buffer with room for ``room`` entries of one batch call."""

    __slots__ = ("keys", "values", "room", "_sizes")

    def __init__(self, room: int, key_size: int, value_bytes: int) -> None:
        self.room = room
        self.keys = ctypes.create_string_buffer(key_size * room)
        self.values = ctypes.create_string_buffer(value_bytes * room)
        self._sizes = key_size, value_bytes

    def grown(self, room: int) -> _Buffers:
        """New buffers for ``room`` entries of the same sizes."""
        return _Buffers(room, *self._sizes)


def _fill(cursor: BatchCursor, buffers: _Buffers, cap: int) -> tuple[int, int, _Buffers]:
    """One batch call into ``buffers``, made again into buffers twice as large (at most
    ``cap`` entries) while the kernel says a hash bucket does not fit (``-ENOSPC``):
    (rc, entries, the buffers written)."""
    while True:
        rc, n = cursor.read(buffers.keys, buffers.values, buffers.room)
        if rc != -_errno.ENOSPC or buffers.room >= cap:
            return rc, n, buffers
        buffers = buffers.grown(min(buffers.room * 2, cap))


def _cpus_to_spare() -> bool:
    """Whether this thread may run on more than one CPU (else a helper only takes turns)."""
    return len(os.sched_getaffinity(0)) > 1


class _ReadAhead:
    """The batch calls of one dump, made by a helper thread one batch ahead of the caller.

    The caller makes the first call itself and starts this with a second pair of buffers; the
    helper fills that pair while the caller cuts the first, and :meth:`next` swaps them: the
    caller hands back the buffers it has finished with and takes the next batch.  Only the
    helper touches the cursor from then on; each pair belongs to one thread at a time (passed
    through the queues), so nothing is shared while ctypes has released the GIL.  The helper
    stops after the call that says the map has no more (or refused): ``rc`` is not 0.
    """

    __slots__ = ("_free", "_full", "_thread")

    def __init__(self, cursor: BatchCursor, spare: _Buffers, cap: int) -> None:
        self._free: queue.SimpleQueue[_Buffers | None] = queue.SimpleQueue()
        self._full: queue.SimpleQueue[tuple[int, int, _Buffers] | BaseException] = (
            queue.SimpleQueue())
        self._free.put(spare)
        self._thread = threading.Thread(target=self._run, args=(cursor, cap),
                                        name="pylibbpf-batch-read", daemon=True)

    @classmethod
    def start(cls, cursor: BatchCursor, spare: _Buffers, cap: int) -> _ReadAhead | None:
        """A running helper, or None when no thread can be started (at interpreter exit)."""
        ahead = cls(cursor, spare, cap)
        try:
            ahead._thread.start()
        except RuntimeError:
            return None
        return ahead

    def _run(self, cursor: BatchCursor, cap: int) -> None:
        try:
            while True:
                buffers = self._free.get()
                if buffers is None:
                    return
                got = _fill(cursor, buffers, cap)
                self._full.put(got)
                if got[0] != 0:
                    return
        except BaseException as exc:  # handed to the caller, raised there
            self._full.put(exc)

    def next(self, done: _Buffers) -> tuple[int, int, _Buffers]:
        """Hand back ``done`` (its contents are no longer needed) and take the next batch:
        (rc, entries, its buffers), as :func:`_fill` gives them."""
        self._free.put(done)
        got = self._full.get()
        if isinstance(got, BaseException):
            raise got
        return got

    def close(self) -> None:
        """Stop the helper (after the call it is making, if any) and wait for it."""
        self._free.put(None)
        self._thread.join()


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

        The keys and values are cut out of the batch buffers by :func:`_pieces` in C, straight
        into the list: no copy of a buffer, no Python step per entry.  A lookup of a map that
        takes several batch calls reads ahead (:class:`_ReadAhead`): two pairs of buffers,
        one filled by the kernel while the other is cut.  A drain (``delete``) does not, so
        that an error while cutting loses no more entries than the batch in hand."""
        fd, ks, vs, total, stride, percpu = self._bound or self._bind()
        count, cap = self._batch_count(batch_size, ks + total)
        ahead_cap = 0  # entries per pair while reading ahead (two pairs: within cap); 0: never
        if not delete:
            ahead_count = count if batch_size is not None else min(count, _AHEAD_BATCH)
            if (_AHEAD_MIN <= ahead_count <= cap // 2 and self.max_entries > 2 * ahead_count
                    and _cpus_to_spare()):
                count, ahead_cap = ahead_count, cap // 2
        cursor = BatchCursor(fd, ks, delete)
        rc, n, buffers = _fill(cursor, _Buffers(count, ks, total), cap)
        ncpu = total // stride if percpu else 1
        out: list[Any] = []
        ahead: _ReadAhead | None = None
        try:
            while True:
                if rc < 0 and rc != -_errno.ENOENT:
                    if rc == -_errno.ENOSPC and ahead is not None:
                        # a bucket larger than a read-ahead pair: on alone, with all the room
                        # (the call read nothing and the position stays)
                        ahead.close()
                        ahead = None
                        rc, n, buffers = _fill(cursor, buffers, cap)
                        continue
                    raise self._fail(rc, "batch lookup")
                if rc == 0 and ahead is None and ahead_cap and buffers.room <= ahead_cap:
                    ahead = _ReadAhead.start(cursor, buffers.grown(count), ahead_cap)
                    ahead_cap = 0  # once per dump
                if n:
                    keys = _pieces(buffers.keys, ks, 0, n)
                    if keys_only:
                        out.extend(keys)
                    elif percpu:
                        # one piece per CPU slot (its padding skipped), ncpu pieces per entry
                        slots = iter(_pieces(buffers.values, vs, stride - vs, n * ncpu))
                        out.extend(zip(keys, map(list, zip(*[slots] * ncpu, strict=True)),
                                       strict=True))
                    else:
                        out.extend(zip(keys, _pieces(buffers.values, total, 0, n), strict=True))
                if rc == -_errno.ENOENT:
                    return out
                if ahead is not None:
                    rc, n, buffers = ahead.next(buffers)
                else:
                    rc, n, buffers = _fill(cursor, buffers, cap)
        finally:
            if ahead is not None:
                ahead.close()

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
        """A snapshot of (key, value) pairs; batched where the kernel supports it.

        A map of more than two default batches (32768 entries) is read ahead where this
        thread may use two CPUs: a helper thread makes each batch call while this one builds
        the pairs of the previous batch, and is gone when this returns (also for ``keys()``
        and ``values()``)."""
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
