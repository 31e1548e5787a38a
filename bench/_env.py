"""What every group's setup gets: the contenders' libraries, the built objects, the sizes."""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from . import _bcc
from ._build import Built
from ._native import CBench, RawLibbpf

BYTEORDER = sys.byteorder


@dataclass(frozen=True)
class Sizes:
    ops: int            # element operations per timing
    dumps: tuple[int, ...]  # entries of the dumped HASH maps (the last one is "the" dump)
    hist: int           # slots of the histogram array
    hist_reads: int     # whole-histogram reads per timing
    ring: int           # ring buffer records per timing
    perf: int           # perf buffer samples per timing
    loads: int          # open + load + close per timing
    slices: int         # timings per contender per round (their median is the round's)

    @classmethod
    def full(cls) -> Sizes:
        return cls(ops=10_000, dumps=(10_000, 100_000, 1_000_000), hist=1024, hist_reads=20,
                   ring=20_000, perf=10_000, loads=2, slices=5)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(ops=500, dumps=(1000, 2000, 5000), hist=64, hist_reads=5, ring=500,
                   perf=500, loads=1, slices=1)


@dataclass
class Env:
    built: Built
    sizes: Sizes
    c: CBench
    raw: RawLibbpf
    bcc_wanted: bool = True

    @property
    def ncpu(self) -> int:
        return int(self.raw.lib.libbpf_num_possible_cpus())

    def bcc(self) -> ModuleType | str:
        """The bcc module, or why its columns are empty."""
        return _bcc.load() if self.bcc_wanted else "not run (--no-bcc)"


def bcc_module(env: Env, text: str) -> Any:
    """A compiled bcc program, or the reason there is none (a str)."""
    bcc = env.bcc()
    if isinstance(bcc, str):
        return bcc
    return bcc.BPF(text=text)


def buffer(data: bytes) -> Any:
    return ctypes.create_string_buffer(data, len(data))
