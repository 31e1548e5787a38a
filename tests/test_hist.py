"""Histogram text: bcc's print_log2_hist / print_linear_hist format, byte for byte."""

from __future__ import annotations

import io
import struct

import pytest

from pylibbpf import Map, MapType
from pylibbpf.hist import (
    format_linear_hist,
    format_log2_hist,
    log2_buckets,
    log2_slot,
    map_buckets,
    print_log2_hist,
)

# What bcc's table.py prints for a BPF table whose bpf_log2l() slots hold [0, 1, 4, 16, 2]
# (bcc's slot 0 is never printed; its slot i is our bucket i - 1).
BCC_LOG2 = (
    "     usecs               : count     distribution\n"
    "         0 -> 1          : 1        |**                                      |\n"
    "         2 -> 3          : 4        |**********                              |\n"
    "         4 -> 7          : 16       |****************************************|\n"
    "         8 -> 15         : 2        |*****                                   |\n"
)

BCC_LINEAR = (
    "     slot          : count     distribution\n"
    "        0          : 3        |****************************************|\n"
    "        1          : 0        |                                        |\n"
    "        2          : 1        |*************                           |\n"
)


def test_log2_matches_bcc() -> None:
    assert format_log2_hist([1, 4, 16, 2], "usecs") == BCC_LOG2
    assert format_log2_hist({0: 1, 1: 4, 2: 16, 3: 2}, "usecs") == BCC_LOG2


def test_log2_empty_and_strip_leading_zero() -> None:
    assert format_log2_hist([0, 0, 0]) == ""
    text = format_log2_hist([0, 0, 5], "ns", strip_leading_zero=True)
    assert text.splitlines()[1:] == [
        "         4 -> 7          : 5        |****************************************|"]
    assert len(format_log2_hist([0, 0, 5], "ns").splitlines()) == 4


def test_log2_wide_layout_for_large_buckets() -> None:
    counts = [0] * 40
    counts[39] = 8
    counts[0] = 2
    lines = format_log2_hist(counts).splitlines()
    assert lines[0] == "               value                         : count     distribution"
    assert lines[1] == (f"{0:>20} -> {1:<20} : {2:<8} |{'*' * 5:<20}|")
    assert lines[-1] == (f"{1 << 39:>20} -> {(1 << 40) - 1:<20} : {8:<8} |{'*' * 20}|")


def test_linear_matches_bcc() -> None:
    assert format_linear_hist([3, 0, 1], "slot") == BCC_LINEAR
    text = format_linear_hist([0, 2], "ms", base=100, step=10)
    assert text.splitlines()[2] == "        110        : 2        |" + "*" * 40 + "|"


def test_slots_and_bucketing() -> None:
    assert [log2_slot(v) for v in (0, 1, 2, 3, 4, 7, 8, 1023, 1024)] == [0, 0, 1, 1, 2, 2, 3,
                                                                        9, 10]
    assert log2_buckets([0, 1, 5, 6, 1000]) == [2, 0, 2, 0, 0, 0, 0, 0, 0, 1]
    assert log2_buckets([1 << 50], slots=4) == [0, 0, 0, 1]
    with pytest.raises(ValueError):
        log2_slot(-1)


def test_print_to_file() -> None:
    out = io.StringIO()
    print_log2_hist([1, 4, 16, 2], "usecs", file=out)
    assert out.getvalue() == BCC_LOG2


@pytest.mark.kernel
def test_from_a_histogram_map() -> None:
    with Map.create(MapType.ARRAY, 4, 8, 8, name="hist") as m:
        for slot, count in enumerate([1, 4, 16, 2]):
            m.update(struct.pack("I", slot), struct.pack("Q", count))
        assert format_log2_hist(map_buckets(m.items()), "usecs") == BCC_LOG2
    with Map.create(MapType.PERCPU_ARRAY, 4, 8, 2, name="hist_pc") as pc:
        pc.update(struct.pack("I", 1), struct.pack("Q", 3))  # 3 on every CPU
        from pylibbpf import num_possible_cpus

        assert map_buckets(pc.items()) == {0: 0, 1: 3 * num_possible_cpus()}
