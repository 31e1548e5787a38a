"""Linking an object's programs as libbpf does at open: each relocation classified (map, global
data, call, function address, extern) and each program's sub-programs collected."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ElfError
from .insn import Instruction
from .reader import (
    SHN_LORESERVE,
    SHN_UNDEF,
    STB_GLOBAL,
    STB_LOCAL,
    STB_WEAK,
    STT_FUNC,
    STT_NOTYPE,
    STT_SECTION,
    RawElf,
    Symbol,
)
from .relocs import Relocation, RelocKind

if TYPE_CHECKING:
    from .objectfile import ObjectFile
    from .program import Program

__all__ = ["Linker", "symbol_at", "symbol_name"]

DATA_KINDS = ("data", "rodata", "bss")


def symbol_name(raw: RawElf, sym: Symbol) -> str:
    """A symbol's name; a section symbol is named after its section."""
    if sym.type == STT_SECTION and sym.shndx < len(raw.sections):
        return raw.sections[sym.shndx].name
    return sym.name


def symbol_at(raw: RawElf, index: int, where: str) -> Symbol:
    """The symbol a relocation of ``where`` refers to, checked."""
    if not 0 <= index < len(raw.symbols):
        raise ElfError(f"{where}: relocation refers to missing symbol {index}")
    return raw.symbols[index]


