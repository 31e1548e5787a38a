"""Object: open, configure, load, find, pin, close; checked against the kernel and bpftool.

``counters.bpf.c`` has tracepoint, raw_tp and tp_btf programs: each test loads only the ones it
uses (``autoload_only``) and marks what they need, so a kernel without BTF, or one whose policy
refuses a type, costs only the tests of that type.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

import pylibbpf
from pylibbpf import BpfError, MapType, Object, ProgType, StateError
from tests.support.attach import autoload_only
from tests.support.bpfbuild import compile_bpf

pytestmark = pytest.mark.kernel

COUNTERS_PROGRAMS = ["count_getpid", "count_getppid", "count_raw_enter", "BPF_PROG_count_btf"]
COUNTERS_MAPS = ["counts", "by_pid", "percpu", "percpu_hash", "lru", "counters.rodata",
                 "counters.bss", "counters.data", ".data.custom"]
# the programs of counters.bpf.c by type, each with the kernel feature it needs
BY_TYPE = [
    pytest.param(("count_getpid", "count_getppid"), marks=pytest.mark.needs("tracepoint"),
                 id="tracepoint"),
    pytest.param(("count_raw_enter",), marks=pytest.mark.needs("raw_tp"), id="raw_tp"),
    pytest.param(("BPF_PROG_count_btf",), marks=pytest.mark.needs("tp_btf"), id="tp_btf"),
]


def bpftool(*args: str) -> object:
    out = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_open_file_lists_programs_and_maps_in_elf_order(counters_o: Path) -> None:
    with Object.open_file(counters_o) as obj:
        assert obj.name == "counters"
        assert list(obj.programs) == COUNTERS_PROGRAMS
        assert list(obj.maps) == COUNTERS_MAPS
        assert obj.path == counters_o
        assert not obj.loaded
        assert obj.programs["count_getpid"].section_name == "tp/syscalls/sys_enter_getpid"
        assert obj.programs["count_raw_enter"].type == ProgType.RAW_TRACEPOINT
        assert obj.programs["BPF_PROG_count_btf"].type == ProgType.TRACING
        counts = obj.maps["counts"]
        assert (counts.type, counts.key_size, counts.value_size, counts.max_entries) == (
            MapType.ARRAY, 4, 8, 4)
        assert obj.maps["counters.bss"].is_internal
        assert not counts.is_internal


def test_programs_and_maps_are_read_only_mappings(counters_o: Path) -> None:
    with Object.open_file(counters_o) as obj:
        with pytest.raises(TypeError):
            obj.programs["x"] = obj.programs["count_getpid"]  # type: ignore[index]
        with pytest.raises(TypeError):
            del obj.maps["counts"]  # type: ignore[attr-defined]


@pytest.mark.needs("tracepoint")
def test_open_mem_equals_open_file(counters_o: Path, request: pytest.FixtureRequest) -> None:
    data = counters_o.read_bytes()
    with Object.open_mem(data, object_name="from_memory") as obj:
        assert obj.name == "from_memory"
        assert obj.path is None
        assert list(obj.programs) == COUNTERS_PROGRAMS
        assert obj.elf_bytes() == data
        autoload_only(obj, ["count_getpid"], request)
        obj.load()
        assert obj.programs["count_getpid"].fd > 0


def test_object_name_option_renames_internal_maps(counters_o: Path) -> None:
    with Object.open_file(counters_o, object_name="renamed") as obj:
        assert obj.name == "renamed"
        assert "renamed.bss" in obj.maps


@pytest.mark.parametrize("programs", BY_TYPE)
def test_load_in_place_matches_kernel_and_bpftool(counters_o: Path, programs: tuple[str, ...],
                                                  request: pytest.FixtureRequest) -> None:
    with Object.open_file(counters_o) as obj:
        autoload_only(obj, programs, request)
        assert obj.load() is obj
        assert obj.loaded
        for prog in (obj.programs[name] for name in programs):
            info = prog.info()
            shown = bpftool("prog", "show", "id", str(info.id))
            assert isinstance(shown, dict)
            assert shown["name"] == prog.name and info.name == prog.name[:15]
            assert shown["tag"] == info.tag
            assert info.type == prog.type
            assert info.xlated_prog_len == len(info.xlated_insns) > 0
            assert info.jited_prog_len == len(info.jited_insns) > 0
            text = info.disassemble().splitlines()
            assert text[-1].endswith("exit")
            last_slot = int(text[-1].split(":")[0])
            assert last_slot == info.xlated_prog_len // 8 - 1
        for name in ("counts", "by_pid", "lru"):
            m = obj.maps[name]
            shown = bpftool("map", "show", "id", str(m.info().id))
            assert isinstance(shown, dict)
            assert (shown["name"], shown["bytes_key"], shown["bytes_value"],
                    shown["max_entries"]) == (name, m.key_size, m.value_size, m.max_entries)
            assert obj.find_map_fd_by_name(name) == m.fd


def test_find_by_name(counters_o: Path) -> None:
    with Object.open_file(counters_o) as obj:
        assert obj.find_program_by_name("count_getppid") is obj.programs["count_getppid"]
        assert obj.find_map_by_name("lru") is obj.maps["lru"]
        assert obj.find_map_by_name(".bss") is obj.maps["counters.bss"]
        with pytest.raises(KeyError, match="it has: count_getpid"):
            obj.find_program_by_name("nope")
        with pytest.raises(KeyError, match="no map 'nope'.*counts"):
            obj.find_map_by_name("nope")
        with pytest.raises(StateError, match="before load"):
            obj.find_map_fd_by_name("counts")


def test_preload_configuration_reaches_the_kernel(counters_o: Path) -> None:
    with Object.open_file(counters_o) as obj:
        autoload_only(obj, [])  # maps only: no program type this kernel might refuse
        obj.maps["by_pid"].set_max_entries(77)
        obj.maps["by_pid"].set_map_flags(pylibbpf.MapFlags.NO_PREALLOC)
        obj.maps["lru"].set_value_size(16)
        obj.programs["count_getppid"].set_autoload(False)
        assert not obj.programs["count_getppid"].autoload
        obj.load()
        info = obj.maps["by_pid"].info()
        assert info.max_entries == 77
        assert info.map_flags & pylibbpf.MapFlags.NO_PREALLOC
        assert obj.maps["lru"].info().value_size == 16
        with pytest.raises(StateError, match="not loaded"):
            _ = obj.programs["count_getppid"].fd


@pytest.mark.needs("tracepoint")
def test_preload_setters_raise_after_load(counters_o: Path,
                                          request: pytest.FixtureRequest) -> None:
    with Object.open_file(counters_o) as obj:
        autoload_only(obj, ["count_getpid"], request)
        obj.load()
        prog = obj.programs["count_getpid"]
        m = obj.maps["by_pid"]
        setters: list[Callable[[], object]] = [
            lambda: prog.set_autoload(False), lambda: prog.set_type(ProgType.KPROBE),
            lambda: prog.set_expected_attach_type(pylibbpf.AttachType.TRACE_FENTRY),
            lambda: prog.set_attach_target("foo"), lambda: prog.set_log_level(1),
            lambda: prog.set_log_buf(100), lambda: prog.set_flags(0),
            lambda: prog.set_insns(b"\0" * 8),
            lambda: m.set_max_entries(1), lambda: m.set_key_size(8), lambda: m.set_value_size(8),
            lambda: m.set_map_flags(0), lambda: m.set_type(MapType.HASH),
            lambda: m.set_pin_path("/sys/fs/bpf/x"), lambda: m.reuse_fd(0),
            lambda: m.set_initial_value(b""), lambda: m.set_numa_node(0),
            lambda: m.set_autocreate(False), lambda: m.set_inner_map_fd(0),
        ]
        for setter in setters:
            with pytest.raises(StateError, match="only be changed before load") as info:
                setter()
            assert info.value.errno == errno.EBUSY
        with pytest.raises(StateError, match="already loaded"):
            obj.load()


@pytest.mark.needs("tracepoint")
def test_reuse_fd_shares_a_map(counters_o: Path, request: pytest.FixtureRequest) -> None:
    with pylibbpf.Map.create(MapType.ARRAY, 4, 8, 4, name="shared") as shared:
        with Object.open_file(counters_o) as obj:
            autoload_only(obj, ["count_getpid"], request)
            obj.maps["counts"].reuse_fd(shared.fd)
            obj.rodata["target_pid"] = os.getpid()
            obj.load()
            assert obj.maps["counts"].info().id == shared.info().id
            link = obj.programs["count_getpid"].attach()
            for _ in range(25):
                os.getpid()
            link.destroy()
        assert int.from_bytes(shared[0], "little") == 25


def test_kconfig_and_kernel_version_externs() -> None:
    with Object.open_file(compile_bpf("kconfig.bpf.c"),
                          kconfig="CONFIG_PYLIBBPF_TEST_NUMBER=42") as obj:
        obj.load()
        with obj.programs["read_kconfig"].attach():
            os.getpid()
        major, minor = (int(x) for x in platform.release().split(".")[:2])
        version = obj.bss.get_int("seen_version")
        assert version >> 16 == major and (version >> 8) & 0xFF == minor
        assert obj.data.get_int("seen_number", signed=True) == 42
        assert obj.bss.get_int("seen_bpf_syscall") == 1


@pytest.mark.needs("tp_btf")
def test_btf_custom_path(counters_o: Path, request: pytest.FixtureRequest) -> None:
    # the tp_btf program is what makes libbpf read the kernel's BTF (from the custom path)
    with Object.open_file(counters_o, btf_custom_path="/sys/kernel/btf/vmlinux") as obj:
        autoload_only(obj, ["BPF_PROG_count_btf"], request)
        obj.load()
        assert obj.programs["BPF_PROG_count_btf"].fd > 0
    with Object.open_file(counters_o, btf_custom_path="/nonexistent/vmlinux") as obj:
        autoload_only(obj, ["BPF_PROG_count_btf"], request)
        with pytest.raises(BpfError) as info:
            obj.load()
        assert info.value.errno == errno.ENOENT


@pytest.mark.needs("tracepoint")
def test_kernel_log_buffer_receives_the_verifier_log(counters_o: Path,
                                                     request: pytest.FixtureRequest) -> None:
    with Object.open_file(counters_o, kernel_log_level=1, kernel_log_buf=1 << 20) as obj:
        autoload_only(obj, ["count_getpid"], request)
        obj.load()
        assert "processed" in obj.kernel_log
    buf = bytearray(1 << 20)
    with Object.open_file(counters_o, kernel_log_level=1, kernel_log_buf=buf) as obj:
        autoload_only(obj, ["count_getpid"], request)
        obj.load()
        assert b"processed" in buf


def test_program_log_buffer() -> None:
    with Object.open_file(compile_bpf("minimal.bpf.c")) as obj:
        prog = obj.programs["on_getpid"]
        prog.set_log_level(1)
        prog.set_log_buf(1 << 16)
        assert prog.log_level == 1
        obj.load()
        assert "processed" in prog.log_buf


def test_pin_maps(counters_o: Path) -> None:
    root = Path("/sys/fs/bpf") / f"pylibbpf-test-{os.getpid()}"
    root.mkdir()
    with Object.open_file(counters_o) as obj:
        autoload_only(obj, [])  # maps only: no program type this kernel might refuse
        obj.load()
        with pytest.raises(BpfError):
            obj.pin_maps("/nonexistent-dir/maps")
        obj.pin_maps(root / "maps")
        try:
            assert (root / "maps" / "counts").exists()
            pinned = pylibbpf.Map.from_pinned(root / "maps" / "counts")
            with pinned:
                assert pinned.info().id == obj.maps["counts"].info().id
        finally:
            obj.unpin_maps(root / "maps")
            if (root / "maps").exists():
                os.rmdir(root / "maps")
            if root.exists():
                os.rmdir(root)
        assert not (root / "maps" / "counts").exists()


# libbpf pins every program of the object (one not loaded is EINVAL): all of them load here
@pytest.mark.needs("tracepoint", "raw_tp", "tp_btf")
def test_pin_programs(counters_o: Path, request: pytest.FixtureRequest) -> None:
    root = Path("/sys/fs/bpf") / f"pylibbpf-test-{os.getpid()}"
    root.mkdir()
    with Object.open_file(counters_o) as obj:
        autoload_only(obj, COUNTERS_PROGRAMS, request)
        obj.load()
        obj.pin_programs(root / "progs")
        try:
            assert (root / "progs" / "count_getpid").exists()
        finally:
            obj.unpin_programs(root / "progs")
            if (root / "progs").exists():
                os.rmdir(root / "progs")
            if root.exists():
                os.rmdir(root)
        assert not (root / "progs" / "count_getpid").exists()


def test_pin_by_name_shares_a_map_between_objects() -> None:
    root = Path("/sys/fs/bpf") / f"pylibbpf-pinroot-{os.getpid()}"
    root.mkdir()
    path = compile_bpf("pinned.bpf.c")
    try:
        with Object.open_file(path, pin_root_path=root) as first:
            first.load()
            assert first.maps["shared_counts"].is_pinned
            assert (root / "shared_counts").exists()
            with Object.open_file(path, pin_root_path=root) as second:
                second.load()
                assert (second.maps["shared_counts"].info().id
                        == first.maps["shared_counts"].info().id)
                with second.programs["bump"].attach():
                    for _ in range(10):
                        os.getpid()
                assert first.maps["shared_counts"][1] >= (10).to_bytes(8, "little")
            first.maps["shared_counts"].unpin()
    finally:
        for child in root.iterdir():
            child.unlink()
        root.rmdir()


@pytest.mark.parametrize("programs", BY_TYPE)
def test_every_program_type_reported_by_libbpf_matches_bpftool(
        counters_o: Path, programs: tuple[str, ...], request: pytest.FixtureRequest) -> None:
    with Object.open_file(counters_o) as obj:
        autoload_only(obj, programs, request)
        obj.load()
        progs = cast(list[dict[str, Any]], bpftool("prog", "show"))
        shown = {p["name"]: p["type"] for p in progs if p.get("name")}
        for prog in (obj.programs[name] for name in programs):
            expected = {ProgType.TRACEPOINT: "tracepoint", ProgType.RAW_TRACEPOINT:
                        "raw_tracepoint", ProgType.TRACING: "tracing"}[prog.type]  # type: ignore
            assert shown[prog.name] == expected
