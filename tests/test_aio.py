"""asyncio: ``async for`` over ring and perf buffers, driven by the epoll fd."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from pylibbpf import ClosedError, Object, PerfBuffer, PerfSample, RingBuffer, StateError, aio
from tests.support.ring_producer import NO_THREAD, emit, seq_of, traced_getpid

pytestmark = pytest.mark.kernel


def test_async_for_gets_every_event_in_order(producer: Object) -> None:
    async def main() -> list[int]:
        got: list[int] = []
        with RingBuffer(producer.maps["rb"], decode=seq_of) as rb:
            loop = asyncio.get_running_loop()
            # producer runs from the loop while the consumer waits
            for delay in (0.01, 0.02, 0.03):
                loop.call_later(delay, emit, producer, 400)
            async for seq in rb:
                got.append(seq)
                if len(got) == 1200:
                    break
        return got

    assert asyncio.run(main()) == list(range(1200))
    assert producer.bss.get_int("dropped") == 0


def test_waiting_does_not_spin_and_cancels_cleanly(producer: Object) -> None:
    async def consume(rb: RingBuffer, out: list[int]) -> None:
        async for seq in rb:
            out.append(seq)

    async def main() -> tuple[float, list[int], int]:
        out: list[int] = []
        with RingBuffer(producer.maps["rb"], decode=seq_of) as rb:
            task = asyncio.create_task(consume(rb, out))
            cpu0 = time.process_time()
            await asyncio.sleep(0.4)  # nothing produced: the task must sleep, not poll
            cpu = time.process_time() - cpu0
            emit(producer, 5)
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # the reader is gone from the loop: events now stay in the ring
            emit(producer, 3)
            await asyncio.sleep(0.05)
            left = rb.consume()
        return cpu, out, left

    cpu, out, left = asyncio.run(main())
    assert cpu < 0.1
    assert out == list(range(5))
    assert left == 3


def test_aio_poll_with_callbacks(producer: Object) -> None:
    async def main() -> tuple[int, int, list[int]]:
        got: list[int] = []
        with RingBuffer(producer.maps["rb"], lambda d: got.append(seq_of(d))) as rb:
            idle = await aio.poll(rb, timeout=0.05)
            asyncio.get_running_loop().call_later(0.02, emit, producer, 7)
            n = await aio.poll(rb, timeout=2)
        return idle, n, got

    idle, n, got = asyncio.run(main())
    assert idle == 0
    assert n == 7 and got == list(range(7))


def _getpid_from_a_thread(obj: Object, n: int) -> None:
    """``n`` getpid() calls from a thread of our own, the one the program counts (asyncio itself
    calls getpid())."""
    def run() -> None:
        obj.bss["target_tid"] = threading.get_native_id()
        for _ in range(n):
            os.getpid()
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


def test_async_for_perf_buffer() -> None:
    with traced_getpid(tid=NO_THREAD) as (obj, _link):  # none until the producer thread runs
        async def main() -> list[PerfSample]:
            got: list[PerfSample] = []
            with PerfBuffer(obj.maps["samples"], None, lambda cpu, n: None,
                            decode=seq_of) as pb:
                asyncio.get_running_loop().call_later(0.01, _getpid_from_a_thread, obj, 250)
                async for sample in pb:
                    got.append(sample)
                    if len(got) == 250:
                        break
            return got

        assert asyncio.run(main()) == [PerfSample(0, n) for n in range(250)]


def test_closing_the_buffer_ends_a_waiting_iteration(producer: Object) -> None:
    """A buffer closed by another task while ``async for`` (or ``aio.poll``) waits on its epoll
    fd: ClosedError soon after, not a wait forever on an fd that no longer exists."""
    async def main() -> tuple[list[int], float, float]:
        got: list[int] = []
        rb = RingBuffer(producer.maps["rb"], decode=seq_of)
        emit(producer, 3)

        async def consume() -> None:
            async for seq in rb:
                got.append(seq)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        rb.close()
        with pytest.raises(ClosedError):
            await asyncio.wait_for(task, 30)
        iteration = loop.time() - started

        with RingBuffer(producer.maps["rb"], lambda d: None) as other:
            waiting = asyncio.create_task(aio.poll(other))
            await asyncio.sleep(0.2)
            started = loop.time()
            other.close()
            with pytest.raises(ClosedError):
                await asyncio.wait_for(waiting, 30)
        return got, iteration, loop.time() - started

    got, iteration, polling = asyncio.run(main())
    assert got == [0, 1, 2]
    assert iteration < 10 and polling < 10  # one check interval (0.1 s) on an idle machine


def test_async_for_refuses_while_a_zero_copy_batch_is_held(producer: Object) -> None:
    async def main() -> list[int]:
        with RingBuffer(producer.maps["rb"], decode=seq_of) as rb:
            emit(producer, 2)
            batch = rb.read_batch(copy=False)
            emit(producer, 2)
            with pytest.raises(StateError, match="not released"):
                async for _seq in rb:
                    pass
            with pytest.raises(StateError, match="not released"):
                await aio.poll(rb, timeout=1)
            got = [seq_of(bytes(d)) for d in batch]
            batch.release()
            async for seq in rb:
                got.append(seq)
                if len(got) == 4:
                    break
        return got

    assert asyncio.run(main()) == [0, 1, 2, 3]


def test_batches_hand_out_every_event_in_order_one_list_per_wakeup(producer: Object) -> None:
    async def main() -> tuple[list[list[int]], int]:
        lists: list[list[int]] = []
        with RingBuffer(producer.maps["rb"], decode=seq_of) as rb:
            loop = asyncio.get_running_loop()
            for delay in (0.01, 0.05, 0.09):
                loop.call_later(delay, emit, producer, 300)
            async for batch in rb.batches():
                lists.append(batch)
                if sum(map(len, lists)) == 900:
                    break
            emit(producer, 7)  # after the loop: stays in the ring for the next reader
            await asyncio.sleep(0.02)
            return lists, rb.consume()

    lists, left = asyncio.run(main())
    assert [seq for batch in lists for seq in batch] == list(range(900))
    assert all(lists) and len(lists) <= 900 // 2  # lists, not one step per record
    assert left == 7
    assert producer.bss.get_int("dropped") == 0


def test_batches_are_at_most_limit_long_and_the_rings_wait_for_the_caller(producer: Object
                                                                           ) -> None:
    """Lists of at most ``limit`` records, the default :data:`aio.BATCH_LIMIT`; while the lists
    of one read are handed out the rings are not read again (a slow consumer leaves records in
    the ring, not in this process), and records not yet in a list stay queued for the next
    loop."""
    async def main() -> tuple[list[int], list[int], list[int], int, int]:
        with RingBuffer(producer.maps["rb"], decode=seq_of) as rb:
            emit(producer, 300)
            sizes: list[int] = []
            got: list[int] = []
            async for batch in rb.batches(100):
                sizes.append(len(batch))
                got += batch
                if len(sizes) == 1:
                    emit(producer, 50)  # arrives while the first read is handed out
                if len(sizes) == 2:
                    break
            queued = rb.pending  # the rest of the first read, not the 50 in the ring
            default: list[int] = []
            emit(producer, 400)
            async for batch in rb.batches():
                default.append(len(batch))
                got += batch
                if len(got) == 750:
                    break
            return sizes, default, got, queued, rb.consume()

    sizes, default, got, queued, left = asyncio.run(main())
    assert sizes == [100, 100] and queued == 100
    # the 100 still queued first, then one read of the ring's 450
    assert default[0] == 100 and default[1:] == [aio.BATCH_LIMIT, 450 - aio.BATCH_LIMIT]
    assert got == list(range(750)) and left == 0
    assert producer.bss.get_int("dropped") == 0


@pytest.mark.parametrize(("limit", "error"), [(0, ValueError), (-3, ValueError),
                                              (True, TypeError), ("8", TypeError),
                                              (2.0, TypeError)])
def test_batches_refuse_a_bad_limit_at_the_call(producer: Object, limit: object,
                                                error: type[Exception]) -> None:
    with RingBuffer(producer.maps["rb"]) as rb:
        with pytest.raises(error, match="limit"):
            rb.batches(limit)  # type: ignore[arg-type]
        with pytest.raises(error, match="limit"):
            aio.batches(rb, limit)  # type: ignore[arg-type]


def test_batches_with_a_limit_beyond_any_queue(producer: Object) -> None:
    async def main() -> list[int]:
        with RingBuffer(producer.maps["rb"], decode=seq_of) as rb:
            emit(producer, 10)
            async for batch in rb.batches(1 << 70):  # more than a Py_ssize_t: no limit
                return batch
        return []

    assert asyncio.run(main()) == list(range(10))


def test_batches_of_a_callback_buffer_are_refused_at_the_call(producer: Object) -> None:
    with RingBuffer(producer.maps["rb"], lambda data: None) as rb:
        with pytest.raises(StateError):
            rb.batches()


def test_batches_of_a_perf_buffer_and_its_reader_leaves_with_the_loop() -> None:
    with traced_getpid(tid=NO_THREAD) as (obj, _link):
        async def main() -> tuple[list[PerfSample], bool]:
            got: list[PerfSample] = []
            with PerfBuffer(obj.maps["samples"], None, lambda cpu, n: None,
                            decode=seq_of) as pb:
                loop = asyncio.get_running_loop()
                loop.call_later(0.01, _getpid_from_a_thread, obj, 250)
                batches = pb.batches()
                async for batch in batches:
                    got.extend(batch)
                    if len(got) >= 250:
                        break
                await batches.aclose()  # type: ignore[attr-defined]
                # the epoll fd is no longer one of the loop's readers
                still = loop.remove_reader(pb.epoll_fd)
            return got, still

        got, still = asyncio.run(main())
        assert got == [PerfSample(0, n) for n in range(250)]
        assert still is False


def test_breaking_out_of_async_for_removes_the_reader_at_once(producer: Object) -> None:
    async def main() -> bool:
        with RingBuffer(producer.maps["rb"], decode=seq_of) as rb:
            emit(producer, 3)
            iterator = rb.__aiter__()
            assert await iterator.__anext__() == 0
            await iterator.aclose()  # type: ignore[attr-defined]
            return asyncio.get_running_loop().remove_reader(rb.epoll_fd)

    assert asyncio.run(main()) is False
