"""Histograms as bcc prints them: log2 and linear buckets, drawn with stars in the terminal.

The log2 layout is libbpf-tools' (and lathist's): bucket ``i`` counts the values ``v`` with
``floor(log2(v)) == i`` (``0`` and ``1`` both land in bucket 0), as :func:`log2_slot` computes on
the Python side and ``bpf_log2``-style helpers compute on the BPF side.  bcc's own BPF helper
(``bpf_log2l``) is one higher; pass ``vals[1:]`` of such a table.  The text is bcc's
``print_log2_hist``/``print_linear_hist`` output, byte for byte::

         usecs               : count     distribution
             0 -> 1          : 3        |****                                    |
             2 -> 3          : 30       |****************************************|
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TextIO

STARS_MAX = 40


def log2_slot(value: int) -> int:
    """The log2 bucket of ``value`` (``floor(log2(value))``; 0 for 0 and 1)."""
    if value < 0:
        raise ValueError(f"log2 histograms count non-negative values, not {value}")
    return max(value.bit_length() - 1, 0)


def _stars(count: int, count_max: int, width: int) -> str:
    if count_max <= 0:
        return ""
    # bcc draws floor(width * count / count_max) stars, at most width; '+' marks an overflow
    n = min(width, width * count // count_max)
    text = "*" * n
    if count > count_max:
        text = text[:-1] + "+"
    return text


def _counts(buckets: Sequence[int] | Mapping[int, int]) -> list[int]:
    if isinstance(buckets, Mapping):
        if not buckets:
            return []
        size = max(buckets) + 1
        if min(buckets) < 0:
            raise ValueError("bucket indexes must be >= 0")
        return [int(buckets.get(i, 0)) for i in range(size)]
    return [int(c) for c in buckets]


def format_log2_hist(buckets: Sequence[int] | Mapping[int, int], val_type: str = "value",
                     *, strip_leading_zero: bool = False) -> str:
    """bcc's ``print_log2_hist`` text for bucket counts (a list, or a dict index -> count).

    Returns ``""`` when every bucket is empty, as bcc prints nothing then.
    """
    counts = _counts(buckets)
    idx_max = max((i for i, c in enumerate(counts) if c > 0), default=-1)
    if idx_max < 0:
        return ""
    count_max = max(counts)
    if idx_max <= 31:
        header = f"     {val_type:<19} : count     distribution"
        width, stars = 10, STARS_MAX
    else:
        header = f"               {val_type:<29} : count     distribution"
        width, stars = 20, STARS_MAX // 2
    lines = [header]
    for i in range(idx_max + 1):
        low, high = (1 << (i + 1)) >> 1, (1 << (i + 1)) - 1
        if low == high:
            low -= 1
        count = counts[i]
        if strip_leading_zero:
            if not count:
                continue
            strip_leading_zero = False
        bar = _stars(count, count_max, stars)
        lines.append(f"{low:>{width}} -> {high:<{width}} : {count:<8} |{bar:<{stars}}|")
    return "\n".join(lines) + "\n"


def format_linear_hist(buckets: Sequence[int] | Mapping[int, int], val_type: str = "value",
                       *, base: int = 0, step: int = 1,
                       strip_leading_zero: bool = False) -> str:
    """bcc's ``print_linear_hist`` text: bucket ``i`` is labelled ``base + i * step``."""
    counts = _counts(buckets)
    idx_max = max((i for i, c in enumerate(counts) if c > 0), default=-1)
    if idx_max < 0:
        return ""
    count_max = max(counts)
    lines = [f"     {val_type:<13} : count     distribution"]
    for i in range(idx_max + 1):
        count = counts[i]
        if strip_leading_zero:
            if not count:
                continue
            strip_leading_zero = False
        bar = _stars(count, count_max, STARS_MAX)
        lines.append(f"        {base + i * step:<10} : {count:<8} |{bar:<{STARS_MAX}}|")
    return "\n".join(lines) + "\n"


def print_log2_hist(buckets: Sequence[int] | Mapping[int, int], val_type: str = "value", *,
                    strip_leading_zero: bool = False, file: TextIO | None = None) -> None:
    """Print :func:`format_log2_hist` (to stdout by default)."""
    (file or sys.stdout).write(format_log2_hist(buckets, val_type,
                                                strip_leading_zero=strip_leading_zero))


def print_linear_hist(buckets: Sequence[int] | Mapping[int, int], val_type: str = "value", *,
                      base: int = 0, step: int = 1, strip_leading_zero: bool = False,
                      file: TextIO | None = None) -> None:
    """Print :func:`format_linear_hist` (to stdout by default)."""
    (file or sys.stdout).write(format_linear_hist(buckets, val_type, base=base, step=step,
                                                  strip_leading_zero=strip_leading_zero))


def log2_buckets(values: Iterable[int], slots: int | None = None) -> list[int]:
    """Bucket raw values the way a log2 histogram map does (for tests and user-space data)."""
    counts: list[int] = [0] * (slots or 0)
    for value in values:
        slot = log2_slot(value)
        if slots is not None:
            slot = min(slot, slots - 1)
        if slot >= len(counts):
            counts.extend([0] * (slot + 1 - len(counts)))
        counts[slot] += 1
    return counts


def map_buckets(items: Iterable[tuple[bytes, bytes | Sequence[bytes]]]) -> dict[int, int]:
    """Bucket counts from a histogram map's ``items()``: native-endian integer keys (the slot)
    and values (the count; per-CPU values are summed)."""
    counts: dict[int, int] = {}
    for key, value in items:
        slot = int.from_bytes(key, sys.byteorder)
        if isinstance(value, (bytes, bytearray)):
            total = int.from_bytes(value, sys.byteorder)
        else:
            total = sum(int.from_bytes(v, sys.byteorder) for v in value)
        counts[slot] = counts.get(slot, 0) + total
    return counts
