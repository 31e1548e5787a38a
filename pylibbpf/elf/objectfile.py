"""``ObjectFile``: an eBPF ELF object as libbpf sees it after ``bpf_object__open`` (no load)."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Literal

from .btf import Btf, BtfKind, BtfType, BtfVarSecinfo
from .btfext import BtfExt
from .datasec import Variable, datasec_variables
from .errors import ElfError
from .externs import collect_externs
from .insn import decode
from .linking import DATA_KINDS, Linker, symbol_at, symbol_name
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
from .program import Program
from .reader import (
    SHT_NOBITS,
    SHT_PROGBITS,
    STB_LOCAL,
    STT_FUNC,
    STT_SECTION,
    RawElf,
    Section,
    Symbol,
    read_elf,
    read_object_file,
)
from .relocs import Extern
from .sections import find_section_def
from .struct_ops import STRUCT_OPS_SEC, collect_struct_ops

__all__ = ["ObjectFile", "Program"]

LICENSE_MAX = 64  # libbpf keeps at most 63 characters of the license


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
        self.externs, self._kconfig_size = collect_externs(self._raw, self.btf,
                                                           self.warnings)
        self._collect_maps()
        linker = Linker(self)
        linker.collect_relocations()
        linker.collect_subprograms()

    @staticmethod
    def _classify(sec: Section) -> str:
        name = sec.name
        if name in ("license", "version", ".BTF", ".BTF.ext"):
            return ""
        if name == "maps":
            return "legacy_maps"
        if name == ".maps":
            return "btf_maps"
        if name == STRUCT_OPS_SEC and sec.type == SHT_PROGBITS:
            return "struct_ops"
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
            if kind not in DATA_KINDS:
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
        for sec in self._raw.sections:  # libbpf adds struct_ops maps last
            if self._sec_kind.get(sec.index) == "struct_ops":
                ds = self.btf.find(sec.name, BtfKind.DATASEC) if self.btf else None
                if self.btf is not None and ds is None:
                    raise ElfError(f"struct_ops: DATASEC {sec.name} not found")
                secinfos = self._secinfos(ds, sec.name) if ds is not None else []
                maps += collect_struct_ops(self._raw, self.btf, sec, secinfos,
                                           self.programs_all)
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
                sym = symbol_at(self._raw, r.sym, rel.name)
                for m, start, stop in layout:
                    if start <= r.offset < stop:
                        m.init_slots[(r.offset - start) // 8] = symbol_name(self._raw, sym)
        return out

