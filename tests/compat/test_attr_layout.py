"""The ctypes codecs of compat.attr match the legacy header's layout as gcc lays it out."""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import pytest

import compat
from compat import attr
from tests.support.bpfbuild import compile_c

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def c_layout() -> dict[str, tuple[int, int]]:
    exe = compile_c(HERE / "layout_probe.c", cflags=(f"-I{HERE}",))
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    table = {}
    for line in out.splitlines():
        name, offset, size = line.split()
        table[name] = (int(offset), int(size))
    return table


VARIANTS = {
    "map_create": attr.MapCreateAttr,
    "map_elem": attr.MapElemAttr,
    "prog_load_ex": attr.ProgLoadExAttr,
    "rcore_attach": attr.RcoreAttachAttr,
    "zcore_attach": attr.ZcoreAttachAttr,
    "entry": attr.BpfMapFdEntryStruct,
}


def test_union_size_and_alignment(c_layout: dict[str, tuple[int, int]]) -> None:
    assert ctypes.sizeof(attr.LegacyBpfAttr) == c_layout["sizeof_attr"][1] == 32
    assert ctypes.alignment(attr.LegacyBpfAttr) == c_layout["alignof_attr"][1] == 8
    assert ctypes.sizeof(attr.BpfMapFdEntryStruct) == c_layout["sizeof_entry"][1] == 16


def test_every_field_matches_gcc(c_layout: dict[str, tuple[int, int]]) -> None:
    checked = 0
    for label, (offset, size) in c_layout.items():
        variant, _, field = label.partition(".")
        if not field:
            continue
        cls = VARIANTS[variant]
        if field == "next_key":
            field = "value"  # the same slot, exposed as a property
        descriptor = getattr(cls, field)
        assert (descriptor.offset, descriptor.size) == (offset, size), label
        checked += 1
    assert checked == 20


def test_variants_fit_the_union() -> None:
    for cls in VARIANTS.values():
        assert ctypes.sizeof(cls) <= 32
    u = attr.LegacyBpfAttr()
    u.map_elem.map_fd = 7
    u.map_elem.key = 0x1122334455667788
    assert bytes(u)[:4] == (7).to_bytes(4, "little")
    assert u.prog_load_ex.prog & 0xFFFFFFFF == 7
    assert attr.attr_bytes(u) == bytes(u)
    entry = compat.BpfMapFdEntryStruct(name=0x1000, fd=3)
    assert bytes(entry) == (0x1000).to_bytes(8, "little") + (3).to_bytes(4, "little") + bytes(4)


def test_next_key_alias() -> None:
    a = attr.MapElemAttr()
    a.next_key = 0xABC
    assert a.value == 0xABC and a.next_key == 0xABC
