"""BTF decoding and C printing agree with bpftool (libbpf's btf_dump)."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pylibbpf.elf import Btf, BtfKind, ElfError, ObjectFile
from tests.support.elf_objects import all_objects, own_objects, tool

OBJECTS = {k: v for k, v in all_objects().items() if k != "elf_nobtf"}
VMLINUX = Path("/sys/kernel/btf/vmlinux")
_PRINTED = (BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.TYPEDEF)


def _bpftool_blocks(path: Path) -> set[str]:
    out = subprocess.run([tool("bpftool"), "btf", "dump", "file", str(path), "format", "c"],
                         capture_output=True, text=True, check=True).stdout
    return {block.strip() for block in out.split("\n\n")}


def _with_enum_mode(t: Any, ours: str) -> set[str]:
    """``ours`` as a newer libbpf's btf_dump (Debian 13's bpftool 7.5 with libbpf 1.5) prints an
    enum whose size is not 4: with ``__attribute__((mode(byte)))`` (or ``word``...) after the
    closing brace, which format_c (libbpf 1.1's output, Debian 12) does not add; the rest of the
    definition must still be identical."""
    if t.kind not in (BtfKind.ENUM, BtfKind.ENUM64) or t.size == 4:
        return set()
    body = ours[:-1]
    return {f"{body} __attribute__((mode({mode})));" for mode in ("byte", "HI", "word", "SI")}


def _compare_c(btf: Btf, path: Path) -> int:
    blocks = _bpftool_blocks(path)
    names = Counter(t.name for t in btf.types if t.kind in _PRINTED and t.name)
    dups = {n for n, c in names.items() if c > 1}
    enumerators = Counter(v.name for t in btf.types for v in t.enum_values)
    compared = 0
    for t in btf.types:
        if t.name == "__builtin_va_list":
            continue  # a compiler built-in: btf_dump never defines it
        if t.kind not in _PRINTED or not t.name or names[t.name] > 1:
            continue  # bpftool renames duplicates (name___2)
        if any(enumerators[v.name] > 1 for v in t.enum_values):
            continue  # ...and duplicate enumerators
        keyword = {BtfKind.STRUCT: "struct", BtfKind.UNION: "union"}.get(t.kind)
        if keyword and f"{keyword} {t.name};" in blocks and not any(
                b.startswith(f"{keyword} {t.name} {{") for b in blocks):
            continue  # only forward-declared
        ours = btf.format_c(t) + ";"
        if ours not in blocks and set(re.findall(r"\w+", ours)) & dups:
            continue  # refers to a type bpftool renamed
        if ours not in blocks and _with_enum_mode(t, ours) & blocks:
            compared += 1
            continue
        assert ours in blocks, f"[{t.id}] {t.kind.name} {t.name}:\n{ours}"
        compared += 1
    return compared


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_c_printing_matches_bpftool(name: str) -> None:
    obj = ObjectFile.from_path(OBJECTS[name])
    assert obj.btf is not None
    assert _compare_c(obj.btf, OBJECTS[name]) > 0


def test_c_printing_of_kernel_btf() -> None:
    if not VMLINUX.exists() or not os.access(VMLINUX, os.R_OK):
        pytest.skip("no readable /sys/kernel/btf/vmlinux")
    btf = Btf.from_bytes(VMLINUX.read_bytes())
    assert _compare_c(btf, VMLINUX) > 5000


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_sizes_and_members_match_bpftool_json(name: str) -> None:
    obj = ObjectFile.from_path(OBJECTS[name])
    assert obj.btf is not None
    out = subprocess.run([tool("bpftool"), "-j", "btf", "dump", "file", str(OBJECTS[name])],
                         capture_output=True, text=True, check=True).stdout
    ref = json.loads(out)["types"]
    assert len(ref) == len(obj.btf) - 1
    for r in ref:
        t = obj.btf.type_by_id(r["id"])
        assert t.kind.name == r["kind"]
        assert (t.name or "(anon)") == r["name"]
        if "size" in r:
            assert t.size == r["size"]
            assert obj.btf.size_of(t) == r["size"]
        if "members" in r:
            assert [(m.name or "(anon)", m.type_id, m.bit_offset, m.bitfield_size)
                    for m in t.members] == \
                [(m["name"], m["type_id"], m["bits_offset"], m.get("bitfield_size", 0))
                 for m in r["members"]]
        if "values" in r:
            mask = (1 << (8 * (t.size or 8))) - 1  # bpftool sign-extends 32-bit values
            assert [(v.name, v.value & mask) for v in t.enum_values] == \
                [(v["name"], v["val"] & mask) for v in r["values"]]
        if "type_id" in r:
            ref_type = t.elem_type_id if t.kind == BtfKind.ARRAY else t.type_id
            assert ref_type == r["type_id"]


def test_api() -> None:
    obj = ObjectFile.from_path(own_objects()["elf_data"])
    btf = obj.btf
    assert btf is not None
    event = btf.find("event", BtfKind.STRUCT)
    assert event is not None and btf.size_of(event) == 32
    assert btf.member_offsets(event)[:3] == [("pid", 0, 0), ("flags", 32, 3), ("kind", 35, 5)]
    u32 = btf.find("u32")
    assert u32 is not None and btf.resolve(u32).name == "unsigned int"
    target_pid = btf.find("target_pid", BtfKind.VAR)
    assert target_pid is not None
    assert btf.type_name(target_pid.type_id or 0) == "volatile const u32"
    with pytest.raises(ElfError):
        btf.type_by_id(len(btf))


def _btf(kind: int) -> Btf:
    """[1] -> [2] -> [1], both of ``kind``."""
    strings = b"\0a\0b\0"
    types = struct.pack("<III", 1, kind << 24, 2) + struct.pack("<III", 3, kind << 24, 1)
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return Btf.from_bytes(hdr + types + strings)


def test_cyclic_btf_is_an_error() -> None:
    typedefs = _btf(BtfKind.TYPEDEF)
    consts = _btf(BtfKind.CONST)
    for call in (typedefs.resolve, typedefs.size_of, typedefs.align_of, consts.format_c,
                 consts.type_name, consts.size_of):
        with pytest.raises(ElfError):
            call(1)
    assert typedefs.format_c(1) == "typedef b a"
