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

from typing import TYPE_CHECKING

from .._lazy import exports as _lazy_exports

# The public names, each with its module (the one list; see pylibbpf._lazy): imported on first
# use, so that ``pylibbpf.errors`` (which needs only ElfError) does not read pyelftools.
if TYPE_CHECKING:
    from .btf import Btf as Btf
    from .btf import BtfKind as BtfKind
    from .btf import BtfMember as BtfMember
    from .btf import BtfType as BtfType
    from .btfext import BtfExt as BtfExt
    from .btfext import FuncInfo as FuncInfo
    from .btfext import LineInfo as LineInfo
    from .datasec import Variable as Variable
    from .disasm import disassemble_object as disassemble_object
    from .disasm import format_instruction as format_instruction
    from .errors import ElfError as ElfError
    from .flow import ControlFlow as ControlFlow
    from .flow import FlowState as FlowState
    from .flow import forward_dataflow as forward_dataflow
    from .insn import ARG_REGS as ARG_REGS
    from .insn import CALLER_SAVED as CALLER_SAVED
    from .insn import Instruction as Instruction
    from .insn import decode as decode
    from .insn import decode_one as decode_one
    from .insn import encode as encode
    from .insn import insert_instructions as insert_instructions
    from .maps import MapDef as MapDef
    from .maps import MapType as MapType
    from .maps import internal_map_name as internal_map_name
    from .objectfile import ObjectFile as ObjectFile
    from .program import Program as Program
    from .reader import EM_BPF as EM_BPF
    from .reader import R_BPF_64_64 as R_BPF_64_64
    from .reader import RawElf as RawElf
    from .reader import Rel as Rel
    from .reader import Section as Section
    from .reader import Symbol as Symbol
    from .reader import read_elf as read_elf
    from .relocs import Extern as Extern
    from .relocs import Relocation as Relocation
    from .relocs import RelocKind as RelocKind
    from .sections import AttachType as AttachType
    from .sections import ProgType as ProgType
    from .sections import SectionDef as SectionDef
    from .sections import find_section_def as find_section_def

__getattr__, __dir__ = _lazy_exports(__name__, __file__, globals())
