"""The records an object's programs write to a ring buffer, told from their instructions.

``bpf_ringbuf_reserve(&ring, sizeof(struct event), 0)`` and
``bpf_ringbuf_output(&ring, &e, sizeof(e), 0)`` pass the record size as a constant; with the
object's BTF, a size names the record type (what ``pylibbpf.typed.decoder(obj, ring=...)``
decodes with).  Pure Python over :class:`~pylibbpf.elf.ObjectFile`: no libbpf, no kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .btf import BtfKind
from .insn import JMP, JMP32, JMP_CALL, JMP_JA, Instruction, slot_offsets

if TYPE_CHECKING:
    from .objectfile import ObjectFile

__all__ = ["infer_event_type", "ring_record_sizes"]

HELPER_RINGBUF_OUTPUT = 130   # bpf_ringbuf_output(ringbuf, data, size, flags)
HELPER_RINGBUF_RESERVE = 131  # bpf_ringbuf_reserve(ringbuf, size, flags)
_MOV64_IMM = 0xB7
_MOV64_REG = 0xBF
_SCAN_LIMIT = 64  # instructions followed from a load of the ring's address


def _size_passed(insns: list[Instruction], start: int) -> int | None:
    """The constant size given to the ring helper that the ring address loaded at
    ``insns[start]`` reaches in straight-line code, tracking constants moved into r2/r3."""
    map_reg = insns[start].dst
    consts: dict[int, int] = {}
    for insn in insns[start + 1:start + 1 + _SCAN_LIMIT]:
        if insn.cls in (JMP, JMP32) and insn.op == JMP_CALL and insn.src == 0:
            if map_reg == 1 and insn.imm == HELPER_RINGBUF_RESERVE:
                return consts.get(2)
            if map_reg == 1 and insn.imm == HELPER_RINGBUF_OUTPUT:
                return consts.get(3)
            return None
        if insn.cls in (JMP, JMP32) and insn.op != JMP_JA:
            return None  # a branch or exit: stop at the end of the straight line
        written = insn.writes()
        if map_reg in written:
            if insn.code == _MOV64_REG and insn.src == map_reg:  # mov rX, rMap: follow it
                map_reg = insn.dst
            else:
                return None
        for reg in written:
            consts.pop(reg, None)
        if insn.code == _MOV64_IMM:
            consts[insn.dst] = insn.imm
    return None


def ring_record_sizes(obj: ObjectFile, ring: str) -> set[int]:
    """The constant record sizes the object's programs pass to ``bpf_ringbuf_reserve`` or
    ``bpf_ringbuf_output`` for the ring buffer map ``ring``."""
    sizes: set[int] = set()
    for prog in obj.programs:
        index_of = {slot: index for index, slot in enumerate(slot_offsets(prog.instructions))}
        for reloc in prog.relocations:
            start = index_of.get(reloc.insn_idx)
            if reloc.map_name == ring and start is not None:
                size = _size_passed(prog.instructions, start)
                if size is not None:
                    sizes.add(size)
    return sizes


def infer_event_type(obj: ObjectFile, ring: str) -> str:
    """The C name (``"struct event"``) of the records the object's programs write to the ring
    buffer map ``ring``: the struct or union of the one constant size they pass.

    Raises :class:`KeyError` when the object has no map ``ring``, and :class:`LookupError` when
    the type cannot be told: no constant size, no struct or union of that size in the BTF (a
    type used only by a local variable is not emitted: keep one in BTF, e.g.
    ``const struct event *unused __attribute__((unused));``), or several candidates.
    """
    obj.map(ring)
    sizes = ring_record_sizes(obj, ring)
    if len(sizes) != 1:
        raise LookupError(f"cannot infer the event type of ring {ring!r}: the programs pass "
                          + ("no constant record size" if not sizes else
                             f"several sizes {sorted(sizes)}") + "; name the type instead")
    size = sizes.pop()
    kinds = {BtfKind.STRUCT: "struct", BtfKind.UNION: "union"}
    types = obj.btf.types if obj.btf is not None else []
    names = sorted({f"{kinds[t.kind]} {t.name}" for t in types
                    if t.kind in kinds and t.name and t.size == size})
    if len(names) != 1:
        reason = ("no struct or union of that size in the object's BTF" if not names
                  else f"candidates: {', '.join(names)}")
        raise LookupError(f"cannot infer the event type of ring {ring!r} ({size}-byte "
                          f"records): {reason}; name the type instead")
    return names[0]
