"""asyncio support: ``async for`` over ring and perf buffers, driven by their epoll fd.

::

    rb = RingBuffer(obj.maps["events"])          # no callback: queue mode
    async for data in rb:                        # bytes per record
        ...
    pb = PerfBuffer(obj.maps["perf"])
    async for cpu, data in pb:                   # PerfSample per sample
        ...
    async for batch in pb.batches():             # lists of up to BATCH_LIMIT: one await each
        ...

The buffer's epoll fd is registered with the running loop (``loop.add_reader``) while the
iteration waits; no thread and no busy polling.  Records already in the ring are consumed without
waiting; when the queue is empty the coroutine sleeps until the kernel wakes the epoll fd.
Cancelling the task (or breaking out of the loop) unregisters the fd; records not yet yielded
stay queued in the buffer for the next iteration.

Buffers that use callbacks can be driven with :func:`poll`: ``await aio.poll(rb)`` waits until
data is there and runs the callbacks.

The buffer's rules hold here too (``docs/events.md``): while a zero-copy batch of the buffer is
held, iterating raises :class:`~pylibbpf.StateError`; a buffer closed while a coroutine waits on
it (by another task or thread) ends the wait with :class:`~pylibbpf.ClosedError` within
:data:`CLOSED_CHECK_S`, instead of waiting forever on an epoll fd that no longer exists.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing
from itertools import islice
from typing import Any, Protocol

from .. import _args
from ..errors import ClosedError

#: how often a coroutine waiting for data looks whether its buffer was closed meanwhile
CLOSED_CHECK_S = 0.1

#: the most records :func:`batches` puts in one list unless told otherwise
BATCH_LIMIT = 256


class Buffer(Protocol):
    """What :func:`poll` and :func:`iterate` need: a RingBuffer or a PerfBuffer."""

    _what: str

    @property
    def epoll_fd(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    def consume(self) -> int: ...

    def _require_queue(self) -> deque[Iterator[Any]]: ...


__all__ = ["BATCH_LIMIT", "batches", "iterate", "poll", "wait_readable"]


async def wait_readable(fd: int, timeout: float | None = None) -> bool:
    """Wait (without blocking the loop) until ``fd`` is readable; False on timeout."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        if timeout is None:
            await ready
            return True
        try:
            await asyncio.wait_for(ready, timeout)
        except asyncio.TimeoutError:
            return False
        return True
    finally:
        loop.remove_reader(fd)


