"""Pure-Python reading of eBPF ELF objects: programs, maps, relocations, BTF, instructions.

Nothing here needs root, a kernel or libbpf; it never imports the ctypes layer::

    from pylibbpf.elf import ObjectFile
    obj = ObjectFile.from_path("prog.bpf.o")
    for prog in obj.programs:
        print(prog.name, prog.section_name, prog.prog_type.name, prog.sec_insn_cnt)

Malformed input raises :class:`ElfError` (a :class:`ValueError`).
"""

from __future__ import annotations

from .btf import Btf, BtfKind, BtfMember, BtfType
from .btfext import BtfExt, FuncInfo, LineInfo
from .disasm import disassemble_object, format_instruction
from .errors import ElfError
from .insn import Instruction, decode, decode_one, encode, insert_instructions
from .maps import MapDef, MapType, Variable, internal_map_name
from .objectfile import ObjectFile, Program
from .relocs import Extern, Relocation, RelocKind
from .sections import AttachType, ProgType, SectionDef, find_section_def

__all__ = [
    "AttachType",
    "Btf",
    "BtfExt",
    "BtfKind",
    "BtfMember",
    "BtfType",
    "ElfError",
    "Extern",
    "FuncInfo",
    "Instruction",
    "LineInfo",
    "MapDef",
    "MapType",
    "ObjectFile",
    "ProgType",
    "Program",
    "RelocKind",
    "Relocation",
    "SectionDef",
    "Variable",
    "decode",
    "decode_one",
    "disassemble_object",
    "encode",
    "find_section_def",
    "format_instruction",
    "insert_instructions",
    "internal_map_name",
]
