"""Lifetimes: closed handles raise instead of touching freed memory, children keep parents alive,
links outlive objects, the garbage collector warns, and nothing leaks fds."""

from __future__ import annotations

import gc
import os
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pylibbpf import BpfError, ClosedError, Map, MapType, Object
from tests.support.bpfbuild import compile_bpf
from tests.support.repetition import rounds

pytestmark = pytest.mark.kernel


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_close_is_idempotent_and_context_manager_closes(minimal_o: Path) -> None:
    obj = Object.open_file(minimal_o)
    with obj as same:
        assert same is obj
    assert obj.closed
    obj.close()
    assert obj.closed
    with pytest.raises(ClosedError):
        with obj:
            pass


def _public_calls(obj: Object) -> dict[str, Callable[[], Any]]:
    prog = obj.programs["on_getpid"]
    m = obj.maps["hits"]
    return {
        "Object.name": lambda: obj.name, "Object.programs": lambda: obj.programs,
        "Object.maps": lambda: obj.maps, "Object.load": obj.load,
        "Object.find_program_by_name": lambda: obj.find_program_by_name("on_getpid"),
        "Object.find_map_by_name": lambda: obj.find_map_by_name("hits"),
        "Object.find_map_fd_by_name": lambda: obj.find_map_fd_by_name("hits"),
        "Object.pin_maps": lambda: obj.pin_maps("/sys/fs/bpf/x"),
        "Object.unpin_maps": lambda: obj.unpin_maps("/sys/fs/bpf/x"),
        "Object.pin_programs": lambda: obj.pin_programs("/sys/fs/bpf/x"),
        "Object.unpin_programs": lambda: obj.unpin_programs("/sys/fs/bpf/x"),
        "Object.kversion": lambda: obj.kversion, "Object.btf_fd": lambda: obj.btf_fd,
        "Object.global_data": lambda: obj.global_data(".bss"),
        "Program.name": lambda: prog.name, "Program.fd": lambda: prog.fd,
        "Program.type": lambda: prog.type, "Program.section_name": lambda: prog.section_name,
        "Program.insn_cnt": lambda: prog.insn_cnt, "Program.insns": lambda: prog.insns,
        "Program.autoload": lambda: prog.autoload, "Program.attach": prog.attach,
        "Program.attach_tracepoint": lambda: prog.attach_tracepoint("syscalls", "x"),
        "Program.set_autoload": lambda: prog.set_autoload(True),
        "Program.test_run": lambda: prog.test_run(b"\0" * 14),
        "Program.info": prog.info, "Program.pin": lambda: prog.pin("/sys/fs/bpf/x"),
        "Map.name": lambda: m.name, "Map.fd": lambda: m.fd, "Map.type": lambda: m.type,
        "Map.key_size": lambda: m.key_size, "Map.lookup": lambda: m.lookup(0),
        "Map.update": lambda: m.update(0, 0), "Map.delete": lambda: m.delete(0),
        "Map.keys": m.keys, "Map.items": m.items, "Map.get_next_key": m.get_next_key,
        "Map.set_max_entries": lambda: m.set_max_entries(2), "Map.info": m.info,
        "Map.lookup_batch": m.lookup_batch, "Map.pin": lambda: m.pin("/sys/fs/bpf/x"),
    }


@pytest.mark.parametrize("loaded", [False, True], ids=["open", "loaded"])
def test_every_method_of_a_closed_object_raises(minimal_o: Path, loaded: bool) -> None:
    obj = Object.open_file(minimal_o)
    if loaded:
        obj.load()
    calls = _public_calls(obj)
    obj.close()
    for name, call in calls.items():
        with pytest.raises(ClosedError, match="closed") as info:
            call()
        assert info.value.errno == 9, name


def test_closed_link_and_standalone_map_raise(minimal_o: Path) -> None:
    with Object.open_file(minimal_o) as obj:
        obj.load()
        link = obj.programs["on_getpid"].attach()
        link.destroy()
        link.destroy()
        for call in (lambda: link.fd, link.detach, lambda: link.pin("/sys/fs/bpf/x"),
                     link.unpin, link.disconnect, link.info, link.read,
                     lambda: link.update_program(obj.programs["on_getpid"])):
            with pytest.raises(ClosedError):
                call()
    m = Map.create(MapType.ARRAY, 4, 4, 1)
    m.close()
    for map_call in (lambda: m.fd, lambda: m[0], lambda: m.update(0, 0), m.keys, m.info):
        with pytest.raises(ClosedError):
            map_call()


def test_program_keeps_its_object_alive(minimal_o: Path) -> None:
    obj = Object.open_file(minimal_o)
    obj.load()
    prog = obj.programs["on_getpid"]
    hits = obj.maps["hits"]
    ref = weakref.ref(obj)
    del obj
    gc.collect()
    assert ref() is not None, "a Program must keep its Object alive"
    with prog.attach():
        for _ in range(5):
            os.getpid()
    assert int.from_bytes(hits[0], "little") == 5
    prog.object.close()


def test_link_outlives_its_object(minimal_o: Path) -> None:
    obj = Object.open_file(minimal_o)
    obj.load()
    link = obj.programs["on_getpid"].attach()
    map_id = obj.maps["hits"].info().id
    obj.close()
    with Map.from_id(map_id) as hits:
        before = int.from_bytes(hits[0], "little")
        for _ in range(7):
            os.getpid()
        assert int.from_bytes(hits[0], "little") == before + 7
        link.destroy()
        for _ in range(7):
            os.getpid()
        assert int.from_bytes(hits[0], "little") == before + 7


def test_garbage_collected_handles_warn(minimal_o: Path) -> None:
    def leak_object() -> None:
        Object.open_file(minimal_o)

    with pytest.warns(ResourceWarning, match="BPF object 'minimal' was not closed"):
        leak_object()
        gc.collect()

    def leak_map() -> None:
        Map.create(MapType.ARRAY, 4, 4, 1, name="leaky")

    with pytest.warns(ResourceWarning, match="map 'leaky'"):
        leak_map()
        gc.collect()


def test_no_fd_leaks_over_thousands_of_objects(minimal_o: Path) -> None:
    rejected = compile_bpf("rejected.bpf.c").read_bytes()
    data = minimal_o.read_bytes()
    gc.collect()
    before = fd_count()
    for i in range(rounds(2000, 200)):
        with Object.open_mem(data) as obj:
            obj.load()
            if i % 10 == 0:
                obj.programs["on_getpid"].attach().destroy()
        if i % 50 == 0:
            with Object.open_mem(rejected) as bad:
                with pytest.raises(BpfError):
                    bad.load()
            with pytest.raises(BpfError):
                Object.open_mem(b"\x7fELF" + b"\1" * 100)
    gc.collect()
    assert fd_count() == before

