"""The map groups: element operations in every flavour, typed views, dumps, the histogram."""

from __future__ import annotations

import ctypes
import mmap
import time
from contextlib import ExitStack
from typing import Any

from pylibbpf import Map, MapFlags, MapType, Object

from ._core import Group, Timer
from ._env import BYTEORDER, Env, bcc_module

_pc = time.perf_counter
Contenders = dict[str, "Timer | str"]

BCC_TYPES = {MapType.ARRAY: "BPF_ARRAY(m, u64, {n});",
             MapType.HASH: "BPF_HASH(m, u32, u64, {n});",
             MapType.PERCPU_ARRAY: "BPF_PERCPU_ARRAY(m, u64, {n});"}
REC_C = "struct rec { u64 a; u64 b; u32 c; u32 d; u64 e[5]; };"
REC = {"a": 1, "b": 2, "c": 3, "d": 4, "e": [5, 6, 7, 8, 9]}


def _bcc_table(env: Env, stack: ExitStack, text: str) -> Any:
    b = bcc_module(env, text)
    if isinstance(b, str):
        return b
    stack.callback(b.cleanup)
    return b["m"]


def _loop(n: int, body: Any, items: list[Any]) -> Timer:
    """A timer calling ``body(item)`` for each item: seconds per call."""
    def timer() -> float:
        t0 = _pc()
        for item in items:
            body(item)
        return (_pc() - t0) / n
    return timer


def element_group(env: Env, kind: MapType, op: str) -> Group:
    """``op`` (lookup, update, delete) on every key of a ``kind`` map of 4-byte keys and 8-byte
    values (per-CPU: one per possible CPU): C, raw ctypes, pylibbpf with bytes and with int
    keys and values, bcc with ctypes keys built beforehand and built per call."""
    name = getattr(kind, "name", str(kind))

    def setup(stack: ExitStack) -> Contenders:
        n = env.sizes.ops
        percpu = kind == MapType.PERCPU_ARRAY
        vbytes = 8 * env.ncpu if percpu else 8
        m = stack.enter_context(Map.create(kind, 4, 8, n))
        fd = m.fd
        c, raw = env.c, env.raw
        c.fill(fd, n, vbytes)
        keys = [k.to_bytes(4, BYTEORDER) for k in range(n)]
        ints = list(range(n))
        value = b"\1" * vbytes
        out = ctypes.create_string_buffer(vbytes)
        got: dict[str, Timer | str] = {}
        table = _bcc_table(env, stack, BCC_TYPES[kind].format(n=n))

        def refill(timer: Timer, fd: int = fd) -> Timer:
            def run() -> float:
                c.fill(fd, n, vbytes)
                return timer()
            return run

        if op == "lookup":
            got["C"] = lambda: c.lookup(fd, n, vbytes) / n
            lookup = raw.lookup
            got["raw"] = _loop(n, lambda k: lookup(fd, k, out), keys)
            got["bytes"] = _loop(n, m.lookup, keys)
            if not percpu:
                got["int"] = _loop(n, m.lookup, ints)
        elif op == "update":
            got["C"] = lambda: c.update(fd, n, vbytes) / n
            update = raw.update
            got["raw"] = _loop(n, lambda k: update(fd, k, value, 0), keys)
            m_update = m.update
            if not percpu:
                got["bytes"] = _loop(n, lambda k: m_update(k, value), keys)
            got["int"] = _loop(n, lambda k: m_update(k, 1), ints)
        else:
            got["C"] = refill(lambda: c.delete(fd, n) / n)
            delete = raw.delete
            got["raw"] = refill(_loop(n, lambda k: delete(fd, k), keys))
            got["bytes"] = refill(_loop(n, m.delete, keys))
            got["int"] = refill(_loop(n, m.delete, ints))
        if isinstance(table, str):
            got["bcc"] = got["bcc int"] = table
            return got
        key_t, leaf_t = table.Key, table.Leaf
        bfd = table.map_fd
        c.fill(bfd, n, vbytes)
        kobjs = [key_t(k) for k in range(n)]
        if op == "lookup":
            got["bcc"] = _loop(n, table.__getitem__, kobjs)
            got["bcc int"] = _loop(n, lambda k: table.__getitem__(key_t(k)), ints)
        elif op == "update":
            leaf = leaf_t(*([1] * env.ncpu)) if percpu else leaf_t(1)
            setitem = table.__setitem__
            got["bcc"] = _loop(n, lambda k: setitem(k, leaf), kobjs)
            if percpu:
                ones = [1] * env.ncpu
                got["bcc int"] = _loop(n, lambda k: setitem(key_t(k), leaf_t(*ones)), ints)
            else:
                got["bcc int"] = _loop(n, lambda k: setitem(key_t(k), leaf_t(1)), ints)
        else:
            delitem = table.__delitem__
            got["bcc"] = refill(_loop(n, delitem, kobjs), bfd)
            got["bcc int"] = refill(_loop(n, lambda k: delitem(key_t(k)), ints), bfd)
        return got

    return Group(f"{name.lower()}-{op}", f"{name} {op}", "op", setup)


