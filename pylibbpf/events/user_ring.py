"""``UserRingBuffer``: Python → BPF through a ``BPF_MAP_TYPE_USER_RINGBUF`` map.

libbpf's ``user_ring_buffer__*``: the program reads the records with ``bpf_user_ringbuf_drain``::

    with UserRingBuffer(obj.maps["commands"]) as urb:
        urb.write(struct.pack("<Q", 42))          # reserve + copy + submit
        with urb.reserve(16) as buf:              # fill in place; discarded if the block raises
            buf[:] = payload
"""

from __future__ import annotations

import ctypes
import errno as _errno
import mmap
import weakref
from collections.abc import Callable
from typing import Any

from .. import _args, _ffi
from .._handle import Handle
from ..enums import MapType
from ..errors import BpfError, ClosedError, StateError, error_from_errno
from ..map import Map
from ._common import HEADER_SIZE, poll_timeout, record_space, release_view, ring_fd
from ._guard import PollGuard


class UserSample:
    """A record reserved in a :class:`UserRingBuffer`: fill :attr:`buffer`, then :meth:`submit`
    (or :meth:`discard`).  As a context manager it submits on success, discards on error.

    :attr:`buffer` views the ring's memory.  It is released when the sample is submitted or
    discarded (then using the sample raises :class:`~pylibbpf.StateError`) or its buffer closed
    (:class:`~pylibbpf.ClosedError`).
    """

    __slots__ = ("_finish", "_guard", "_holder", "_address", "_size", "_buffer", "_dead",
                 "__weakref__")

    def __init__(self, finish: Callable[[UserSample, str], None], guard: PollGuard, holder: str,
                 address: int, buffer: memoryview) -> None:
        self._finish = finish  # the buffer's: submits or discards (and keeps the buffer alive)
        self._guard = guard
        self._holder = holder  # what ClosedError names
        self._address = address
        self._size = len(buffer)
        self._buffer = buffer
        self._dead: str | None = None  # "submitted", "discarded" or "closed"

    @property
    def size(self) -> int:
        """Bytes reserved."""
        return self._size

    @property
    def buffer(self) -> memoryview:
        """The reserved bytes, writable, until the sample is submitted or discarded."""
        self._check()
        return self._buffer

    def _check(self) -> None:
        if self._dead == "closed":
            raise ClosedError(self._holder)
        self._guard.refuse_inherited()  # the parent's reservation, in shared memory
        if self._dead is not None:
            raise StateError(_errno.EINVAL, f"this sample was already {self._dead}")

    def _end(self, how: str) -> int:
        self._check()
        self._dead = how
        release_view(self._buffer)
        return self._address

    def _invalidate(self) -> None:
        if self._dead is None:
            self._dead = "closed"
            release_view(self._buffer)

    def submit(self) -> None:
        """Publish the record to the BPF side (``user_ring_buffer__submit``)."""
        self._finish(self, "submitted")

    def discard(self) -> None:
        """Give the space back unpublished (``user_ring_buffer__discard``)."""
        self._finish(self, "discarded")

    def __enter__(self) -> memoryview:
        return self.buffer

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if self._dead is None:
            if exc_type is None:
                self.submit()
            else:
                self.discard()
        elif self._dead == "closed" and exc_type is None:
            raise ClosedError(self._holder)  # the record was never sent

    def __repr__(self) -> str:
        return f"<UserSample {self._size} bytes{'' if self._dead is None else ' ' + self._dead}>"


