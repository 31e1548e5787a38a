"""``PerfBuffer``: libbpf's ``perf_buffer`` over a ``BPF_MAP_TYPE_PERF_EVENT_ARRAY``.

One ring per CPU, ``page_count`` pages each (a power of two)::

    def sample(cpu: int, data: bytes) -> None: ...
    def lost(cpu: int, count: int) -> None: ...
    with PerfBuffer(obj.maps["events"], sample, lost, page_count=64) as pb:
        pb.poll(100)

Lost events are never silent: :attr:`PerfBuffer.lost` counts them (in total and per CPU), the
``lost`` callback is called, and without a ``lost`` callback an :class:`EventsLostWarning` is
emitted.

libbpf's perf sample callback returns nothing, so libbpf cannot be told to stop.  When a
``sample`` callback raises, the exception is re-raised from :meth:`PerfBuffer.poll` once libbpf
returns; the samples libbpf read after it are kept, in order, and handed to the callback first
thing at the next :meth:`~PerfBuffer.poll`/:meth:`~PerfBuffer.consume` — none are dropped.

Without a ``sample`` callback the samples are queued as :class:`PerfSample` for
:meth:`PerfBuffer.events` and ``async for``.  Without a decoder too, the queue keeps each ring's
copy whole and makes the samples as the consumer takes them (a ``bytes`` and a
:class:`PerfSample` per sample, made and freed while their memory is hot).

On x86 the rings are read from Python (``_perf_rings``: one copy per ring, the samples cut in C)
rather than through a ctypes callback per sample; libbpf still owns them, and is the consumer
elsewhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as _errno
import os
import select
import struct
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from itertools import repeat
from operator import itemgetter, length_hint
from typing import Any, NamedTuple

from .. import _args, _ffi
from .._handle import Handle
from ..enums import MapType
from ..errors import BpfError, NotSupportedError, StateError, error_from_errno
from ..map import Map
from ._common import (
    Decoder,
    QueuedEvents,
    direct_decoder,
    poll_result,
    poll_timeout,
    ring_fd,
)
from ._guard import PollGuard
from ._perf_rings import (
    PerfBatch,
    PerfRing,
    PerfRings,
    Run,
    batch,
    cut,
    records,
    rest,
    ring_cpus,
    sample_layout,
    samples,
    typed_layout,
)

SampleCallback = Callable[[int, Any], None]
LostCallback = Callable[[int, int], None]

_sample_fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char),
                              ctypes.c_uint32)


class EventsLostWarning(RuntimeWarning):
    """A perf buffer lost events and no ``lost`` callback was given."""


class PerfSample(NamedTuple):
    """A sample in queue mode: the CPU whose buffer held it, and its data."""

    cpu: int
    data: Any


class _State:
    __slots__ = ("error", "backlog", "lost", "lost_by_cpu", "queue")

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.backlog: deque[tuple[int, Any]] = deque()  # samples read after an exception
        self.lost = 0
        self.lost_by_cpu: dict[int, int] = {}
        # queue mode: chunks of samples in order, each an iterator of PerfSample (see
        # QueuedEvents); a chunk leaves the queue once its last sample was taken
        self.queue: deque[Iterator[PerfSample]] = deque()


_new_tuple = tuple.__new__  # PerfSample(cpu, data) without the Python-level __new__


def _sample_trampoline(callback: SampleCallback | None, decode: Decoder | None,
                       state: _State) -> Any:
    """The C callback libbpf's own consumer calls (where the rings cannot be read from Python,
    see ``_perf_rings``); ``data`` is a ``char *``, so ``data[:size]`` makes the ``bytes``."""
    backlog = state.backlog.append
    if callback is None:
        append = state.queue.append

        def queue(ctx: Any, cpu: int, data: Any, size: int) -> None:
            if state.error is not None:
                backlog((cpu, data[:size]))
                return
            try:
                value = data[:size] if decode is None else decode(data[:size])
                append(iter((_new_tuple(PerfSample, (cpu, value)),)))
            except BaseException as exc:  # noqa: BLE001 - never into C
                state.error = exc
        return _sample_fn(queue)

    if decode is None:
        def call(ctx: Any, cpu: int, data: Any, size: int) -> None:
            if state.error is not None:
                backlog((cpu, data[:size]))
                return
            try:
                callback(cpu, data[:size])
            except BaseException as exc:  # noqa: BLE001 - nothing may cross back into C
                state.error = exc
        return _sample_fn(call)

    def call_decoded(ctx: Any, cpu: int, data: Any, size: int) -> None:
        if state.error is not None:
            backlog((cpu, data[:size]))
            return
        try:
            callback(cpu, decode(data[:size]))
        except BaseException as exc:  # noqa: BLE001 - nothing may cross back into C
            state.error = exc
    return _sample_fn(call_decoded)


def _count_lost(state: _State, callback: LostCallback | None, cpu: int, count: int) -> None:
    """Account ``count`` samples lost on ``cpu`` and tell the ``lost`` callback."""
    state.lost += count
    state.lost_by_cpu[cpu] = state.lost_by_cpu.get(cpu, 0) + count
    if callback is None or state.error is not None:
        return
    try:
        callback(cpu, count)
    except BaseException as exc:  # noqa: BLE001 - never into C
        state.error = exc


def _lost_trampoline(callback: LostCallback | None, state: _State) -> Any:
    from .._ffi.types import perf_buffer_lost_fn

    def lost(ctx: Any, cpu: int, count: int) -> None:
        _count_lost(state, callback, cpu, count)
    return perf_buffer_lost_fn(lost)


def _python_rings(ptr: Any, page_count: int) -> tuple[PerfRings, select.epoll] | None:
    """The rings of libbpf's perf buffer ``ptr`` mapped for reading from Python, and an epoll
    object on libbpf's epoll instance to wait with; None where only libbpf can read them."""
    lib = _ffi.lib()
    count = int(lib.perf_buffer__buffer_cnt(ptr))
    cpus = ring_cpus(count, int(lib.libbpf_num_possible_cpus()))
    if cpus is None:
        return None
    fds = [int(lib.perf_buffer__buffer_fd(ptr, i)) for i in range(count)]
    try:
        rings = PerfRings(fds, cpus, page_count)
    except (OSError, NotSupportedError):
        return None
    try:
        waiter = select.epoll.fromfd(os.dup(int(lib.perf_buffer__epoll_fd(ptr))))
    except OSError:
        rings.close()
        return None
    return rings, waiter