def typed_group(env: Env, op: str) -> Group:
    """``Map.typed()`` lookup or update of a 64-byte struct value (a HASH of an object, its
    BTF), against C and raw ctypes on the same map and bcc's ctypes struct."""

    def setup(stack: ExitStack) -> Contenders:
        n = env.sizes.ops
        obj = stack.enter_context(Object.open_file(env.built.objects["bench_maps"]))
        obj.maps["typed"].set_max_entries(n)
        obj.load()
        m = obj.maps["typed"]
        view = m.typed()
        fd = m.fd
        c, raw = env.c, env.raw
        c.fill(fd, n, 64)
        keys = [k.to_bytes(4, BYTEORDER) for k in range(n)]
        ints = list(range(n))
        value = view.value.encode(REC)
        out = ctypes.create_string_buffer(64)
        got: dict[str, Timer | str] = {}
        table = _bcc_table(env, stack, f"{REC_C} BPF_HASH(m, u32, struct rec, {n});")
        if op == "lookup":
            got["C"] = lambda: c.lookup(fd, n, 64) / n
            lookup = raw.lookup
            got["raw"] = _loop(n, lambda k: lookup(fd, k, out), keys)
            got["typed"] = _loop(n, view.lookup, ints)
        else:
            got["C"] = lambda: c.update(fd, n, 64) / n
            update = raw.update
            got["raw"] = _loop(n, lambda k: update(fd, k, value, 0), keys)
            v_update = view.update
            got["typed"] = _loop(n, lambda k: v_update(k, REC), ints)
        if isinstance(table, str):
            got["bcc"] = table
            return got
        c.fill(table.map_fd, n, 64)
        key_t, leaf_t = table.Key, table.Leaf
        if op == "lookup":
            getitem = table.__getitem__
            got["bcc"] = _loop(n, lambda k: getitem(key_t(k)), ints)
        else:
            setitem = table.__setitem__
            e = (ctypes.c_ulonglong * 5)(*REC["e"])  # type: ignore[misc]
            got["bcc"] = _loop(n, lambda k: setitem(key_t(k), leaf_t(1, 2, 3, 4, e)), ints)
        return got

    return Group(f"typed-{op}", f"typed view {op}, 64-byte struct", "op", setup)


def dump_group(env: Env, entries: int, with_bcc: bool) -> Group:
    """Every entry of a full ``entries``-entry HASH (4-byte keys, 8-byte values): pylibbpf's
    ``items()`` (a list of (key, value) pairs), C's batch dump, bcc's batch dump, and the
    NumPy export where pylibbpf has one (``Map.to_numpy``)."""

    def setup(stack: ExitStack) -> Contenders:
        m = stack.enter_context(Map.create(MapType.HASH, 4, 8, entries))
        fd = m.fd
        c = env.c
        c.fill(fd, entries, 8)

        # a turn dumps at least 100 k entries: a shorter one is at the mercy of the scheduler
        reps = max(1, 100_000 // entries)

        def per_entry(dump: Any) -> Timer:
            def timer() -> float:
                seconds = 0.0
                for _ in range(reps):
                    t0 = _pc()
                    got = dump()
                    seconds += _pc() - t0
                    if len(got) != entries:
                        raise RuntimeError(f"dump returned {len(got)} entries of {entries}")
                    del got
                return seconds / (entries * reps)
            return timer

        def c_dump() -> float:
            return sum(c.dump(fd, entries, 4, 8, entries) for _ in range(reps)) / (entries * reps)

        got: dict[str, Timer | str] = {
            "C": c_dump,
            "items": per_entry(m.items),
        }
        to_numpy = getattr(m, "to_numpy", None)
        got["numpy"] = per_entry(to_numpy) if to_numpy is not None else "not implemented"
        if with_bcc:
            table = _bcc_table(env, stack, f"BPF_HASH(m, u32, u64, {entries});")
            if isinstance(table, str):
                got["bcc"] = table
            else:
                c.fill(table.map_fd, entries, 8)
                got["bcc"] = per_entry(lambda: list(table.items_lookup_batch()))
        return got

    return Group(f"dump-{entries}", f"dump of a {entries}-entry HASH", "entry", setup,
                 warmup=entries < 1_000_000, sliced=entries < 1_000_000)


def histogram_group(env: Env) -> Group:
    """A whole histogram (a ``BPF_F_MMAPABLE`` ARRAY of u64 slots) read: C's per-element
    lookups against reads through memory (C, raw Python ``mmap``, pylibbpf's memory view where
    it has one: ``Map.memory()``) and pylibbpf's ``values()`` (batch lookup)."""

    def setup(stack: ExitStack) -> Contenders:
        slots, reads = env.sizes.hist, env.sizes.hist_reads
        m = stack.enter_context(Map.create(MapType.ARRAY, 4, 8, slots,
                                           flags=MapFlags.MMAPABLE))
        fd = m.fd
        c = env.c
        c.fill(fd, slots, 8)
        size = slots * 8
        address = c.mmap(fd, size)
        stack.callback(c.lib.bench_munmap, address, size)
        out = (ctypes.c_uint64 * slots)()
        mapping = stack.enter_context(mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ))
        view = memoryview(mapping).cast("Q")
        stack.callback(view.release)

        def repeat(read: Any) -> Timer:
            def timer() -> float:
                t0 = _pc()
                for _ in range(reads):
                    read()
                return (_pc() - t0) / reads
            return timer

        got: dict[str, Timer | str] = {
            "C lookups": lambda: sum(c.lookup(fd, slots, 8) for _ in range(reads)) / reads,
            "C mmap": lambda: sum(c.mmap_read(address, slots, out)
                                  for _ in range(reads)) / reads,
            "raw mmap": repeat(view.tolist),
            "values": repeat(m.values),
        }
        memory = getattr(m, "memory", None)
        if memory is None:
            got["memory"] = "not implemented"
        else:  # any C-contiguous buffer: an mmap, a memoryview, a NumPy array
            region = memory()
            got["memory"] = repeat(lambda: memoryview(region).cast("B").cast("Q").tolist())
        return got

    return Group("histogram", "mmapable ARRAY histogram read", "read", setup)
