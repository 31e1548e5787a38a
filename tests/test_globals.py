"""Global data by variable name: .rodata set before load and read-only after; .bss, .data and
custom .data.* read and written in the kernel's memory, seen by the BPF program both ways.

Only ``count_getpid`` (a tracepoint program) of ``counters.bpf.c`` is loaded, by the tests
that run it: the others' program types are no business of global data."""

from __future__ import annotations

import errno
import os

import pytest

from pylibbpf import Object, StateError, Variable
from pylibbpf.elf import ObjectFile
from tests.support.attach import autoload_only

pytestmark = pytest.mark.kernel


def test_variables_are_named_with_offsets(counters: Object) -> None:
    assert set(counters.rodata) == {"target_pid", "increment"}
    assert set(counters.bss) == {"hits", "last_ts"}
    assert set(counters.data) == {"magic", "tag"}
    assert set(counters.global_data(".data.custom")) == {"custom_hits"}
    variables = counters.data.variables
    assert variables["magic"].size == 4 and variables["tag"].size == 8
    assert variables["tag"].offset == variables["magic"].offset + 4


def test_variables_are_the_elf_readers(counters: Object) -> None:
    """libbpf's DATASECs after open and pylibbpf.elf's reading of the file name the same
    variables, with the same class."""
    assert counters.path is not None
    internal = {m.real_name: m for m in ObjectFile.from_path(counters.path).maps if m.is_internal}
    for section in (".rodata", ".bss", ".data", ".data.custom"):
        variables = counters.global_data(section).variables
        assert list(variables.values()) == internal[section].variables, section
    hits = counters.bss.variables["hits"]
    assert isinstance(hits, Variable) and hits.size == 8 and hits.type_id
    assert (hits.type_name, hits.linkage) == ("__u64", "global")


def test_initial_values_before_load(counters: Object) -> None:
    assert counters.data.get_int("magic") == 0xC0FFEE
    assert counters.data["tag"] == b"pylibbp\0"
    assert counters.global_data(".data.custom").get_int("custom_hits") == 7
    assert counters.rodata.get_int("increment") == 1
    assert counters.bss.get_int("hits") == 0


@pytest.mark.needs("tracepoint")
def test_rodata_set_before_load_is_used_and_read_only_after(
        counters: Object, request: pytest.FixtureRequest) -> None:
    autoload_only(counters, ["count_getpid"], request)
    counters.rodata["target_pid"] = os.getpid()
    counters.rodata["increment"] = 5
    counters.load()
    assert counters.rodata.readonly
    assert counters.rodata.get_int("increment") == 5
    with pytest.raises(StateError, match="read-only after load") as info:
        counters.rodata["increment"] = 6
    assert info.value.errno == errno.EPERM
    with counters.programs["count_getpid"].attach():
        for _ in range(10):
            os.getpid()
    assert counters.bss.get_int("hits") == 50               # 10 calls x increment 5
    assert counters.global_data(".data.custom").get_int("custom_hits") == 7 + 10


@pytest.mark.needs("tracepoint")
def test_writes_after_load_reach_the_program(counters: Object,
                                             request: pytest.FixtureRequest) -> None:
    autoload_only(counters, ["count_getpid"], request)
    counters.rodata["target_pid"] = os.getpid()
    counters.load()
    counters.bss["hits"] = 1000
    counters.global_data(".data.custom")["custom_hits"] = 0
    counters.data["magic"] = 0xDEAD
    with counters.programs["count_getpid"].attach():
        for _ in range(3):
            os.getpid()
    assert counters.bss.get_int("hits") == 1003
    assert counters.global_data(".data.custom").get_int("custom_hits") == 3
    assert counters.data.get_int("magic") == 0xDEAD
    # the kernel's copy, read through the map, agrees with the mapped memory
    raw = counters.maps["counters.bss"].lookup(0)
    offset = counters.bss.variables["hits"].offset
    assert int.from_bytes(raw[offset:offset + 8], "little") == 1003
    assert counters.bss.get_int("last_ts") > 0


@pytest.mark.needs("tracepoint")
def test_initial_value_buffer_is_what_load_puts_in_the_map(
        counters: Object, request: pytest.FixtureRequest) -> None:
    autoload_only(counters, ["count_getpid"], request)
    counters.rodata["target_pid"] = os.getpid()
    data = counters.maps["counters.data"]
    buffer = data.initial_value_buffer()
    assert len(buffer) == data.value_size and bytes(buffer) == data.initial_value
    offset = counters.data.variables["magic"].offset
    buffer[offset:offset + 4] = (0xBEEF).to_bytes(4, "little")
    assert counters.data.get_int("magic") == 0xBEEF          # the same memory GlobalData reads
    counters.load()
    assert counters.data.get_int("magic") == 0xBEEF          # the kernel's copy, mapped
    with pytest.raises(StateError, match="only be changed before load"):
        data.initial_value_buffer()


def test_bad_names_and_sizes(counters: Object) -> None:
    with pytest.raises(KeyError, match="no variable 'nope' in .bss.*hits"):
        counters.bss["nope"]
    with pytest.raises(ValueError, match="value of 'magic' is 8 bytes"):
        counters.data["magic"] = b"\0" * 8
    with pytest.raises(KeyError, match="no map '.data.missing'"):
        counters.global_data(".data.missing")