def _free(ptr: Any, keep: list[Any], guard: PollGuard) -> None:
    lib = _ffi.lib()
    for held in keep:  # this process's own mappings of the rings and its epoll fd
        if isinstance(held, (PerfRings, select.epoll)):
            held.close()
    if guard.inherited:
        # A child of fork() closing what it inherited: perf_buffer__free would delete the
        # map's entries and disable the perf events, which are the parent's too.  Close only
        # this process's fds; its copies of the mappings go when it exits or execs.
        fds = [lib.perf_buffer__epoll_fd(ptr)]
        fds += [lib.perf_buffer__buffer_fd(ptr, i) for i in range(lib.perf_buffer__buffer_cnt(ptr))]
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
    else:
        lib.perf_buffer__free(ptr)
    keep.clear()


_first = itemgetter(0)

_HAND = """
def hand(source, callback, cpu):
    for {t} in source:
        callback(cpu, {value})
"""


def _flat_of(decode: Decoder | None) -> Any:
    """The compiled flat codec behind ``decode`` (a :class:`~pylibbpf.typed.Codec` of a flat
    type), or None: its samples can then be unpacked a run at a time."""
    from ..elf.codec import Codec

    return decode.flat if isinstance(decode, Codec) else None


class PerfBuffer(Handle, QueuedEvents[PerfSample]):
    """Per-CPU perf rings of a ``PERF_EVENT_ARRAY`` map (libbpf's ``perf_buffer``).

    ``sample(cpu, data)`` is called per sample (``data`` is ``bytes``, or what ``decode``
    returns); ``lost(cpu, count)`` when the kernel dropped samples because a ring was full.
    ``page_count`` is the size of each CPU's ring in pages (a power of two).
    """

    _what = "perf buffer"

    def __init__(self, events: Map | int, sample: SampleCallback | None = None,
                 lost: LostCallback | None = None, *, page_count: int = 64,
                 decode: Decoder | None = None) -> None:
        super().__init__()
        page_count = _args.non_negative_int(page_count, "page_count")
        if page_count <= 0 or page_count & (page_count - 1):
            raise ValueError(f"page_count must be a power of two, not {page_count}")
        if sample is not None and not callable(sample):
            raise TypeError("sample must be callable")
        fd, what, _size = ring_fd(events, MapType.PERF_EVENT_ARRAY)
        self._state = _State()
        self._queue_mode = sample is None
        self._sample = sample
        self._flat = _flat_of(decode)
        # typed callbacks: a loop over unpacked tuples making each value inline
        self._hand: Callable[..., None] | None = None if self._flat is None or sample is None \
            else self._flat.inline(_HAND, "hand")
        self._run_layouts: dict[tuple[int, int], struct.Struct | None] = {}
        self._decode = decode = direct_decoder(decode)
        self._lost_cb = lost
        self._warned = 0
        self._what_map = what
        self.page_count = page_count
        from .._ffi.types import perf_buffer_sample_fn

        sample_tramp = _sample_trampoline(sample, decode, self._state)
        lost_tramp = _lost_trampoline(lost, self._state)
        try:
            ptr = _ffi.lib().perf_buffer__new(fd, page_count,
                                              ctypes.cast(sample_tramp, perf_buffer_sample_fn),
                                              lost_tramp, None, None)
        except BpfError as exc:
            raise error_from_errno(exc.errno or _errno.EIO,
                                   f"failed to create a perf buffer on {what} "
                                   f"({page_count} pages per CPU)", ("CAP_PERFMON",)) from None
        self._ptr = ptr
        keep: list[Any] = [sample_tramp, lost_tramp]
        python = _python_rings(ptr, page_count)
        self._rings: list[PerfRing] | None = None
        if python is not None:
            self._rings, self._waiter = python[0].rings, python[1]
            keep += python
        guard = self._guard = PollGuard(self._what)
        self._own(lambda: _free(ptr, keep, guard), f"perf buffer on {what}",
                  on_gc=lambda: guard.close(lambda: _free(ptr, keep, guard)))

    @property
    def _p(self) -> Any:
        self._check()
        return self._ptr

    # ----------------------------------------------------------------------------- state

    @property
    def lost(self) -> int:
        """Samples the kernel reported lost since the buffer was created."""
        return self._state.lost

    @property
    def lost_by_cpu(self) -> dict[int, int]:
        """Lost samples per CPU."""
        return dict(self._state.lost_by_cpu)

    @property
    def buffer_count(self) -> int:
        """Number of per-CPU rings (``perf_buffer__buffer_cnt``)."""
        return int(_ffi.lib().perf_buffer__buffer_cnt(self._p))

    def buffer_fd(self, index: int) -> int:
        """The perf event fd of ring ``index`` (``perf_buffer__buffer_fd``)."""
        index = self._check_index(index)
        fd = int(_ffi.lib().perf_buffer__buffer_fd(self._p, index))
        if fd < 0:
            raise error_from_errno(-fd, f"perf_buffer__buffer_fd({index}) failed")
        return fd

    @property
    def epoll_fd(self) -> int:
        """libbpf's epoll fd: readable when a ring has data."""
        return int(_ffi.lib().perf_buffer__epoll_fd(self._p))

    def fileno(self) -> int:
        """:attr:`epoll_fd`, for ``select``/``selectors``."""
        return self.epoll_fd

    def _check_index(self, index: int) -> int:
        index = _args.integer(index, "index")
        count = self.buffer_count
        if not 0 <= index < count:
            raise ValueError(f"ring {index} is out of range: this perf buffer has {count} "
                             f"rings, numbered from 0")
        return index

    # ----------------------------------------------------------------------------- consuming

    def _drain_backlog(self) -> int:
        state = self._state
        done = 0
        made: list[PerfSample] = []
        try:
            while state.backlog:
                cpu, raw = state.backlog.popleft()
                value = raw if self._decode is None else self._decode(raw)
                if self._queue_mode:
                    made.append(_new_tuple(PerfSample, (cpu, value)))
                else:
                    assert self._sample is not None
                    self._sample(cpu, value)  # raising leaves the rest of the backlog queued
                done += 1
        finally:
            if made:
                state.queue.append(iter(made))
        return done

    def _finish(self, rc: int, what: str, before: int) -> int:
        state = self._state
        error = state.error
        if error is not None:
            state.error = None
            raise error
        self._report_lost(before)
        return poll_result(rc, what)

    def _report_lost(self, before: int, stacklevel: int = 4) -> None:
        """Warn of the samples lost since ``before`` when no ``lost`` callback was given; the
        warning names the line of the caller at ``stacklevel`` (from here: 4 is the caller of
        a method that called :meth:`_finish`)."""
        if self._lost_cb is None and self._state.lost > before:
            warnings.warn(f"perf buffer on {self._what_map} lost "
                          f"{self._state.lost - before} samples "
                          f"({self._state.lost} in total): the rings are too small or read "
                          "too slowly", EventsLostWarning, stacklevel=stacklevel)

    def _run(self, chunk: bytes, run: Run) -> tuple[Iterator[Any], Iterator[Any]]:
        """(source, values) of one run of samples: ``values`` is what the callback or the
        queue gets per sample (the ``bytes``, or the decoded value), ``source`` the unpack
        iterator under it, whose length hint is the number of samples not yet taken."""
        pos, count, size, raw = run
        data = records(chunk, pos, count * size)
        flat = self._flat
        if flat is not None:
            key = (size, raw)
            if key in self._run_layouts:
                layout = self._run_layouts[key]
            else:
                layout = self._run_layouts[key] = typed_layout(flat.struct, size, raw)
            if layout is not None:  # one iter_unpack makes every record's tuple
                source = layout.iter_unpack(data)
                return source, map(flat.build, source)
        source = sample_layout(size, raw).iter_unpack(data)
        values = map(_first, source)
        decode = self._decode
        return source, (values if decode is None else map(decode, values))

    def _take(self, ring: PerfRing) -> tuple[bytes, list[Run]]:
        """Copy out one ring (giving its space back) and cut it into runs of samples, counting
        the lost samples it reports (the ``lost`` callback may set the state's error)."""
        chunk = ring.take()
        if not chunk:
            return chunk, []
        runs, lost = cut(chunk)
        if lost:
            _count_lost(self._state, self._lost_cb, ring.cpu, lost)
        return chunk, runs

    def _keep(self, chunk: bytes, runs: list[Run], cpu: int) -> None:
        """Keep the samples of ``runs`` in the backlog, in order, for the next poll."""
        self._state.backlog.extend(zip(repeat(cpu), samples(chunk, runs)))

    def _read(self, ring: PerfRing) -> bool:
        """Hand one ring's samples to the callback or the queue, read from Python (see
        ``_perf_rings``); True if the ring had any record.  Runs under the guard."""
        chunk, runs = self._take(ring)
        if not chunk:
            return False
        if not runs:
            return True
        state = self._state
        cpu = ring.cpu
        if state.error is not None:  # kept, in order, for the next poll (see the docstring)
            self._keep(chunk, runs, cpu)
            return True
        if self._queue_mode and self._decode is None:
            # the samples are made as the consumer takes them (see QueuedEvents)
            state.queue.append(map(_new_tuple, repeat(PerfSample),
                                   zip(repeat(cpu), samples(chunk, runs))))
            return True
        made: list[PerfSample] = []
        index = 0
        source: Iterator[Any] = iter(())
        try:
            if self._queue_mode:
                append = made.append
                for index in range(len(runs)):
                    source, values = self._run(chunk, runs[index])
                    for value in values:
                        append(_new_tuple(PerfSample, (cpu, value)))
            else:
                callback = self._sample
                assert callback is not None
                for index in range(len(runs)):
                    source, values = self._run(chunk, runs[index])
                    if self._hand is not None and self._run_layouts.get(runs[index][2:]):
                        self._hand(source, callback, cpu)  # a typed run: values made inline
                        continue
                    for value in values:
                        callback(cpu, value)
        except BaseException as exc:  # noqa: BLE001 - re-raised by poll, after the others
            # the sample that raised (in the decoder or the callback) is dropped; the ones
            # after it are kept for the next poll
            state.error = exc
            state.backlog.extend(zip(repeat(cpu), rest(chunk, runs, index,
                                                       length_hint(source))))
        finally:
            if made:
                state.queue.append(iter(made))
        return True

    def _read_all(self) -> int:
        assert self._rings is not None
        return sum(self._read(ring) for ring in self._rings)

    def _poll_slice(self, slice_ms: int) -> int:
        """Wait up to ``slice_ms`` on libbpf's epoll instance, then read every ring from Python
        (what ``perf_buffer__poll`` does in C); the number of rings that woke it."""
        ready = len(self._waiter.poll(slice_ms / 1000))
        if ready:
            self._read_all()
        return ready

    def poll(self, timeout_ms: int = -1) -> int:
        """Wait up to ``timeout_ms`` (-1: forever) for samples and hand them to the callback
        (``perf_buffer__poll``).  Returns the number of rings that had data.  Raises
        :class:`~pylibbpf.StateError` (EBUSY) from inside a callback of this buffer."""
        timeout_ms = poll_timeout(timeout_ms)
        ptr = self._p
        if self._guard.call(self._drain_backlog):
            timeout_ms = 0
        before = self._state.lost
        if self._rings is not None:
            return self._finish(self._guard.poll(self._poll_slice, timeout_ms),
                                "perf_buffer__poll", before)
        poll = _ffi.lib().perf_buffer__poll
        return self._finish(self._guard.poll(lambda ms: int(poll(ptr, ms)), timeout_ms),
                            "perf_buffer__poll", before)

    def consume(self) -> int:
        """Read every ring without waiting (``perf_buffer__consume``); returns 0."""
        ptr = self._p
        self._guard.call(self._drain_backlog)
        before = self._state.lost
        if self._rings is not None:
            self._guard.call(self._read_all)
            return self._finish(0, "perf_buffer__consume", before)
        consume = _ffi.lib().perf_buffer__consume
        return self._finish(self._guard.call(lambda: int(consume(ptr))), "perf_buffer__consume",
                            before)

    def consume_buffer(self, index: int) -> int:
        """Read ring ``index`` only (``perf_buffer__consume_buffer``; ValueError when out of
        range); returns 0."""
        index = self._check_index(index)
        ptr = self._p
        self._guard.call(self._drain_backlog)
        before = self._state.lost
        if self._rings is not None:
            ring = self._rings[index]
            self._guard.call(lambda: self._read(ring))
            return self._finish(0, "perf_buffer__consume_buffer", before)
        consume = _ffi.lib().perf_buffer__consume_buffer
        return self._finish(self._guard.call(lambda: int(consume(ptr, index))),
                            "perf_buffer__consume_buffer", before)

    def read_batch(self, index: int = 0) -> PerfBatch:
        """Read every sample in ring ``index`` (ValueError when out of range; ring ``i`` holds
        the samples of CPU ``batch.cpu``) in one Python call, with no callback per sample: a
        :class:`~pylibbpf.events._perf_rings.PerfBatch` (``batch[i]`` is sample ``i``'s
        ``bytes``, ``batch.to_numpy(dtype)`` all of them as one array).

        Lost samples are counted as :meth:`poll` counts them (:attr:`lost`, the ``lost``
        callback, or an :class:`EventsLostWarning`); an exception of the ``lost`` callback is
        raised from here, and the samples read with it are kept for the next :meth:`poll` or
        :meth:`consume`.  Samples kept that way (also after a ``sample`` callback raised) come
        before anything still in the rings: while they wait this raises
        :class:`~pylibbpf.StateError` (EAGAIN), so that no sample is handed out of order.
        Raises :class:`~pylibbpf.StateError` (EBUSY) inside a callback of this buffer, and
        :class:`~pylibbpf.NotSupportedError` where the rings are read by libbpf's consumer
        (off x86, or rings Python could not map): use a callback there.

        :attr:`epoll_fd` becomes readable when any ring has samples, without saying which:
        after waiting on it, read every ring (``for i in range(pb.buffer_count)``), as
        :meth:`poll` does.
        """
        index = self._check_index(index)
        rings = self._rings
        if rings is None:
            raise NotSupportedError("read_batch needs the perf rings read "
                                    "from Python (x86, rings this process could map); here "
                                    "libbpf's consumer reads them: give the buffer a callback")
        ring = rings[index]
        before = self._state.lost
        got = self._guard.call(lambda: self._read_batch(ring))
        self._report_lost(before, stacklevel=3)
        return got

    def _read_batch(self, ring: PerfRing) -> PerfBatch:
        state = self._state
        if state.backlog:
            raise StateError(_errno.EAGAIN, f"{len(state.backlog)} samples read before wait "
                             f"to be handed out first: poll() or consume() this buffer, then "
                             f"read_batch() again")
        chunk, runs = self._take(ring)
        error = state.error
        if error is not None:  # the lost callback raised: keep the samples, in order
            state.error = None
            self._keep(chunk, runs, ring.cpu)
            raise error
        return batch(chunk, runs, ring.cpu)

    def close(self) -> None:
        """Free libbpf's perf buffer.  Safe from any thread, and from a callback (see
        :meth:`RingBuffer.close <pylibbpf.RingBuffer.close>`)."""
        if not self._closed:
            self._guard.close(lambda: Handle.close(self))

    # ----------------------------------------------------------------------------- queue mode

    def _require_queue(self) -> deque[Iterator[PerfSample]]:
        if not self._queue_mode:
            raise StateError(_errno.EINVAL, "this perf buffer hands samples to a callback; "
                             "create it without one to iterate over its samples")
        return self._state.queue

    def __repr__(self) -> str:
        if self.closed:
            return "<PerfBuffer closed>"
        return (f"<PerfBuffer {self._what_map}: {self.buffer_count} rings of "
                f"{self.page_count} pages, {self.lost} lost>")

