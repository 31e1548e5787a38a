"""Global data by variable name: .rodata set before load and read-only after; .bss, .data and
custom .data.* read and written in the kernel's memory, seen by the BPF program both ways.

Only ``count_getpid`` (a tracepoint program) of ``counters.bpf.c`` is loaded, by the tests
that run it: the others' program types are no business of global data."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

import pytest

from pylibbpf import Object, StateError, Variable
from pylibbpf.elf import ObjectFile
from tests.support.attach import autoload_only, object_path

pytestmark = pytest.mark.kernel


@pytest.fixture
def obj() -> Iterator[Object]:
    with Object.open_file(object_path("counters.bpf.c")) as o:
        autoload_only(o, [])  # a test that runs a program loads it (and marks its needs)
        yield o


def test_variables_are_named_with_offsets(obj: Object) -> None:
    assert set(obj.rodata) == {"target_pid", "increment"}
    assert set(obj.bss) == {"hits", "last_ts"}
    assert set(obj.data) == {"magic", "tag"}
    assert set(obj.global_data(".data.custom")) == {"custom_hits"}
    variables = obj.data.variables
    assert variables["magic"].size == 4 and variables["tag"].size == 8
    assert variables["tag"].offset == variables["magic"].offset + 4


def test_variables_are_the_elf_readers(obj: Object) -> None:
    """libbpf's DATASECs after open and pylibbpf.elf's reading of the file name the same
    variables, with the same class."""
    assert obj.path is not None
    internal = {m.real_name: m for m in ObjectFile.from_path(obj.path).maps if m.is_internal}
    for section in (".rodata", ".bss", ".data", ".data.custom"):
        variables = obj.global_data(section).variables
        assert list(variables.values()) == internal[section].variables, section
    hits = obj.bss.variables["hits"]
    assert isinstance(hits, Variable) and hits.size == 8 and hits.type_id
    assert (hits.type_name, hits.linkage) == ("__u64", "global")


def test_initial_values_before_load(obj: Object) -> None:
    assert obj.data.get_int("magic") == 0xC0FFEE
    assert obj.data["tag"] == b"pylibbp\0"
    assert obj.global_data(".data.custom").get_int("custom_hits") == 7
    assert obj.rodata.get_int("increment") == 1
    assert obj.bss.get_int("hits") == 0


@pytest.mark.needs("tracepoint")
def test_rodata_set_before_load_is_used_and_read_only_after(
        obj: Object, request: pytest.FixtureRequest) -> None:
    autoload_only(obj, ["count_getpid"], request)
    obj.rodata["target_pid"] = os.getpid()
    obj.rodata["increment"] = 5
    obj.load()
    assert obj.rodata.readonly
    assert obj.rodata.get_int("increment") == 5
    with pytest.raises(StateError, match="read-only after load") as info:
        obj.rodata["increment"] = 6
    assert info.value.errno == errno.EPERM
    with obj.programs["count_getpid"].attach():
        for _ in range(10):
            os.getpid()
    assert obj.bss.get_int("hits") == 50               # 10 calls x increment 5
    assert obj.global_data(".data.custom").get_int("custom_hits") == 7 + 10


@pytest.mark.needs("tracepoint")
def test_writes_after_load_reach_the_program(obj: Object,
                                             request: pytest.FixtureRequest) -> None:
    autoload_only(obj, ["count_getpid"], request)
    obj.rodata["target_pid"] = os.getpid()
    obj.load()
    obj.bss["hits"] = 1000
    obj.global_data(".data.custom")["custom_hits"] = 0
    obj.data["magic"] = 0xDEAD
    with obj.programs["count_getpid"].attach():
        for _ in range(3):
            os.getpid()
    assert obj.bss.get_int("hits") == 1003
    assert obj.global_data(".data.custom").get_int("custom_hits") == 3
    assert obj.data.get_int("magic") == 0xDEAD
    # the kernel's copy, read through the map, agrees with the mapped memory
    raw = obj.maps["counters.bss"].lookup(0)
    offset = obj.bss.variables["hits"].offset
    assert int.from_bytes(raw[offset:offset + 8], "little") == 1003
    assert obj.bss.get_int("last_ts") > 0


def test_bad_names_and_sizes(obj: Object) -> None:
    with pytest.raises(KeyError, match="no variable 'nope' in .bss.*hits"):
        obj.bss["nope"]
    with pytest.raises(ValueError, match="value of 'magic' is 8 bytes"):
        obj.data["magic"] = b"\0" * 8
    with pytest.raises(KeyError, match="no map '.data.missing'"):
        obj.global_data(".data.missing")
