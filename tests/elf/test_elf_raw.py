"""``read_elf``: the raw symbols and relocation entries, compared with llvm-readelf, for BPF
objects libbpf opens, legacy ones it refuses, and (``strict=False``) other machines and ELF32."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pylibbpf.elf import EM_BPF, R_BPF_64_64, ElfError, ObjectFile, RawElf, read_elf
from tests.support.bpfbuild import compile_bpf
from tests.support.elf_objects import all_objects

READELF = shutil.which("llvm-readelf")
pytestmark = pytest.mark.skipif(READELF is None, reason="llvm-readelf is not installed")
LEGACY_SRC = Path(__file__).parent / "legacy" / "extern_fd.c"
STT = {"NOTYPE": 0, "OBJECT": 1, "FUNC": 2, "SECTION": 3, "FILE": 4}
STB = {"LOCAL": 0, "GLOBAL": 1, "WEAK": 2}
SHN = {"UND": 0, "ABS": 0xFFF1, "COM": 0xFFF2}


def _readelf(path: Path) -> tuple[list[tuple[int, int, int, int, int, int, str]],
                                  dict[str, list[tuple[int, int, int]]]]:
    """llvm-readelf's symbols (num, value, size, type, bind, shndx, name) and, per
    relocation section, its entries (offset, symbol index, type)."""
    assert READELF is not None
    out = subprocess.run([READELF, "-s", "-r", "--wide", str(path)], check=True,
                         capture_output=True, text=True).stdout
    symbols = []
    rels: dict[str, list[tuple[int, int, int]]] = {}
    current: str | None = None
    wide = True
    for line in out.splitlines():
        m = re.match(r"Relocation section '([^']+)'", line)
        if m:
            current = m.group(1)
            rels[current] = []
            continue
        if line.startswith("Symbol table"):
            current = None
            continue
        m = re.match(r"\s*(\d+): ([0-9a-f]+)\s+(\d+) (\w+)\s+(\w+)\s+\w+\s+(\w+) ?(.*)$", line)
        if m and current is None:
            num, value, size, typ, bind, ndx, name = m.groups()
            shndx = SHN[ndx] if ndx in SHN else int(ndx)
            symbols.append((int(num), int(value, 16), int(size), STT[typ], STB[bind], shndx,
                            name))
            continue
        m = re.match(r"([0-9a-f]{8,16})\s+([0-9a-f]{8,16})\s+\S+", line)
        if m and current is not None:
            offset, info = int(m.group(1), 16), int(m.group(2), 16)
            wide = len(m.group(2)) == 16
            sym, typ = (info >> 32, info & 0xFFFFFFFF) if wide else (info >> 8, info & 0xFF)
            rels[current].append((offset, sym, typ))
    return symbols, rels


def _ours(raw: RawElf) -> tuple[list[tuple[int, int, int, int, int, int, str]],
                                dict[str, list[tuple[int, int, int]]]]:
    symbols = [(s.index, s.value, s.size, s.type, s.bind, s.shndx,
                s.name if s.type != 3 else raw.sections[s.shndx].name) for s in raw.symbols]
    rels = {sec.name: [(r.offset, r.sym, r.type) for r in raw.rels(sec)]
            for sec in raw.rel_sections()}
    return symbols, rels


def _compare(path: Path, raw: RawElf) -> None:
    theirs_syms, theirs_rels = _readelf(path)
    ours_syms, ours_rels = _ours(raw)
    assert ours_syms == theirs_syms
    # SHT_RELA sections (.rela*, x86) are not SHT_REL: rel_sections() leaves them out
    assert {k: v for k, v in ours_rels.items() if v} == {
        k: v for k, v in theirs_rels.items() if v and not k.startswith(".rela")}


@pytest.mark.parametrize("name", sorted(all_objects()))
def test_symbols_and_relocations_match_readelf(name: str) -> None:
    path = all_objects()[name]
    obj = ObjectFile.from_path(path)
    _compare(path, obj.raw)
    assert read_elf(path.read_bytes(), strict=False).symbols == obj.symbols


def test_legacy_extern_fd_object() -> None:
    """The latte-c idiom: undefined ``extern int`` map fds, no BTF, no SEC() names."""
    path = compile_bpf(LEGACY_SRC, btf=False)
    raw = read_elf(path.read_bytes(), strict=False)
    _compare(path, raw)
    assert raw.machine == EM_BPF and raw.elf_class == 64
    text = raw.section_by_name(".text")
    assert text is not None and raw.section_by_name(".BTF") is None
    externs = {s.index: s.name for s in raw.symbols if s.shndx == 0 and s.name}
    assert set(externs.values()) == {"map_fd", "other_fd"}
    (rel_text,) = [s for s in raw.rel_sections() if s.name == ".rel.text"]
    assert rel_text.info == text.index and rel_text.link == raw.symtab_index
    against = [(r.offset // 8, externs[r.sym]) for r in raw.rels(rel_text)
               if r.type == R_BPF_64_64 and r.sym in externs]
    # every relocation against an extern fd is the first slot of an ld_imm64
    from pylibbpf.elf import decode_one

    for slot, _name in against:
        assert decode_one(text.data, slot * 8).is_wide
    assert sorted(n for _s, n in against) == ["map_fd", "other_fd"]


@pytest.mark.parametrize("target, machine, elf_class", [
    ("i386-linux-gnu", 3, 32),       # ELF32, SHT_REL
    ("x86_64-linux-gnu", 62, 64),    # SHT_RELA (no rel_sections)
])
def test_lenient_reads_other_machines(tmp_path: Path, target: str, machine: int,
                                      elf_class: int) -> None:
    out = tmp_path / "x.o"
    try:
        subprocess.run(["clang", f"--target={target}", "-O1", "-c", str(LEGACY_SRC), "-o",
                        str(out)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"clang cannot build for {target}: {exc}")
    data = out.read_bytes()
    with pytest.raises(ElfError, match="ELF64" if elf_class == 32 else "not EM_BPF"):
        read_elf(data)
    raw = read_elf(data, strict=False)
    assert (raw.machine, raw.elf_class, raw.elf_type) == (machine, elf_class, 1)
    _compare(out, raw)
    assert (len(raw.rel_sections()) > 0) == (elf_class == 32)


def test_lenient_header_rules() -> None:
    path = compile_bpf(LEGACY_SRC, btf=False)
    good = path.read_bytes()
    no_sections = good[:60] + b"\0\0" + good[62:]          # e_shnum = 0
    with pytest.raises(ElfError, match="no section headers"):
        read_elf(no_sections)
    raw = read_elf(no_sections, strict=False)
    assert raw.sections == [] and raw.symbols == [] and raw.symtab_index == -1
    exec_type = good[:16] + b"\2\0" + good[18:]              # e_type = ET_EXEC
    with pytest.raises(ElfError, match="ET_REL"):
        read_elf(exec_type)
    assert read_elf(exec_type, strict=False).elf_type == 2
    for bad, message in [(b"\x7fELF" + bytes(60), "class 0"), (good[:40], "shorter"),
                         (good[:-64], "past the end")]:
        with pytest.raises(ElfError, match=message):
            read_elf(bad, strict=False)


def test_rels_checks_its_section() -> None:
    raw = read_elf(compile_bpf(LEGACY_SRC, btf=False).read_bytes(), strict=False)
    text = raw.section_by_name(".text")
    assert text is not None
    with pytest.raises(ElfError, match="not SHT_REL"):
        raw.rels(text)
    (rel,) = [s for s in raw.rel_sections() if s.name == ".rel.text"]
    from dataclasses import replace

    with pytest.raises(ElfError, match="multiple of 16"):
        raw.rels(replace(rel, data=rel.data[:-1]))


def test_lenient_tolerates_damage_nobody_reads() -> None:
    """Like pyelftools' lazy reading: a broken name or an over-long section the caller never
    looks at does not hide the rest (strict mode refuses both)."""
    good = compile_bpf(LEGACY_SRC, btf=False).read_bytes()
    raw = read_elf(good, strict=False)
    symtab = raw.sections[raw.symtab_index]
    victim = next(s for s in raw.symbols if s.name == "prog")
    bad = bytearray(good)
    struct_pos = symtab.offset + victim.index * 24
    bad[struct_pos:struct_pos + 4] = (0xFFFFFF).to_bytes(4, "little")   # st_name far away
    with pytest.raises(ElfError, match="outside its string table"):
        read_elf(bytes(bad))
    damaged = read_elf(bytes(bad), strict=False)
    assert damaged.symbols[victim.index].name == ""
    assert [s.name for s in damaged.symbols if s.index != victim.index] == \
        [s.name for s in raw.symbols if s.index != victim.index]
    last = max(raw.sections, key=lambda s: s.offset + s.size if s.type != 8 else 0)
    e_shoff = int.from_bytes(good[40:48], "little")
    shdr = e_shoff + last.index * 64
    bad = bytearray(good)
    bad[shdr + 32:shdr + 40] = (last.size + 4096).to_bytes(8, "little")  # sh_size too big
    with pytest.raises(ElfError, match="past the end"):
        read_elf(bytes(bad))
    longer = read_elf(bytes(bad), strict=False)
    assert longer.sections[last.index].data.startswith(last.data)
    assert longer.section_by_name(".text") == raw.section_by_name(".text")
