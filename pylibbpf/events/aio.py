"""asyncio support: ``async for`` over ring and perf buffers, driven by their epoll fd.

::

    rb = RingBuffer(obj.maps["events"])          # no callback: queue mode
    async for data in rb:                        # bytes per record
        ...
    pb = PerfBuffer(obj.maps["perf"])
    async for cpu, data in pb:                   # PerfSample per sample
        ...
    async for batch in pb.batches():             # a list per wake-up: one await per batch
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
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing
from itertools import chain
from typing import Any, Protocol

from ..errors import ClosedError

#: how often a coroutine waiting for data looks whether its buffer was closed meanwhile
CLOSED_CHECK_S = 0.1


class Buffer(Protocol):
    """What :func:`poll` and :func:`iterate` need: a RingBuffer or a PerfBuffer."""

    _what: str

    @property
    def epoll_fd(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    def consume(self) -> int: ...

    def _require_queue(self) -> deque[Iterator[Any]]: ...


__all__ = ["batches", "iterate", "poll", "wait_readable"]


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


async def batches(buffer: Buffer) -> AsyncIterator[list[Any]]:
    """Yield, per wake-up, a list of every record the buffer's queue holds (never an empty
    list): ``async for batch in buffer.batches(): for record in batch: ...``.

    One step of the ``async for`` per wake-up instead of per record: with many small records
    this is the cheaper loop (a step of an async generator costs about as much as a bare
    callback).  The records of a list are the caller's once it is yielded."""
    queue = buffer._require_queue()
    async with aclosing(_wakeups(buffer, queue)) as wakeups:
        async for _ in wakeups:
            chunks = list(queue)
            queue.clear()  # consume() runs only between steps, in this thread: nothing lost
            batch = list(chain.from_iterable(chunks))
            if batch:  # (chunks left empty by a reader that stopped at their end)
                yield batch


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
