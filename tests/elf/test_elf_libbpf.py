"""Programs, maps and section-name rules agree with what libbpf 1.1 reports after open."""

from __future__ import annotations

import subprocess

import pytest

from pylibbpf.elf import ObjectFile, ProgType, find_section_def
from pylibbpf.elf.sections import SECTION_DEFS
from tests.support import features
from tests.support.elf_objects import (
    all_objects,
    libbpf_dump_tool,
    libbpf_types,
    libbpf_view,
    own_objects,
)

OBJECTS = all_objects()


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_programs_and_maps_match_libbpf(name: str) -> None:
    path = OBJECTS[name]
    ours = ObjectFile.from_path(path)
    ref = libbpf_view(path)
    if ref[0]["kind"] == "error":
        # libbpf 1.x refuses legacy maps (EOPNOTSUPP); we must have said why.
        assert ref[0]["errno"] == 95
        assert any("legacy map" in w for w in ours.warnings)
        return
    obj = ref[0]
    assert obj["name"] == ours.name
    progs = [r for r in ref if r["kind"] == "program"]
    assert [(p.name, p.section_name, p.sec_insn_cnt) for p in ours.programs] == \
        [(r["name"], r["section"], r["insn_cnt"]) for r in progs]
    # pylibbpf.elf names types by libbpf 1.1's section table; a newer libbpf knows sections
    # 1.1 does not (uprobe.multi and netfilter in 1.3, kprobe.session in 1.5): for those,
    # 1.1's answer is UNSPEC, and the comparison holds for every section 1.1 knows
    newer = (features.libbpf_loaded()[0] or (1, 1)) > (1, 1)
    for p, r in zip(ours.programs, progs, strict=True):
        if newer and find_section_def(p.section_name) is None:
            assert (int(p.prog_type), int(p.expected_attach_type)) == (0, 0), p.section_name
            continue
        # for a struct_ops program libbpf 1.1 keeps the index of the member it fills there
        # at open (a newer one may set it only at load)
        attach = p.struct_ops_member if p.struct_ops_member is not None \
            else int(p.expected_attach_type)
        if newer and p.struct_ops_member is not None and r["attach"] == 0:
            attach = 0
        assert (int(p.prog_type), attach) == (r["type"], r["attach"]), p.section_name
    maps = [r for r in ref if r["kind"] == "map"]
    assert [(m.name, m.type, m.key_size, m.value_size, m.max_entries, m.map_flags,
             m.numa_node, f"{m.name}.inner" if m.inner else None) for m in ours.maps] == \
        [(r["name"], r["type"], r["key_size"], r["value_size"], r["max_entries"],
          r["map_flags"], r["numa_node"], r["inner"]) for r in maps]
    assert not ours.warnings


def test_legacy_object_is_described() -> None:
    obj = ObjectFile.from_path(own_objects()["elf_legacy"])
    assert [(m.name, m.type_name, m.key_size, m.value_size, m.max_entries, m.map_flags)
            for m in obj.maps] == [("my_map", "array", 4, 8, 64, 0),
                                   ("my_hash", "hash", 8, 16, 128, 1)]
    assert obj.kern_version == 0x060100
    assert obj.license == "GPL"
    (prog,) = obj.programs
    assert [(r.kind.value, r.map_name) for r in prog.relocations] == [("map", "my_map")]


def test_object_without_btf() -> None:
    obj = ObjectFile.from_path(own_objects()["elf_nobtf"])
    assert not obj.has_btf and not obj.has_btf_ext
    (prog,) = obj.programs
    assert prog.subprograms == ["twice"]
    assert obj.maps[0].variables[0].name == "hits"


def test_subprograms_and_relocations() -> None:
    obj = ObjectFile.from_path(own_objects()["elf_progs"])
    assert obj.program("tp_two").subprograms == ["nested", "global_helper", "bump"]
    assert obj.program("tp_one").subprograms == ["bump"]
    assert obj.program("global_helper").is_subprog and obj.program("global_helper").is_global
    assert not obj.program("bump").is_global
    kinds = {(r.kind.value, r.target) for r in obj.program("bump").relocations}
    assert kinds == {("map", None)}
    text = ObjectFile.from_path(own_objects()["elf_text"])
    (loop,) = text.programs
    assert [(r.kind.value, r.target) for r in loop.relocations] == [("subprog_addr", "cb")]
    assert loop.subprograms == ["cb"]


def test_data_variables_and_externs() -> None:
    obj = ObjectFile.from_path(own_objects()["elf_data"])
    data = obj.map("elf_data.data")
    assert [(v.name, v.offset, v.size) for v in data.variables][:2] == \
        [("counter", 0, 4), ("totals", 8, 32)]
    assert obj.map(".data.custom").variables[0].name == "custom_data"
    assert {e.name: e.kind for e in obj.externs} == {
        "CONFIG_HZ": "kconfig", "LINUX_KERNEL_VERSION": "kconfig", "bpf_prog_active": "ksym"}
    outer = obj.map("outer")
    assert outer.inner is not None and outer.inner.max_entries == 4
    assert outer.init_slots == {0: "inner_a", 1: "inner_b"}
    assert obj.map("pinned_hash").pinning == 1
    kinds = {r.kind.value for r in obj.programs[0].relocations}
    assert kinds == {"map", "data", "kconfig", "ksym"}


def _names_to_try() -> list[str]:
    names = set()
    for d in SECTION_DEFS:
        stem = d.pattern.rstrip("+")
        names.update({stem, stem + "/x", stem + "x", stem + ".s", stem + "/"})
    names.update({"", "foo", "tp", "kprobe.multi/a*", "xdp.frags/devmap", "cgroup/sockx"})
    return sorted(n for n in names if "\n" not in n)


# Sections libbpf gained after 1.1 (whose table pylibbpf.elf copies) that the names below reach,
# with the (program type, attach type) libbpf gives them; all are in libbpf 1.3 and newer.
NEWER_SECTIONS = {"struct_ops.s": (int(ProgType.STRUCT_OPS), 0),
                  "usdt.s": (int(ProgType.KPROBE), 0)}


def _libbpf_version() -> tuple[int, int]:
    """The version of the libbpf that libbpf_dump runs with (the system's libbpf.so.1; not
    necessarily the one this process loaded: a libbpf tier points pylibbpf at another)."""
    out = subprocess.run([str(libbpf_dump_tool()), "--version"], capture_output=True,
                         text=True, check=True)
    major, minor = out.stdout.split(".")
    return int(major), int(minor)


def test_section_rules_match_libbpf() -> None:
    names = _names_to_try()
    ref = libbpf_types(names)
    version = _libbpf_version()
    compared = 0
    newer = set()
    for name, r in zip(names, ref, strict=True):
        ours = find_section_def(name)
        if r["err"] != 0:
            assert ours is None, name
            continue
        if ours is None and version > (1, 1) and name in NEWER_SECTIONS:
            assert (r["type"], r["attach"]) == NEWER_SECTIONS[name], name
            newer.add(name)
            continue
        assert ours is not None, name
        assert (int(ours.prog_type), int(ours.attach_type)) == (r["type"], r["attach"]), name
        compared += 1
    assert compared > 100
    if version >= (1, 3):
        assert newer == set(NEWER_SECTIONS)
    assert find_section_def("uprobe.s/lib:fn").sleepable  # type: ignore[union-attr]
    assert find_section_def("nonsense") is None
    assert int(ProgType.UNSPEC) == 0
