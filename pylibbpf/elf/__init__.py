"""Pure-Python reading of eBPF ELF objects: programs, maps, relocations, BTF, instructions.

Nothing here needs root, a kernel or libbpf; it never imports the ctypes layer::

    from pylibbpf.elf import ObjectFile
    obj = ObjectFile.from_path("prog.bpf.o")
    for prog in obj.programs:
        print(prog.name, prog.section_name, prog.prog_type.name, prog.sec_insn_cnt)

Below the libbpf view, :func:`read_elf` gives the raw sections, symbols and relocation entries
(``strict=False`` also for objects libbpf would refuse), and :mod:`~pylibbpf.elf.flow` the
control flow and a forward data-flow solver over decoded instructions, whose register effects
are :meth:`Instruction.reads` and :meth:`Instruction.writes`.

Malformed input raises :class:`ElfError` (a :class:`ValueError`).
"""

from __future__ import annotations

from .btf import Btf, BtfKind, BtfMember, BtfType
from .btfext import BtfExt, FuncInfo, LineInfo
from .datasec import Variable
from .disasm import disassemble_object, format_instruction
from .errors import ElfError
from .flow import ControlFlow, FlowState, forward_dataflow
from .insn import (
    ARG_REGS,
    CALLER_SAVED,
    Instruction,
    decode,
    decode_one,
    encode,
    insert_instructions,
)
from .maps import MapDef, MapType, internal_map_name
from .objectfile import ObjectFile
from .program import Program
from .reader import EM_BPF, R_BPF_64_64, RawElf, Rel, Section, Symbol, read_elf
from .relocs import Extern, Relocation, RelocKind
from .sections import AttachType, ProgType, SectionDef, find_section_def

__all__ = [
    "ARG_REGS",
    "CALLER_SAVED",
    "EM_BPF",
    "R_BPF_64_64",
    "AttachType",
    "Btf",
    "BtfExt",
    "BtfKind",
    "BtfMember",
    "BtfType",
    "ControlFlow",
    "ElfError",
    "Extern",
    "FlowState",
    "FuncInfo",
    "Instruction",
    "LineInfo",
    "MapDef",
    "MapType",
    "ObjectFile",
    "ProgType",
    "Program",
    "RawElf",
    "Rel",
    "RelocKind",
    "Relocation",
    "Section",
    "SectionDef",
    "Symbol",
    "Variable",
    "decode",
    "decode_one",
    "disassemble_object",
    "encode",
    "find_section_def",
    "format_instruction",
    "forward_dataflow",
    "insert_instructions",
    "internal_map_name",
    "read_elf",
]
