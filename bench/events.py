"""The event groups: a ring buffer and a perf buffer, filled by a BPF program before each
measured run (``BPF_PROG_TEST_RUN``), then consumed by one contender: C's callback, a raw
ctypes callback, pylibbpf's bare and typed callbacks, its batch reads into NumPy and its asyncio
iteration, bcc."""

from __future__ import annotations

import asyncio
import ctypes
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from pylibbpf import Object, PerfBuffer, RingBuffer
from pylibbpf.typed import btf_of, decoder, numpy_dtype

from ._core import Group, Timer
from ._env import Env, bcc_module
from ._native import PERF_SAMPLE, RING_SAMPLE

_pc = time.perf_counter
Contenders = dict[str, "Timer | str"]
EVENT_C = "struct event { u64 seq; u64 fill[15]; };"
RING_PAGES = (1 << 25) // 4096   # the ring of bench_rb.bpf.c


class _Counter:
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


def _keep(*objects: Any) -> None:
    """Nothing: an exit callback holding ``objects`` (a C callback libbpf still calls) alive."""


def _producer(env: Env, stack: ExitStack, reuse: dict[str, int] | None = None) -> Object:
    """bench_rb loaded; ``reuse``: its maps adopt these fds (bcc's maps) before load."""
    obj = stack.enter_context(Object.open_file(env.built.objects["bench_rb"]))
    for name, fd in (reuse or {}).items():
        obj.maps[name].reuse_fd(fd)
    obj.load()
    return obj


def _check_dropped(obj: Object) -> None:
    dropped = obj.bss.get_int("dropped")
    if dropped:
        raise RuntimeError(f"the producer dropped {dropped} records: the buffers are too small")


def _drain(events: Any, expect: int, loop: asyncio.AbstractEventLoop,
           stack: ExitStack) -> Callable[[], Any]:
    """A coroutine function taking the next ``expect`` records from one long-lived ``async for``
    iterator over ``events`` (as a program's one ``async for`` loop would)."""
    iterator = events.__aiter__()
    stack.callback(lambda: loop.run_until_complete(iterator.aclose()))

    async def drain() -> None:
        step = iterator.__anext__
        for _ in range(expect):
            await step()
    return drain


def _drain_batches(events: Any, expect: int, loop: asyncio.AbstractEventLoop,
                   stack: ExitStack) -> Callable[[], Any]:
    """As :func:`_drain`, through ``async for batch in events.batches()``: one step per
    list (of up to ``aio.BATCH_LIMIT`` records), each record handed to the loop body as the
    per-record iteration hands it."""
    iterator = events.batches()
    stack.callback(lambda: loop.run_until_complete(iterator.aclose()))

    async def drain() -> None:
        step = iterator.__anext__
        left = expect
        while left > 0:
            for _record in await step():
                left -= 1
        if left:
            raise RuntimeError(f"the batches held {-left} records more than produced")
    return drain


def _numpy_turn(n: int, who: str, prepare: Callable[[], Any],
                read: Callable[[], list[Any]], dtype: Any) -> Timer:
    """A turn: ``prepare()`` (the producer writes ``n`` records), then the seconds per record
    of reading them in batches (``read()``) and making each batch one NumPy array of
    ``dtype``, which must hold all ``n`` records."""
    def timer() -> float:
        prepare()
        t0 = _pc()
        got = sum(len(batch.to_numpy(dtype)) for batch in read())
        seconds = _pc() - t0
        if got != n:
            raise RuntimeError(f"{who} read {got} records of {n} into NumPy")
        return seconds / n
    return timer


def _event_dtype(obj: Object) -> Any:
    """``struct event`` as a NumPy dtype, or why there is none (no NumPy)."""
    try:
        return numpy_dtype(btf_of(obj), "struct event")
    except ImportError as exc:
        return f"skipped: {exc}"


def _per_record(counter: Any, n: int, who: str, prepare: Callable[[], Any],
                consume: Callable[[], Any]) -> Timer:
    """A turn: ``prepare()`` (the producer writes ``n`` records), then the seconds per record
    of one ``consume()``, which must hand every record to the callback that counts them."""
    def timer() -> float:
        prepare()
        counter.n = 0
        t0 = _pc()
        consume()
        seconds = _pc() - t0
        if counter.n != n:
            raise RuntimeError(f"{who} got {counter.n} records of {n}")
        return seconds / n
    return timer


