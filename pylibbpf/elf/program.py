"""A BPF function of an object file: an entry program or a ``.text`` sub-program."""

from __future__ import annotations

from dataclasses import dataclass, field

from .btfext import FuncInfo, LineInfo
from .insn import Instruction
from .relocs import Relocation
from .sections import AttachType, ProgType, SectionDef

__all__ = ["Program"]


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
    # the index of the struct_ops member this program fills (libbpf keeps it as the program's
    # expected attach type); None for other programs
    struct_ops_member: int | None = None

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
            "struct_ops_member": self.struct_ops_member,
            "relocations": [r.to_json() for r in self.relocations],
        }