class Linker:
    """Fills in the relocations and sub-programs of an :class:`ObjectFile` being parsed,
    whose programs, externs and maps are known."""

    def __init__(self, obj: ObjectFile) -> None:
        self._raw = obj.raw
        self._sec_kind = obj._sec_kind
        self._text_shndx = obj._text_shndx
        self.programs_all = obj.programs_all
        self.externs = obj.externs
        self.maps = obj.maps
        self.warnings = obj.warnings

    def collect_relocations(self) -> None:
        """Each program's relocations, classified as libbpf's ``bpf_program__record_reloc``."""
        by_section: dict[int, list[Program]] = {}
        for p in self.programs_all:
            by_section.setdefault(p.section_index, []).append(p)
        for rel in self._raw.sections:
            if rel.type != 9 or self._sec_kind.get(rel.info) != "prog":
                continue
            target = self._raw.sections[rel.info]
            for n, r in enumerate(self._raw.rels(rel)):
                if r.offset % 8:
                    raise ElfError(f"{rel.name}: relocation #{n} at unaligned offset {r.offset}")
                slot = r.offset // 8
                prog = next((p for p in by_section.get(target.index, ())
                             if p.sec_insn_off <= slot < p.sec_insn_off + p.sec_insn_cnt), None)
                if prog is None:
                    self.warnings.append(f"{rel.name}: relocation #{n} at insn {slot} is "
                                         "outside every program")
                    continue
                sym = symbol_at(self._raw, r.sym, rel.name)
                prog.relocations.append(self._classify_reloc(prog, slot, sym, rel.name, n))

    def _insn_at(self, prog: Program, slot: int) -> Instruction:
        pos = 0
        for insn in prog.instructions:
            if pos == slot:
                return insn
            if pos > slot:
                break
            pos += insn.slots
        raise ElfError(f"program '{prog.name}': relocation at insn {slot} is not on an "
                       "instruction boundary")

    def _classify_reloc(self, prog: Program, sec_slot: int, sym: Symbol, rel_name: str,
                        n: int) -> Relocation:
        idx = sec_slot - prog.sec_insn_off
        insn = self._insn_at(prog, idx)
        name = symbol_name(self._raw, sym)
        where = f"{rel_name}: relocation #{n} against '{name}'"
        if not insn.is_call and not insn.is_wide:
            raise ElfError(f"{where}: insn {idx} (code {insn.code:#04x}) is neither a call "
                           "nor ld_imm64")
        if sym.shndx == SHN_UNDEF and sym.bind in (STB_GLOBAL, STB_WEAK) and \
                sym.type == STT_NOTYPE:
            ext = next((e for e in self.externs if e.name == sym.name), None)
            kind = ext.kind if ext else "undefined"
            if insn.is_call:
                rk = RelocKind.KFUNC if kind == "kfunc" else RelocKind.EXTERN
            elif kind == "kconfig":
                rk = RelocKind.KCONFIG
            elif kind == "ksym":
                rk = RelocKind.KSYM
            else:
                rk = RelocKind.EXTERN
            map_name = None
            if rk == RelocKind.KCONFIG:
                map_name = next((m.name for m in self.maps if m.origin == "kconfig"), None)
            return Relocation(rk, idx, sec_slot, name, 0, map_name)
        if insn.is_call:
            if insn.src != 1:
                raise ElfError(f"{where}: call insn {idx} is not a bpf-to-bpf call")
            if sym.shndx != self._text_shndx or sym.shndx == SHN_UNDEF:
                raise ElfError(f"{where}: call target is not in .text")
            tgt = self._subprog_at(sym.shndx, sym.value // 8 + insn.imm + 1)
            return Relocation(RelocKind.CALL, idx, sec_slot, name, sym.value,
                              target=tgt.name if tgt else None)
        if sym.shndx == SHN_UNDEF or sym.shndx >= SHN_LORESERVE:
            raise ElfError(f"{where}: symbol in special section {sym.shndx:#x}")
        if sym.shndx == self._text_shndx and (
                (sym.bind == STB_LOCAL and sym.type == STT_SECTION) or
                (sym.bind == STB_GLOBAL and sym.type == STT_FUNC)):
            tgt = self._subprog_at(sym.shndx, (sym.value + insn.imm) // 8)
            return Relocation(RelocKind.SUBPROG_ADDR, idx, sec_slot, name, sym.value,
                              target=tgt.name if tgt else None)
        kind = self._sec_kind.get(sym.shndx, "")
        if kind in ("legacy_maps", "btf_maps"):
            m = next((m for m in self.maps
                      if m.section_index == sym.shndx and m.sec_offset == sym.value), None)
            if m is None:
                raise ElfError(f"{where}: no map at offset {sym.value} of its section")
            return Relocation(RelocKind.MAP, idx, sec_slot, name, 0, m.name)
        if kind in DATA_KINDS:
            m = next(m for m in self.maps if m.section_index == sym.shndx and m.is_internal)
            return Relocation(RelocKind.DATA, idx, sec_slot, name, sym.value, m.name)
        raise ElfError(f"{where}: symbol's section "
                       f"'{self._raw.sections[sym.shndx].name}' is not maps or data")

    def _subprog_at(self, shndx: int, slot: int) -> Program | None:
        for p in self.programs_all:
            if p.section_index == shndx and p.sec_insn_off <= slot < \
                    p.sec_insn_off + p.sec_insn_cnt:
                return p
        return None

    def _callees(self, prog: Program) -> list[Program]:
        relocs = {r.insn_idx: r for r in prog.relocations}
        out: list[Program] = []
        pos = 0
        for insn in prog.instructions:
            r = relocs.get(pos)
            tgt: Program | None = None
            if r is not None and r.kind in (RelocKind.CALL, RelocKind.SUBPROG_ADDR):
                tgt = self._subprog_at(self._text_shndx, 0) if r.target is None else \
                    next((p for p in self.programs_all if p.name == r.target
                          and p.section_index == self._text_shndx), None)
            elif r is None and (insn.is_pseudo_call or insn.is_pseudo_func):
                tgt = self._subprog_at(prog.section_index,
                                       prog.sec_insn_off + pos + insn.imm + 1)
            if tgt is not None and tgt is not prog:
                out.append(tgt)
            pos += insn.slots
        return out

    def collect_subprograms(self) -> None:
        """Each program's sub-programs, depth first in call order."""
        callees = {id(p): self._callees(p) for p in self.programs_all}
        for prog in self.programs_all:
            seen: list[Program] = []
            # Depth-first in call order, like libbpf appending sub-programs while relocating.
            work: list[tuple[Program, int]] = [(prog, 0)]
            while work:
                cur, i = work.pop()
                calls = callees[id(cur)]
                if i >= len(calls):
                    continue
                work.append((cur, i + 1))
                c = calls[i]
                if c is prog or c in seen:
                    continue
                seen.append(c)
                work.append((c, 0))
            prog.subprograms = [p.name for p in seen]
