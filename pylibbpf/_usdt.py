"""The USDT argument-spec layout an object was built with, against the loaded libbpf's.

A program that reads USDT arguments (``BPF_USDT``, ``bpf_usdt_arg()``) includes libbpf's
``usdt.bpf.h``, which declares the map ``__bpf_usdt_specs``: one ``struct __bpf_usdt_spec`` per
probe site, which libbpf fills at attach time from its own copy of that struct.  libbpf 1.7
added bit fields to the per-argument spec that the C ABI cannot pack where the older layout kept
its fields: an argument spec grew from 16 to 24 bytes and ``reg_off`` moved from offset 12 to 14,
so the whole spec grew from 208 to 304 bytes.  An object built with the headers of one side of
1.7 and attached by a libbpf of the other side gets specs it misreads (libbpf 1.7 writing for an
older object: every argument reads 0 with ``-ENOENT``; an older libbpf writing for a 1.7 object:
the kernel copies 304 bytes from a 208-byte buffer).  libbpf does not check; pylibbpf does,
before any USDT attach, from the map's value size.
"""

from __future__ import annotations

import errno

from .errors import BpfError

SPECS_MAP = "__bpf_usdt_specs"
MAX_ARGS = 12  # BPF_USDT_MAX_ARG_CNT, the same in every release
# sizeof(struct __bpf_usdt_spec): MAX_ARGS argument specs, a u64 cookie, a short count, padding
SPEC_BEFORE_1_7 = MAX_ARGS * 16 + 8 + 8
SPEC_FROM_1_7 = MAX_ARGS * 24 + 8 + 8


def spec_size(libbpf: tuple[int, int]) -> int:
    """The ``struct __bpf_usdt_spec`` size libbpf ``libbpf`` (major, minor) writes."""
    return SPEC_FROM_1_7 if libbpf >= (1, 7) else SPEC_BEFORE_1_7


def headers_of(size: int) -> str:
    """Which ``usdt.bpf.h`` releases declare a spec map value of ``size`` bytes."""
    if size == SPEC_BEFORE_1_7:
        return "usdt.bpf.h of libbpf 1.6 or older"
    if size == SPEC_FROM_1_7:
        return "usdt.bpf.h of libbpf 1.7 or newer"
    return "a usdt.bpf.h pylibbpf does not know"


def check(object_name: str, value_size: int | None, libbpf: tuple[int, int]) -> None:
    """Raise :class:`BpfError` (EINVAL) when an object whose ``__bpf_usdt_specs`` map has values
    of ``value_size`` bytes (None: it has no such map) cannot be attached to USDT probes by
    libbpf ``libbpf``."""
    if value_size is None:
        return
    expected = spec_size(libbpf)
    if value_size == expected:
        return
    raise BpfError(
        errno.EINVAL,
        f"object {object_name!r} was built with {headers_of(value_size)} ({SPECS_MAP} values "
        f"of {value_size} bytes) but the loaded libbpf {libbpf[0]}.{libbpf[1]} writes "
        f"{expected}-byte USDT specs: its programs would read wrong USDT arguments. Rebuild the "
        f"object with the headers of the libbpf it runs with (libbpf-dev "
        f"{libbpf[0]}.{libbpf[1]}), or run it with a libbpf of the other side of 1.7")
