"""``ObjectFile``: an eBPF ELF object as libbpf sees it after ``bpf_object__open`` (no load)."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .btf import Btf, BtfKind, BtfType, BtfVarSecinfo
from .btfext import BtfExt, FuncInfo, LineInfo
from .datasec import Variable, datasec_variables
from .errors import ElfError
from .insn import Instruction, decode
from .maps import (
    BPF_F_MMAPABLE,
    BPF_F_RDONLY_PROG,
    MapDef,
    MapType,
    internal_map_name,
    object_name_from_path,
    parse_btf_map_def,
    parse_legacy_maps,
)
from .reader import (
    SHN_LORESERVE,
    SHN_UNDEF,
    SHT_NOBITS,
    SHT_PROGBITS,
    STB_GLOBAL,
    STB_LOCAL,
    STB_WEAK,
    STT_FUNC,
    STT_NOTYPE,
    STT_SECTION,
    RawElf,
    Section,
    Symbol,
    read_elf,
    read_object_file,
)
from .relocs import Extern, Relocation, RelocKind
from .sections import AttachType, ProgType, SectionDef, find_section_def

__all__ = ["ObjectFile", "Program"]

LICENSE_MAX = 64  # libbpf keeps at most 63 characters of the license
_DATA_KINDS = ("data", "rodata", "bss")


@dataclass
class Program:
    """One BPF function of the object (an entry program or a ``.text`` sub-program)."""

    name: str
    section_name: str
    section_index: int
    sec_insn_off: int
    sec_insn_cnt: int
    instructions: list[Instruction]
    is_global: bool
    is_subprog: bool = False
    section_def: SectionDef | None = None
    relocations: list[Relocation] = field(default_factory=list)
    subprograms: list[str] = field(default_factory=list)
    func_info: list[FuncInfo] = field(default_factory=list)
    line_info: list[LineInfo] = field(default_factory=list)

    @property
    def insn_offset(self) -> int:
        """First slot of this program in its section (``sec_insn_off``)."""
        return self.sec_insn_off

    @property
    def insn_count(self) -> int:
        """Slots this program occupies in its section (``sec_insn_cnt``)."""
        return self.sec_insn_cnt

    @property
    def prog_type(self) -> ProgType:
        """Program type inferred from the section name (``UNSPEC`` if libbpf would not know)."""
        return self.section_def.prog_type if self.section_def else ProgType.UNSPEC

    @property
    def expected_attach_type(self) -> AttachType:
        """Expected attach type inferred from the section name (0 when none)."""
        return self.section_def.attach_type if self.section_def else AttachType(0)

    @property
    def sleepable(self) -> bool:
        """Whether the section name asks for a sleepable program (``.s`` variants, syscall)."""
        return bool(self.section_def and self.section_def.sleepable)

    def to_json(self) -> dict[str, object]:
        """A JSON-friendly description with stable keys."""
        return {
            "name": self.name, "section": self.section_name, "section_index": self.section_index,
            "sec_insn_off": self.sec_insn_off, "sec_insn_cnt": self.sec_insn_cnt,
            "prog_type": self.prog_type.name.lower(),
            "expected_attach_type": self.expected_attach_type.name.lower()
            if self.section_def and self.section_def.attach_type else None,
            "sleepable": self.sleepable, "global": self.is_global,
            "subprog": self.is_subprog, "subprograms": list(self.subprograms),
            "relocations": [r.to_json() for r in self.relocations],
        }


class ObjectFile:
    """A parsed eBPF object file. Build with :meth:`from_path` or :meth:`from_bytes`.

    Malformed input raises :class:`~pylibbpf.elf.errors.ElfError`. Where libbpf would refuse to
    open an object (legacy ``maps``, externs without BTF, static entry programs) the object is
    still described and the reason is listed in :attr:`warnings`.
    """

    def __init__(self, data: bytes, name: str, path: str | None = None) -> None:
        self.data = bytes(data)
        self.name = name
        self.path = path
        self.warnings: list[str] = []
        self._raw: RawElf = read_elf(self.data)
        self.byteorder: Literal["little", "big"] = self._raw.byteorder
        self.btf: Btf | None = None
        self.btf_ext: BtfExt | None = None
        self.license = ""
        self.kern_version = 0
        self.programs_all: list[Program] = []
        self.maps: list[MapDef] = []
        self.externs: list[Extern] = []
        self._text_shndx = -1
        self._sec_kind: dict[int, str] = {}
        self._parse()

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], name: str | None = None) -> ObjectFile:
        """Read and parse the object at ``path``; ``name`` defaults to libbpf's rule.

        ``path`` must be a regular file of at most
        :data:`~pylibbpf.elf.reader.MAX_OBJECT_SIZE` bytes: anything else (``/dev/zero``, a
        FIFO, a directory) raises :class:`ElfError` without being read.
        """
        p = Path(path)
        data = read_object_file(p)
        return cls(data, name if name is not None else object_name_from_path(str(p)), str(p))

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "") -> ObjectFile:
        """Parse an object held in memory; ``name`` plays libbpf's ``object_name`` option."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("ObjectFile.from_bytes expects bytes")
        return cls(bytes(data), name)

    # -- public views ---------------------------------------------------------------------

    @property
    def endianness(self) -> Literal["little", "big"]:
        """Byte order of the object."""
        return self.byteorder

    @property
    def sections(self) -> list[Section]:
        """All sections (raw)."""
        return self._raw.sections

    @property
    def symbols(self) -> list[Symbol]:
        """All symbols (raw)."""
        return self._raw.symbols

    @property
    def raw(self) -> RawElf:
        """The ELF as :func:`~pylibbpf.elf.read_elf` read it: sections, symbols (in index
        order, so a :class:`~pylibbpf.elf.Rel`'s ``sym`` indexes them) and, through
        ``raw.rels(section)``, the entries of each SHT_REL section as stored."""
        return self._raw

    def section_by_name(self, name: str) -> Section | None:
        """The first section called ``name``, or None."""
        return self._raw.section_by_name(name)

    @property
    def has_btf(self) -> bool:
        """The object has a ``.BTF`` section."""
        return self.btf is not None

    @property
    def has_btf_ext(self) -> bool:
        """The object has a ``.BTF.ext`` section."""
        return self.btf_ext is not None

    @property
    def programs(self) -> list[Program]:
        """Entry programs in libbpf's order (what ``bpf_object__for_each_program`` yields)."""
        return [p for p in self.programs_all if not p.is_subprog]

    @property
    def subprograms(self) -> list[Program]:
        """``.text`` functions that are sub-programs."""
        return [p for p in self.programs_all if p.is_subprog]

    def program(self, name: str) -> Program:
        """The program (entry or sub-program) called ``name``; KeyError if none."""
        for p in self.programs_all:
            if p.name == name:
                return p
        raise KeyError(name)

    def map(self, name: str) -> MapDef:
        """The map called ``name``; KeyError if none."""
        for m in self.maps:
            if m.name == name:
                return m
        raise KeyError(name)

    def section(self, index: int) -> Section:
        """Section by index."""
        return self._raw.sections[index]

    def disassemble(self, *, raw: bool = True, source: bool = False) -> str:
        """Disassembly in ``llvm-objdump -d`` format (see :mod:`pylibbpf.elf.disasm`)."""
        from .disasm import disassemble_object

        return disassemble_object(self, raw=raw, source=source)

    def to_json(self) -> dict[str, object]:
        """Everything :meth:`pylibbpf inspect --json` prints, with stable keys."""
        return {
            "name": self.name, "endianness": self.byteorder, "license": self.license,
            "kern_version": self.kern_version, "has_btf": self.has_btf,
            "has_btf_ext": self.has_btf_ext,
            "programs": [p.to_json() for p in self.programs],
            "subprograms": [p.to_json() for p in self.subprograms],
            "maps": [m.to_json() for m in self.maps],
            "externs": [e.to_json() for e in self.externs],
            "warnings": list(self.warnings),
        }

    # -- parsing --------------------------------------------------------------------------

    def _u32(self, data: bytes, off: int = 0) -> int:
        return int(struct.unpack_from("<I" if self.byteorder == "little" else ">I", data, off)[0])

    def _parse(self) -> None:
        secs = self._raw.sections
        for sec in secs:
            if sec.name == "license" and sec.type == SHT_PROGBITS:
                raw = sec.data[:LICENSE_MAX - 1]
                self.license = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
            elif sec.name == "version" and sec.type == SHT_PROGBITS:
                if len(sec.data) != 4:
                    raise ElfError(f"section 'version': {len(sec.data)} bytes, expected 4")
                self.kern_version = self._u32(sec.data)
            elif sec.name == ".text" and sec.type == SHT_PROGBITS:
                self._text_shndx = sec.index
        btf_sec = self.section_by_name(".BTF")
        if btf_sec is not None:
            self.btf = Btf.from_bytes(btf_sec.data)
            ext = self.section_by_name(".BTF.ext")
            if ext is not None:
                self.btf_ext = BtfExt.from_bytes(ext.data, self.btf)
        for sec in secs:
            kind = self._classify(sec)
            if kind:
                self._sec_kind[sec.index] = kind
        self._collect_programs()
        self._collect_externs()
        self._collect_maps()
        self._collect_relocations()
        self._collect_subprograms()

    @staticmethod
    def _classify(sec: Section) -> str:
        name = sec.name
        if name in ("license", "version", ".BTF", ".BTF.ext"):
            return ""
        if name == "maps":
            return "legacy_maps"
        if name == ".maps":
            return "btf_maps"
        if sec.type == SHT_PROGBITS and sec.size > 0:
            if sec.is_exec:
                return "prog"
            if name == ".data" or name.startswith(".data."):
                return "data"
            if name == ".rodata" or name.startswith(".rodata."):
                return "rodata"
        if sec.type == SHT_NOBITS and name == ".bss":
            return "bss"
        return ""

    def _sym_name(self, sym: Symbol) -> str:
        if sym.type == STT_SECTION and sym.shndx < len(self._raw.sections):
            return self._raw.sections[sym.shndx].name
        return sym.name

    def _collect_programs(self) -> None:
        progs: list[Program] = []
        for sym in self._raw.symbols:
            if sym.type != STT_FUNC or self._sec_kind.get(sym.shndx) != "prog":
                continue
            sec = self._raw.sections[sym.shndx]
            if sym.value % 8 or sym.size % 8:
                raise ElfError(f"program '{sym.name}' in {sec.name}: offset/size not a "
                               "multiple of 8")
            if sym.value + sym.size > sec.size:
                raise ElfError(f"program '{sym.name}' in {sec.name}: {sym.size} bytes at "
                               f"{sym.value} are past the section's {sec.size} bytes")
            if sym.shndx != self._text_shndx and sym.bind == STB_LOCAL:
                self.warnings.append(f"sec '{sec.name}': program '{sym.name}' is static "
                                     "(libbpf refuses it)")
            insns = decode(sec.data[sym.value:sym.value + sym.size], self.byteorder)
            progs.append(Program(
                name=sym.name, section_name=sec.name, section_index=sec.index,
                sec_insn_off=sym.value // 8, sec_insn_cnt=sym.size // 8, instructions=insns,
                is_global=sym.bind != STB_LOCAL, section_def=find_section_def(sec.name)))
        progs.sort(key=lambda p: (p.section_index, p.sec_insn_off))
        for p in progs:
            p.is_subprog = p.section_index == self._text_shndx and len(progs) > 1
            if self.btf_ext is not None:
                end = p.sec_insn_off + p.sec_insn_cnt
                p.func_info = [f for f in self.btf_ext.func_info.get(p.section_name, ())
                               if p.sec_insn_off <= f.insn < end]
                p.line_info = [li for li in self.btf_ext.line_info.get(p.section_name, ())
                               if p.sec_insn_off <= li.insn < end]
        self.programs_all = progs

    def _btf_extern(self, name: str) -> tuple[str, int, int, int] | None:
        """(datasec name, type id, size, align) of an extern's BTF VAR or FUNC."""
        if self.btf is None:
            return None
        for t in self.btf.find_all(name):
            if t.kind not in (BtfKind.VAR, BtfKind.FUNC) or t.linkage != 2:
                continue
            for ds in self.btf.types:
                if ds.kind != BtfKind.DATASEC:
                    continue
                if any(si.type_id == t.id for si in ds.secinfos):
                    if t.kind == BtfKind.FUNC:
                        return ds.name, t.id, 0, 0
                    vt = t.type_id or 0
                    try:
                        return ds.name, t.id, self.btf.size_of(vt), self.btf.align_of(vt)
                    except ElfError:
                        return ds.name, t.id, 0, 0
            return "", t.id, 0, 0
        return None

    def _collect_externs(self) -> None:
        found: list[tuple[Extern, int]] = []
        for sym in self._raw.symbols:
            if sym.shndx != SHN_UNDEF or sym.bind not in (STB_GLOBAL, STB_WEAK):
                continue
            if sym.type != STT_NOTYPE or not sym.name:
                continue
            info = self._btf_extern(sym.name)
            weak = sym.bind == STB_WEAK
            if info is None:
                self.warnings.append(f"extern '{sym.name}' has no BTF (libbpf refuses it)")
                found.append((Extern(sym.name, "undefined", weak), 0))
                continue
            sec_name, type_id, size, align = info
            if sec_name == ".kconfig":
                found.append((Extern(sym.name, "kconfig", weak, type_id, 0, size), align))
            elif sec_name == ".ksyms":
                is_func = self.btf is not None and \
                    self.btf.type_by_id(type_id).kind == BtfKind.FUNC
                found.append((Extern(sym.name, "kfunc" if is_func else "ksym", weak, type_id),
                              0))
            else:
                found.append((Extern(sym.name, "undefined", weak, type_id), 0))
        order = {"kconfig": 1, "ksym": 2, "kfunc": 2, "undefined": 3}

        def key(item: tuple[Extern, int]) -> tuple[int, int, int, str]:
            ext, align = item
            if ext.kind == "kconfig":
                return (1, -align, ext.size, ext.name)
            return (order[ext.kind], 0, 0, ext.name)

        found.sort(key=key)
        off = 0
        out: list[Extern] = []
        for ext, align in found:
            if ext.kind == "kconfig":
                if align:
                    off = (off + align - 1) // align * align
                ext = Extern(ext.name, ext.kind, ext.weak, ext.type_id, off, ext.size)
                off += ext.size
            out.append(ext)
        self.externs = out
        self._kconfig_size = off

    def _secinfos(self, ds: BtfType, sec_name: str) -> list[BtfVarSecinfo]:
        """DATASEC entries with offsets taken from the symbols, as libbpf's fixup does.

        Compilers leave DATASEC offsets at zero in ``.o`` files; the symbol table is the truth.
        """
        assert self.btf is not None
        sec = self.section_by_name(sec_name)
        if sec is None:
            return list(ds.secinfos)
        values = {s.name: s.value for s in self._raw.symbols
                  if s.shndx == sec.index and s.type != STT_SECTION and s.name}
        out = []
        for si in ds.secinfos:
            var = self.btf.type_by_id(si.type_id)
            out.append(BtfVarSecinfo(si.type_id, values.get(var.name, si.offset), si.size))
        return out

    def _datasec_variables(self, sec_name: str) -> tuple[int, list[Variable]]:
        if self.btf is None:
            return 0, []
        ds = self.btf.find(sec_name, BtfKind.DATASEC)
        if ds is None:
            return 0, []
        return ds.id, datasec_variables(self.btf, self._secinfos(ds, sec_name))

    def _symbol_variables(self, sec: Section) -> list[Variable]:
        return [Variable(s.name, s.value, s.size, 0, "", "global" if s.bind else "static")
                for s in sorted(self._raw.symbols, key=lambda s: (s.value, s.name))
                if s.shndx == sec.index and s.type != STT_SECTION and s.name]

    def _collect_maps(self) -> None:
        maps: list[MapDef] = []
        for sec in self._raw.sections:
            kind = self._sec_kind.get(sec.index)
            if kind == "legacy_maps":
                self.warnings.append("legacy map definitions in 'maps' section "
                                     "(libbpf 1.x refuses them)")
                syms = [(s.name, s.value) for s in self._raw.symbols
                        if s.shndx == sec.index and s.type != STT_SECTION and s.name]
                maps += parse_legacy_maps(sec.data, syms, self.byteorder, sec.name, sec.index)
        maps_sec = next((s for s in self._raw.sections
                         if self._sec_kind.get(s.index) == "btf_maps"), None)
        if maps_sec is not None:
            maps += self._btf_maps(maps_sec)
        for sec in self._raw.sections:
            kind = self._sec_kind.get(sec.index)
            if kind not in _DATA_KINDS:
                continue
            value_type_id, variables = self._datasec_variables(sec.name)
            if not variables and self.btf is None:
                variables = self._symbol_variables(sec)
            flags = BPF_F_RDONLY_PROG if kind == "rodata" else 0
            if value_type_id:
                flags |= BPF_F_MMAPABLE
            maps.append(MapDef(
                name=internal_map_name(self.name, sec.name), origin=str(kind),
                type=MapType.ARRAY, key_size=4, value_size=sec.size, max_entries=1,
                map_flags=flags, value_type_id=value_type_id, section_name=sec.name,
                section_index=sec.index, real_name=sec.name, variables=variables,
                initial_value=b"" if kind == "bss" else sec.data))
        kconfig = [e for e in self.externs if e.kind == "kconfig"]
        if kconfig:
            value_type_id, _ = self._datasec_variables(".kconfig")
            variables = [Variable(e.name, e.offset, e.size, e.type_id,
                                  self._extern_type_name(e), "extern") for e in kconfig]
            maps.append(MapDef(
                name=internal_map_name(self.name, ".kconfig"), origin="kconfig",
                type=MapType.ARRAY, key_size=4, value_size=self._kconfig_size, max_entries=1,
                map_flags=BPF_F_RDONLY_PROG | (BPF_F_MMAPABLE if value_type_id else 0),
                value_type_id=value_type_id, section_name=".kconfig", real_name=".kconfig",
                variables=variables))
        self.maps = maps

    def _extern_type_name(self, ext: Extern) -> str:
        if self.btf is None or not ext.type_id:
            return ""
        return self.btf.type_name(self.btf.type_by_id(ext.type_id).type_id or 0)

    def _btf_maps(self, sec: Section) -> list[MapDef]:
        if self.btf is None:
            raise ElfError("section .maps needs BTF, and the object has no .BTF")
        ds = self.btf.find(".maps", BtfKind.DATASEC)
        if ds is None:
            raise ElfError("DATASEC '.maps' not found in BTF")
        out: list[MapDef] = []
        infos = self._secinfos(ds, sec.name)
        for si in infos:
            var = self.btf.type_by_id(si.type_id)
            if var.kind != BtfKind.VAR:
                raise ElfError(f".maps entry [{var.id}] is {var.kind.name}, not a VAR")
            if si.offset + si.size > sec.size:
                raise ElfError(f"map '{var.name}' lies past the end of .maps")
            m = parse_btf_map_def(self.btf, var.name, var.type_id or 0)
            m.section_name, m.section_index, m.sec_offset = sec.name, sec.index, si.offset
            out.append(m)
        rel = next((s for s in self._raw.sections
                    if s.type == 9 and s.info == sec.index), None)
        if rel is not None:
            layout = []
            for si, m in zip(infos, out, strict=False):
                values = next((mem for mem in self.btf.resolve(
                    self.btf.type_by_id(si.type_id).type_id or 0).members
                    if mem.name == "values"), None)
                if values is not None:
                    layout.append((m, si.offset + values.bit_offset // 8, si.offset + si.size))
            for r in self._raw.rels(rel):
                sym = self._symbol(r.sym, rel.name)
                for m, start, stop in layout:
                    if start <= r.offset < stop:
                        m.init_slots[(r.offset - start) // 8] = self._sym_name(sym)
        return out

    def _symbol(self, index: int, where: str) -> Symbol:
        if not 0 <= index < len(self._raw.symbols):
            raise ElfError(f"{where}: relocation refers to missing symbol {index}")
        return self._raw.symbols[index]

    def _collect_relocations(self) -> None:
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
                sym = self._symbol(r.sym, rel.name)
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
        name = self._sym_name(sym)
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
        if kind in _DATA_KINDS:
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

    def _collect_subprograms(self) -> None:
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