def ring_group(env: Env) -> Group:
    def setup(stack: ExitStack) -> Contenders:
        n = env.sizes.ring
        obj = _producer(env, stack)
        stack.callback(_check_dropped, obj)
        emit = obj.programs["emit"]
        count = n.to_bytes(4, "little")

        def fill(program: Any = emit) -> None:
            program.test_run(ctx_in=count, ctx_size_out=0)

        ring = obj.maps["rb"]
        c, raw = env.c, env.raw
        counter = _Counter()

        def consumed(consume: Callable[[], Any]) -> Timer:
            return _per_record(counter, n, "ring consumer", fill, consume)

        def count_bytes(data: Any) -> None:
            counter.n += 1

        def count_raw(ctx: Any, data: Any, size: int) -> int:
            counter.n += 1
            return 0

        c_ring = c.ring_new(ring.fd)
        stack.callback(raw.lib.ring_buffer__free, c_ring)

        def c_timer() -> float:
            fill()
            return c.ring_consume(c_ring, n) / n

        raw_cb = RING_SAMPLE(count_raw)
        stack.callback(_keep, raw_cb)  # alive until the ring buffer is freed (LIFO)
        raw_ring = raw.lib.ring_buffer__new(ring.fd, ctypes.cast(raw_cb, ctypes.c_void_p),
                                            None, None)
        stack.callback(raw.lib.ring_buffer__free, raw_ring)
        bare = stack.enter_context(RingBuffer(ring, count_bytes))
        typed = stack.enter_context(RingBuffer(ring, count_bytes,
                                               decode=decoder(obj, "struct event")))
        queued = stack.enter_context(RingBuffer(ring))
        loop = asyncio.new_event_loop()
        stack.callback(loop.close)
        drain = _drain(queued, n, loop, stack)
        drain_batches = _drain_batches(queued, n, loop, stack)

        def aio_timer(run: Callable[[], Any] = drain) -> float:
            fill()
            t0 = _pc()
            loop.run_until_complete(run())
            seconds = _pc() - t0
            if queued.pending:
                raise RuntimeError(f"{queued.pending} records left after the asyncio drain")
            return seconds / n

        got: dict[str, Timer | str] = {
            "C": c_timer,
            "raw": consumed(lambda: raw.lib.ring_buffer__consume(raw_ring)),
            "bare": consumed(bare.consume),
            "typed": consumed(typed.consume),
            "asyncio": aio_timer,
            "asyncio batches": lambda: aio_timer(drain_batches),
        }
        dtype = _event_dtype(obj)
        got["numpy batch"] = dtype if isinstance(dtype, str) else _numpy_turn(
            n, "ring read_batch", fill, lambda: [bare.read_batch()], dtype)
        b = bcc_module(env, f"""{EVENT_C}
BPF_RINGBUF_OUTPUT(rb, {RING_PAGES});
BPF_RINGBUF_OUTPUT(rb2, {RING_PAGES});
int emit(void *ctx) {{
    struct event ev = {{}};
    rb.ringbuf_output(&ev, sizeof(ev), 0);
    rb2.ringbuf_output(&ev, sizeof(ev), 0);
    return 0;
}}""")
        if isinstance(b, str):
            got["bcc"] = got["bcc event"] = b
            return got
        stack.callback(b.cleanup)
        # one producer per bcc ring (a bcc ring buffer has one callback per map)
        bcc_fills = {}
        for name, table_name in (("bcc", "rb"), ("bcc event", "rb2")):
            producer = _producer(env, stack, {"rb": b[table_name].map_fd})
            stack.callback(_check_dropped, producer)
            bcc_fills[name] = producer.programs["emit"]

        def count_bcc(ctx: Any, data: Any, size: int) -> None:
            counter.n += 1

        event = b["rb2"].event

        def decode_bcc(ctx: Any, data: Any, size: int) -> None:
            event(data)
            counter.n += 1

        b["rb"].open_ring_buffer(count_bcc)
        b["rb2"].open_ring_buffer(decode_bcc)
        for name in ("bcc", "bcc event"):
            def bcc_timer(program: Any = bcc_fills[name]) -> float:
                fill(program)
                counter.n = 0
                t0 = _pc()
                b.ring_buffer_consume()
                seconds = _pc() - t0
                if counter.n != n:
                    raise RuntimeError(f"bcc ring consumer got {counter.n} records of {n}")
                return seconds / n
            got[name] = bcc_timer
        return got

    return Group("ringbuf", "ring buffer, 128-byte records", "event", setup)