async def _wait(buffer: Buffer, ready: asyncio.Event, timeout: float | None) -> bool:
    """Wait for ``ready`` up to ``timeout`` seconds (None: forever); False on timeout,
    ClosedError as soon as the buffer is closed."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while True:
        if buffer.closed:
            raise ClosedError(buffer._what)
        step = CLOSED_CHECK_S
        if deadline is not None:
            step = min(step, deadline - loop.time())
            if step <= 0:
                return False
        try:
            await asyncio.wait_for(ready.wait(), step)
            return True
        except asyncio.TimeoutError:
            continue


async def poll(buffer: Buffer, timeout: float | None = None) -> int:
    """Wait up to ``timeout`` seconds (``None``: forever) for data, then consume it (callbacks
    run, or records are queued); returns what ``consume()`` returns (0 on timeout)."""
    done = buffer.consume()
    if done:
        return done
    loop = asyncio.get_running_loop()
    fd = buffer.epoll_fd
    ready = asyncio.Event()
    loop.add_reader(fd, ready.set)
    try:
        if not await _wait(buffer, ready, timeout):
            return 0
    finally:
        loop.remove_reader(fd)
    return buffer.consume()


async def iterate(buffer: Buffer) -> AsyncIterator[Any]:
    """Yield the queued records of a queue-mode buffer as they arrive (``async for``)."""
    queue = buffer._require_queue()
    async with aclosing(_wakeups(buffer, queue)) as wakeups:  # its reader goes with us
        async for _ in wakeups:
            # the whole batch of one wake-up, with no wait in between; as
            # _common.take_chunks: a chunk leaves the queue once its last record is taken, so a
            # task cancelled (or a loop left) mid-chunk leaves the rest for the next reader
            while queue:
                head = queue[0]
                for record in head:
                    yield record
                if queue and queue[0] is head:
                    queue.popleft()


def batches(buffer: Buffer, limit: int | None = None) -> AsyncIterator[list[Any]]:
    """Yield the records of a queue-mode buffer as lists of at most ``limit`` records (``None``:
    :data:`BATCH_LIMIT`), never an empty one: ``async for batch in buffer.batches(): ...``.

    One step of the ``async for`` per list instead of per record: with many small records this
    is the cheaper loop (a step of an async generator costs about as much as a bare callback).
    A wake-up that brought more than ``limit`` records gives several lists in a row, with no
    wait in between; the rings are read again only once the lists of what was read are handed
    out, so a slow consumer leaves the records in the rings (where the kernel counts what it
    cannot keep) rather than piling them up in this process.  The records of a list are the
    caller's once it is yielded; records not yet in a list stay queued when the loop is left or
    the task is cancelled.  Raises :class:`ValueError` for a ``limit`` below 1 (at the call)."""
    count = batch_limit(limit)
    queue = buffer._require_queue()
    return _batches(buffer, queue, count)


def batch_limit(limit: int | None) -> int:
    """``limit`` checked (an int of at least 1), or :data:`BATCH_LIMIT` for ``None``."""
    if limit is None:
        return BATCH_LIMIT
    limit = _args.integer(limit, "limit")
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    return min(limit, sys.maxsize)  # more than any queue holds; islice takes no more


async def _batches(buffer: Buffer, queue: deque[Iterator[Any]], limit: int
                   ) -> AsyncIterator[list[Any]]:
    async with aclosing(_wakeups(buffer, queue)) as wakeups:
        async for _ in wakeups:
            # the wake-up's records, ``limit`` at a time; _wakeups reads the rings again only
            # when it is resumed, after the queue was emptied here
            while queue:
                batch = take(queue, limit)
                if batch:  # (a chunk left empty by a reader that stopped at its end)
                    yield batch


def take(queue: deque[Iterator[Any]], limit: int) -> list[Any]:
    """Up to ``limit`` records from the head of ``queue``, across chunks; a chunk leaves the
    queue once it is found empty (as :func:`~pylibbpf.events._common.take_chunks`)."""
    batch: list[Any] = []
    while queue:
        head = queue[0]
        want = limit - len(batch)
        batch.extend(islice(head, want))
        if len(batch) == limit:
            return batch  # the head may hold more: it stays first
        if queue and queue[0] is head:  # ran dry (not taken meanwhile by another reader)
            queue.popleft()
    return batch


async def _wakeups(buffer: Buffer, queue: deque[Any]) -> AsyncGenerator[None, None]:
    """Yield whenever ``queue`` holds records: at once if it already does, then after each
    wake-up of the buffer's epoll fd that brought records (the fd is the loop's reader for the
    whole iteration).  The caller empties ``queue`` before asking for the next step."""
    loop = asyncio.get_running_loop()
    fd = buffer.epoll_fd
    readable = asyncio.Event()
    loop.add_reader(fd, readable.set)
    try:
        while True:
            if queue:
                yield None
            readable.clear()
            buffer.consume()  # after clear(): data that arrives from here on sets the event
            while not queue:
                # Also wakes every CLOSED_CHECK_S to look for itself: the fd has one reader per
                # loop, and an abandoned iteration of the same buffer (a cancelled task whose
                # generator is finalized later) removes it when it is closed.
                await _wait(buffer, readable, CLOSED_CHECK_S)
                readable.clear()
                buffer.consume()
    finally:
        loop.remove_reader(fd)
