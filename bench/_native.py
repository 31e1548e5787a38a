"""The C contender (``cbench.c``) and the raw ctypes contender, as ctypes sees them.

:class:`CBench` calls the C loops: one ctypes call per loop, each loop timing itself.
:class:`RawLibbpf` is libbpf's own functions through a ctypes handle of its own, argtypes set:
the floor for any ctypes binding (no checks, no conversions, buffers built before the loop).
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path
from typing import Any

_c_int, _c_uint, _vp = ctypes.c_int, ctypes.c_uint, ctypes.c_void_p
_ll = ctypes.c_longlong

# argtypes and restype per function, as pyudev's SIGNATURES tables
Signatures = dict[str, tuple[list[Any], Any]]

_CBENCH: Signatures = {
    "bench_lookup": ([_c_int, _c_uint, _c_uint], _ll),
    "bench_update": ([_c_int, _c_uint, _c_uint], _ll),
    "bench_delete": ([_c_int, _c_uint], _ll),
    "bench_fill": ([_c_int, _c_uint, _c_uint], _c_int),
    "bench_dump": ([_c_int, _c_uint, _c_uint, _c_uint, _c_uint, ctypes.POINTER(_c_uint)], _ll),
    "bench_mmap": ([_c_int, ctypes.c_size_t], _vp),
    "bench_munmap": ([_vp, ctypes.c_size_t], None),
    "bench_mmap_read": ([_vp, _c_uint, _vp], _ll),
    "bench_ring_new": ([_c_int], _vp),
    "bench_ring_consume": ([_vp, ctypes.POINTER(ctypes.c_long)], _ll),
    "bench_perf_new": ([_c_int, _c_uint], _vp),
    "bench_perf_consume": ([_vp, ctypes.POINTER(ctypes.c_long)], _ll),
    "bench_openload": ([ctypes.c_char_p, _c_uint], _ll),
}

_RAW: Signatures = {
    "bpf_map_lookup_elem": ([_c_int, _vp, _vp], _c_int),
    "bpf_map_update_elem": ([_c_int, _vp, _vp, ctypes.c_uint64], _c_int),
    "bpf_map_delete_elem": ([_c_int, _vp], _c_int),
    "libbpf_set_print": ([_vp], _vp),
    "bpf_object__open_file": ([ctypes.c_char_p, _vp], _vp),
    "bpf_object__load": ([_vp], _c_int),
    "bpf_object__close": ([_vp], None),
    "ring_buffer__new": ([_c_int, _vp, _vp, _vp], _vp),
    "ring_buffer__consume": ([_vp], _c_int),
    "ring_buffer__free": ([_vp], None),
    "perf_buffer__new": ([_c_int, ctypes.c_size_t, _vp, _vp, _vp, _vp], _vp),
    "perf_buffer__consume": ([_vp], _c_int),
    "perf_buffer__free": ([_vp], None),
    "perf_buffer__buffer_cnt": ([_vp], ctypes.c_size_t),
    "perf_buffer__buffer_fd": ([_vp, ctypes.c_size_t], _c_int),
    "libbpf_num_possible_cpus": ([], _c_int),
}

RING_SAMPLE = ctypes.CFUNCTYPE(_c_int, _vp, _vp, ctypes.c_size_t)
PERF_SAMPLE = ctypes.CFUNCTYPE(None, _vp, _c_int, _vp, ctypes.c_uint32)


def _apply(lib: ctypes.CDLL, table: Signatures) -> None:
    for name, (argtypes, restype) in table.items():
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = restype


def _ns(rc: int, what: str) -> float:
    if rc < 0:
        raise OSError(-rc, f"C {what}: {os.strerror(-rc)}")
    return rc / 1e9


class CBench:
    """The C loops; each method returns seconds (of the whole loop)."""

    def __init__(self, path: Path) -> None:
        self.lib = ctypes.CDLL(str(path), use_errno=True)
        _apply(self.lib, _CBENCH)

    def lookup(self, fd: int, n: int, value_bytes: int) -> float:
        return _ns(self.lib.bench_lookup(fd, n, value_bytes), "lookup")

    def update(self, fd: int, n: int, value_bytes: int) -> float:
        return _ns(self.lib.bench_update(fd, n, value_bytes), "update")

    def delete(self, fd: int, n: int) -> float:
        return _ns(self.lib.bench_delete(fd, n), "delete")

    def fill(self, fd: int, n: int, value_bytes: int) -> None:
        rc = self.lib.bench_fill(fd, n, value_bytes)
        if rc < 0:
            raise OSError(-rc, f"C fill: {os.strerror(-rc)}")

    def dump(self, fd: int, max_entries: int, key_size: int, value_bytes: int,
             expect: int, batch: int = 65536) -> float:
        entries = ctypes.c_uint()
        seconds = _ns(self.lib.bench_dump(fd, max_entries, key_size, value_bytes,
                                          batch, ctypes.byref(entries)), "dump")
        if entries.value != expect:
            raise RuntimeError(f"C dump read {entries.value} entries, expected {expect}")
        return seconds

    def mmap(self, fd: int, size: int) -> int:
        address = self.lib.bench_mmap(fd, size)
        if not address:
            raise OSError(ctypes.get_errno(), "C mmap of an array map failed")
        return int(address)

    def mmap_read(self, address: int, n: int, out: Any) -> float:
        return _ns(self.lib.bench_mmap_read(address, n, out), "mmap read")

    def openload(self, path: Path, reps: int) -> float:
        return _ns(self.lib.bench_openload(os.fsencode(path), reps), "open+load")

    def ring_new(self, fd: int) -> int:
        ptr = self.lib.bench_ring_new(fd)
        if not ptr:
            raise OSError(ctypes.get_errno(), "C ring_buffer__new failed")
        return int(ptr)

    def ring_consume(self, ptr: int, expect: int) -> float:
        count = ctypes.c_long()
        seconds = _ns(self.lib.bench_ring_consume(ptr, ctypes.byref(count)), "ring consume")
        _expect(count.value, expect, "C ring consumer")
        return seconds

    def perf_new(self, fd: int, pages: int) -> int:
        ptr = self.lib.bench_perf_new(fd, pages)
        if not ptr:
            raise OSError(ctypes.get_errno(), "C perf_buffer__new failed")
        return int(ptr)

    def perf_consume(self, ptr: int, expect: int) -> float:
        count = ctypes.c_long()
        seconds = _ns(self.lib.bench_perf_consume(ptr, ctypes.byref(count)), "perf consume")
        _expect(count.value, expect, "C perf consumer")
        return seconds


def _expect(got: int, expect: int, who: str) -> None:
    if got != expect:
        raise RuntimeError(f"{who} got {got} records, expected {expect}")


class RawLibbpf:
    """libbpf through a ctypes handle of its own: the functions with argtypes set."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
        _apply(self.lib, _RAW)
        self.lookup = self.lib.bpf_map_lookup_elem
        self.update = self.lib.bpf_map_update_elem
        self.delete = self.lib.bpf_map_delete_elem

    def check(self, rc: int, what: str) -> None:
        if rc < 0:
            err = -rc if rc != -1 else ctypes.get_errno() or errno.EIO
            raise OSError(err, f"raw {what}: {os.strerror(err)}")

    def openload(self, path: Path, reps: int) -> None:
        """open + load + close, ``reps`` times, with libbpf's print function off meanwhile."""
        lib = self.lib
        raw = os.fsencode(path)
        previous = lib.libbpf_set_print(None)
        try:
            for _ in range(reps):
                obj = lib.bpf_object__open_file(raw, None)
                if not obj:
                    raise OSError(ctypes.get_errno(), "raw bpf_object__open_file failed")
                rc = lib.bpf_object__load(obj)
                lib.bpf_object__close(obj)
                self.check(rc, "bpf_object__load")
        finally:
            lib.libbpf_set_print(previous)