def perf_group(env: Env) -> Group:
    def setup(stack: ExitStack) -> Contenders:
        n = env.sizes.perf
        pages = 1
        while pages * 4096 < n * 144 * 5 // 4:  # a 128-byte sample takes 144 bytes
            pages *= 2
        ncpu = env.ncpu
        obj = _producer(env, stack)
        stack.callback(_check_dropped, obj)
        emit = obj.programs["emit_perf"]
        count = n.to_bytes(8, "little")
        perf = obj.maps["perf"]
        perf_fd = perf.fd
        c, raw = env.c, env.raw
        counter = _Counter()

        def fill(program: Any = emit) -> None:
            program.test_run(ctx_in=count, ctx_size_out=0)

        def point(fds: list[int]) -> None:
            """Make the map's slots (one per CPU) point at one consumer's rings."""
            if len(fds) != ncpu:
                raise RuntimeError(f"{len(fds)} perf rings for {ncpu} possible CPUs: the "
                                   "benchmark needs every CPU online")
            for cpu, fd in enumerate(fds):
                rc = raw.update(perf_fd, cpu.to_bytes(4, "little"), fd.to_bytes(4, "little"), 0)
                raw.check(rc, "perf map update")

        def libbpf_fds(ptr: int) -> list[int]:
            lib = raw.lib
            return [lib.perf_buffer__buffer_fd(ptr, i)
                    for i in range(lib.perf_buffer__buffer_cnt(ptr))]

        def consumed(fds: list[int], consume: Callable[[], Any]) -> Timer:
            def prepare() -> None:
                point(fds)
                fill()
            return _per_record(counter, n, "perf consumer", prepare, consume)

        def count_sample(cpu: int, data: Any) -> None:
            counter.n += 1

        def count_raw(ctx: Any, cpu: int, data: Any, size: int) -> None:
            counter.n += 1

        c_perf = c.perf_new(perf_fd, pages)
        stack.callback(raw.lib.perf_buffer__free, c_perf)
        c_fds = libbpf_fds(c_perf)

        def c_timer() -> float:
            point(c_fds)
            fill()
            return c.perf_consume(c_perf, n) / n

        raw_cb = PERF_SAMPLE(count_raw)
        stack.callback(_keep, raw_cb)  # alive until the perf buffer is freed (LIFO)
        raw_perf = raw.lib.perf_buffer__new(perf_fd, pages, ctypes.cast(raw_cb, ctypes.c_void_p),
                                            None, None, None)
        stack.callback(raw.lib.perf_buffer__free, raw_perf)
        bare = stack.enter_context(PerfBuffer(perf, count_sample, page_count=pages))
        typed = stack.enter_context(PerfBuffer(perf, count_sample, page_count=pages,
                                               decode=decoder(obj, "struct event")))
        queued = stack.enter_context(PerfBuffer(perf, page_count=pages))

        def fds_of(pb: PerfBuffer) -> list[int]:
            return [pb.buffer_fd(i) for i in range(pb.buffer_count)]

        loop = asyncio.new_event_loop()
        stack.callback(loop.close)
        drain = _drain(queued, n, loop, stack)
        drain_batches = _drain_batches(queued, n, loop, stack)
        queued_fds = fds_of(queued)

        def aio_timer(run: Callable[[], Any] = drain) -> float:
            point(queued_fds)
            fill()
            t0 = _pc()
            loop.run_until_complete(run())
            return (_pc() - t0) / n

        got: dict[str, Timer | str] = {
            "C": c_timer,
            "raw": consumed(libbpf_fds(raw_perf), lambda: raw.lib.perf_buffer__consume(raw_perf)),
            "bare": consumed(fds_of(bare), bare.consume),
            "typed": consumed(fds_of(typed), typed.consume),
            "asyncio": aio_timer,
            "asyncio batches": lambda: aio_timer(drain_batches),
        }
        dtype = _event_dtype(obj)
        if isinstance(dtype, str):
            got["numpy batch"] = dtype
        elif bare._rings is None:
            got["numpy batch"] = "skipped: libbpf reads the perf rings on this machine"
        else:
            bare_fds = fds_of(bare)

            def prepare_bare() -> None:
                point(bare_fds)
                fill()

            def read_rings() -> list[Any]:
                return [bare.read_batch(i) for i in range(bare.buffer_count)]
            got["numpy batch"] = _numpy_turn(n, "perf read_batch", prepare_bare, read_rings,
                                             dtype)

        def check_lost() -> None:
            lost = sum(pb.lost for pb in (bare, typed, queued))
            if lost:
                raise RuntimeError(f"perf buffers lost {lost} samples")
        stack.callback(check_lost)

        b = bcc_module(env, f"""{EVENT_C}
BPF_PERF_OUTPUT(perf);
int emit(void *ctx) {{
    struct event ev = {{}};
    perf.perf_submit(ctx, &ev, sizeof(ev));
    return 0;
}}""")
        if isinstance(b, str):
            got["bcc"] = b
            return got
        stack.callback(b.cleanup)
        producer = _producer(env, stack, {"perf": b["perf"].map_fd})
        stack.callback(_check_dropped, producer)

        def count_bcc(cpu: int, data: Any, size: int) -> None:
            counter.n += 1

        b["perf"].open_perf_buffer(count_bcc, page_cnt=pages)

        def bcc_timer() -> float:
            fill(producer.programs["emit_perf"])
            counter.n = 0
            t0 = _pc()
            b.perf_buffer_consume()
            seconds = _pc() - t0
            if counter.n != n:
                raise RuntimeError(f"bcc perf consumer got {counter.n} samples of {n}")
            return seconds / n
        got["bcc"] = bcc_timer
        return got

    return Group("perfbuf", "perf buffer, 128-byte samples", "event", setup)
