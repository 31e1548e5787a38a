"""struct_ops maps (``SEC(".struct_ops")``) and the callbacks their programs fill, as libbpf
1.1 reads them at open.

Each variable of the ``.struct_ops`` DATASEC is a map of type ``STRUCT_OPS`` named after the
variable (key 4 bytes, value the variable's struct, one entry; its bytes the initial value).
A relocation of ``.rel.struct_ops`` puts a program into one of the struct's function-pointer
members; libbpf records that member's index as the program's expected attach type, which
:attr:`Program.struct_ops_member` holds here.
"""

from __future__ import annotations

from .btf import Btf, BtfKind, BtfVarSecinfo
from .errors import ElfError
from .maps import MapDef, MapType
from .program import Program
from .reader import STT_SECTION, RawElf, Section

__all__ = ["STRUCT_OPS_SEC", "collect_struct_ops"]

STRUCT_OPS_SEC = ".struct_ops"


def collect_struct_ops(raw: RawElf, btf: Btf | None, sec: Section,
                       secinfos: list[BtfVarSecinfo], programs: list[Program]) -> list[MapDef]:
    """The maps of the ``.struct_ops`` section ``sec`` (``secinfos``: its DATASEC entries with
    the symbols' offsets); sets ``struct_ops_member`` of each program a member points to."""
    if btf is None:
        raise ElfError(f"section {STRUCT_OPS_SEC} needs BTF, and the object has no .BTF")
    maps: list[MapDef] = []
    spans: list[tuple[int, int, int]] = []  # (offset, size, struct type id) per map
    for si in secinfos:
        var = btf.type_by_id(si.type_id)
        struct = btf.resolve(var.type_id or 0)
        if not struct.name:
            raise ElfError(f"struct_ops map {var.name!r}: an anonymous type is not supported")
        if struct.kind != BtfKind.STRUCT:
            raise ElfError(f"struct_ops map {var.name!r}: {struct.name} is not a struct")
        size = struct.size or 0
        if si.offset + size > sec.size:
            raise ElfError(f"struct_ops map {var.name!r} is past the end of {STRUCT_OPS_SEC}")
        maps.append(MapDef(name=var.name, origin="struct_ops", type=MapType.STRUCT_OPS,
                           key_size=4, value_size=size, max_entries=1,
                           section_name=sec.name, section_index=sec.index,
                           sec_offset=si.offset, real_name=var.name,
                           initial_value=sec.data[si.offset:si.offset + size]))
        spans.append((si.offset, size, struct.id))
    by_place = {(p.section_index, p.sec_insn_off * 8): p for p in programs}
    for rel_sec in raw.rel_sections():
        if rel_sec.info != sec.index:
            continue
        for rel in raw.rels(rel_sec):
            if rel.sym >= len(raw.symbols):
                raise ElfError(f"{rel_sec.name}: symbol #{rel.sym} is past the symbol table")
            sym = raw.symbols[rel.sym]
            program = by_place.get((sym.shndx, sym.value)) if sym.type != STT_SECTION else None
            span = next((s for s in spans if s[0] <= rel.offset < s[0] + s[1]), None)
            if program is None or span is None:
                raise ElfError(f"{rel_sec.name}: the relocation at {rel.offset} names no "
                               "program in a struct_ops map")
            offset = (rel.offset - span[0]) * 8
            members = btf.type_by_id(span[2]).members
            index = next((i for i, m in enumerate(members) if m.bit_offset == offset), None)
            if index is None:
                raise ElfError(f"{rel_sec.name}: no member of struct "
                               f"{btf.type_by_id(span[2]).name} at byte {offset // 8}")
            program.struct_ops_member = index
    return maps