class UserRingBuffer(Handle):
    """libbpf's ``user_ring_buffer`` over a ``USER_RINGBUF`` map: records written here are read
    by the BPF program's ``bpf_user_ringbuf_drain``.

    ``urb.write(data)`` reserves, copies and submits; ``with urb.reserve(n) as buf:`` fills a
    record in place.  A record holds 1 to ``capacity - 8`` bytes (:attr:`max_record_size`;
    ValueError otherwise).  A full ring raises :class:`~pylibbpf.BpfError` with errno ENOSPC.

    The samples' buffers view a mapping of the ring that this object makes itself (libbpf's own
    is unmapped by ``user_ring_buffer__free``): :meth:`close` invalidates every sample not yet
    submitted, and a view someone derived from a sample's buffer keeps that mapping alive, so
    no write can fault.  Calls are serialised (libbpf's producer side is single-threaded).
    """

    _what = "user ring buffer"

    def __init__(self, ring: Map | int) -> None:
        super().__init__()
        fd, what, size = ring_fd(ring, MapType.USER_RINGBUF)
        self._what_ring = what
        self._holder = f"the user ring buffer on {what} that held this sample"
        self._capacity = size
        page = mmap.PAGESIZE
        try:
            # the producer page (position in its first 8 bytes), then the data mapped twice
            self._map = mmap.mmap(fd, page + 2 * size, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE, offset=page)
        except OSError as exc:
            raise error_from_errno(exc.errno or _errno.EINVAL,
                                   f"failed to map the user ring buffer on {what}") from None
        try:
            ptr = _ffi.lib().user_ring_buffer__new(fd, None)
        except BpfError as exc:
            self._map.close()
            raise error_from_errno(exc.errno or _errno.EIO,
                                   f"failed to create a user ring buffer on {what}") from None
        self._page = page
        self._whole = memoryview(self._map)
        self._producer_pos = self._whole[:8].cast("Q")
        self._samples: weakref.WeakSet[UserSample] = weakref.WeakSet()
        self._ptr = ptr
        guard = self._guard = PollGuard(self._what)
        self._own(lambda: _ffi.lib().user_ring_buffer__free(ptr), f"user ring buffer on {what}",
                  on_gc=lambda: guard.close(lambda: _ffi.lib().user_ring_buffer__free(ptr)))

    @property
    def _p(self) -> Any:
        self._check()
        return self._ptr

    @property
    def capacity(self) -> int:
        """The ring's size in bytes (the map's ``max_entries``)."""
        self._check()
        return self._capacity

    @property
    def max_record_size(self) -> int:
        """The largest record :meth:`reserve` accepts: the capacity less the 8-byte header."""
        return self.capacity - HEADER_SIZE

    def _record_size(self, size: int) -> int:
        number = _args.integer(size, "size")
        if not 1 <= number <= self.max_record_size:
            raise ValueError(f"size {number} does not fit in the user ring buffer on "
                             f"{self._what_ring}: its capacity is {self._capacity} bytes, so a "
                             f"record holds 1 to {self.max_record_size} bytes")
        return number

    def reserve(self, size: int, timeout_ms: int | None = None) -> UserSample:
        """Reserve ``size`` bytes (``user_ring_buffer__reserve``; with ``timeout_ms``,
        ``__reserve_blocking``, which waits up to ``timeout_ms`` (-1: forever) for the BPF
        side to drain)."""
        size = self._record_size(size)
        if timeout_ms is not None:
            timeout_ms = poll_timeout(timeout_ms)
        ptr = self._p
        lib = _ffi.lib()

        def attempt(slice_ms: int | None) -> UserSample | int:
            if slice_ms is None:
                address = lib.user_ring_buffer__reserve(ptr, size)
            else:
                address = lib.user_ring_buffer__reserve_blocking(ptr, size, slice_ms)
            if not address:
                return ctypes.get_errno() or _errno.ENOSPC
            return self._sample(address, size)

        if timeout_ms is None:
            got = self._guard.call(lambda: attempt(None))
        else:
            # cut into slices by the guard's poll loop, so that close() from another thread
            # waits at most one slice
            outcome: list[UserSample | int] = [_errno.ENOSPC]

            def step(slice_ms: int) -> int:
                outcome[0] = attempt(slice_ms)
                return 0 if outcome[0] == _errno.ENOSPC else 1

            self._guard.poll(step, timeout_ms)
            got = outcome[0]
        if isinstance(got, int):
            raise error_from_errno(got, f"cannot reserve {size} bytes in the user ring buffer "
                                   f"on {self._what_ring}")
        return got

    def _sample(self, address: int, size: int) -> UserSample:
        # libbpf reserved at the producer position it then advanced by the record's space
        space = record_space(size)
        start = (int(self._producer_pos[0]) - space + HEADER_SIZE) & (self._capacity - 1)
        offset = self._page + start
        if (address - offset) % mmap.PAGESIZE:  # both mappings are page-aligned
            lib = _ffi.lib()
            lib.user_ring_buffer__discard(self._ptr, address)
            raise BpfError(_errno.EIO, f"the user ring buffer on {self._what_ring} moved under "
                           "us: is another producer writing to it?")
        sample = UserSample(self._finish, self._guard, self._holder, address,
                            self._whole[offset:offset + size])
        self._samples.add(sample)
        return sample

    def _finish(self, sample: UserSample, how: str) -> None:
        sample._check()
        ptr = self._p
        lib = _ffi.lib()
        end = lib.user_ring_buffer__submit if how == "submitted" else \
            lib.user_ring_buffer__discard

        def run() -> None:
            end(ptr, sample._end(how))
            self._samples.discard(sample)

        self._guard.call(run)

    def write(self, data: bytes | bytearray | memoryview, timeout_ms: int | None = None) -> None:
        """Send one record: reserve ``len(data)`` bytes, copy ``data``, submit."""
        payload = bytes(data)
        sample = self.reserve(len(payload), timeout_ms)
        sample.buffer[:] = payload
        sample.submit()

    def close(self) -> None:
        """Invalidate the samples not submitted, unmap the ring and free libbpf's buffer.  Safe
        from any thread (a blocking :meth:`reserve` returns within one slice with
        :class:`~pylibbpf.ClosedError`)."""
        if self._closed:
            return

        def release() -> None:
            for sample in list(self._samples):
                sample._invalidate()
            self._samples.clear()
            self._producer_pos.release()
            self._whole.release()
            try:
                self._map.close()
            except BufferError:
                pass  # a view derived from a sample keeps it mapped until it goes
            Handle.close(self)

        self._guard.close(release)

    def __repr__(self) -> str:
        return f"<UserRingBuffer {self._what_ring}{' closed' if self.closed else ''}>"
