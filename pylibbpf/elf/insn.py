"""The eBPF instruction codec: decode, encode, and rewrite instruction streams.

An instruction is 8 bytes (``code``, ``dst``/``src`` register nibbles, a signed 16-bit ``off`` and a
signed 32-bit ``imm``); ``ld_imm64`` (``code == 0x18``) spans two 8-byte slots. Indices in this
module are *slot* indices, the unit the kernel, libbpf and llvm-objdump count in.

``encode(decode(data)) == data`` holds for every byte string whose length is a multiple of 8 and
does not end in the first half of an ``ld_imm64``: unused fields are kept, not normalised.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from .errors import ElfError

__all__ = [
    "Instruction",
    "decode",
    "decode_one",
    "encode",
    "insert_instructions",
    "slot_offsets",
    "ARG_REGS",
    "CALLER_SAVED",
    "INSN_SIZE",
]

INSN_SIZE = 8
ByteOrder = Literal["little", "big"]

# Instruction classes (code & 0x07).
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
CLASS_NAMES = ("ld", "ldx", "st", "stx", "alu", "jmp", "jmp32", "alu64")

# Size (code & 0x18) and mode (code & 0xe0) of load/store classes.
SIZE_W, SIZE_H, SIZE_B, SIZE_DW = 0x00, 0x08, 0x10, 0x18
SIZE_BYTES = {SIZE_W: 4, SIZE_H: 2, SIZE_B: 1, SIZE_DW: 8}
MODE_IMM, MODE_ABS, MODE_IND, MODE_MEM, MODE_MEMSX, MODE_ATOMIC = 0x00, 0x20, 0x40, 0x60, 0x80, 0xC0

# Operation (code & 0xf0) and source (code & 0x08) of ALU/JMP classes.
SRC_K, SRC_X = 0x00, 0x08
ALU_ADD, ALU_SUB, ALU_MUL, ALU_DIV, ALU_OR, ALU_AND, ALU_LSH, ALU_RSH = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70)
ALU_NEG, ALU_MOD, ALU_XOR, ALU_MOV, ALU_ARSH, ALU_END = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0
JMP_JA, JMP_JEQ, JMP_JGT, JMP_JGE, JMP_JSET, JMP_JNE, JMP_JSGT, JMP_JSGE = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70)
JMP_CALL, JMP_EXIT, JMP_JLT, JMP_JLE, JMP_JSLT, JMP_JSLE = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0

# Atomic operations (imm of STX|ATOMIC).
ATOMIC_FETCH = 0x01
ATOMIC_XCHG = 0xE0 | ATOMIC_FETCH
ATOMIC_CMPXCHG = 0xF0 | ATOMIC_FETCH

# src_reg of ld_imm64 (pseudo sources) and of call.
PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, PSEUDO_BTF_ID, PSEUDO_FUNC = 1, 2, 3, 4
PSEUDO_MAP_IDX, PSEUDO_MAP_IDX_VALUE = 5, 6
PSEUDO_CALL, PSEUDO_KFUNC_CALL = 1, 2

LD_IMM64 = LD | SIZE_DW | MODE_IMM  # 0x18

#: r1-r5, the argument registers: what :meth:`Instruction.reads` gives for any call.
ARG_REGS = frozenset(range(1, 6))
#: r0-r5, what a call (or ``ld_abs``/``ld_ind``) writes or clobbers; r6-r9 and r10 survive.
CALLER_SAVED = frozenset(range(0, 6))
_NO_REGS: frozenset[int] = frozenset()
_R0 = frozenset((0,))
_SKB_REG = frozenset((6,))

_LE = struct.Struct("<BBhi")
_BE = struct.Struct(">BBhi")


@dataclass(frozen=True, slots=True)
class Instruction:
    """One eBPF instruction; ``ld_imm64`` carries its second slot in ``imm_hi``/``pad``.

    ``off`` and ``imm`` are signed. For ``ld_imm64``, ``imm`` is the low word (signed 32-bit),
    ``imm_hi`` the second slot's imm (signed 32-bit) and ``pad`` the second slot's first four bytes
    (normally zero) so that encoding reproduces the input exactly.
    """

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    imm_hi: int = 0
    pad: int = 0

    @property
    def cls(self) -> int:
        """The instruction class (``code & 7``)."""
        return self.code & 0x07

    @property
    def op(self) -> int:
        """ALU/JMP operation (``code & 0xf0``)."""
        return self.code & 0xF0

    @property
    def source(self) -> int:
        """ALU/JMP source bit: ``SRC_K`` (immediate) or ``SRC_X`` (register)."""
        return self.code & 0x08

    @property
    def size(self) -> int:
        """Load/store size field (``code & 0x18``)."""
        return self.code & 0x18

    @property
    def mode(self) -> int:
        """Load/store mode field (``code & 0xe0``)."""
        return self.code & 0xE0

    @property
    def is_wide(self) -> bool:
        """True for ``ld_imm64``, which occupies two slots."""
        return self.code == LD_IMM64

    @property
    def slots(self) -> int:
        """How many 8-byte slots this instruction takes (1, or 2 for ``ld_imm64``)."""
        return 2 if self.is_wide else 1

    @property
    def imm64(self) -> int:
        """The unsigned 64-bit constant of an ``ld_imm64``."""
        return (self.imm & 0xFFFFFFFF) | ((self.imm_hi & 0xFFFFFFFF) << 32)

    @property
    def is_call(self) -> bool:
        """``call`` of any kind (helper, bpf-to-bpf, kfunc)."""
        return self.code == JMP | JMP_CALL

    @property
    def is_helper_call(self) -> bool:
        """A call to a kernel helper by number."""
        return self.is_call and self.src == 0

    @property
    def is_pseudo_call(self) -> bool:
        """A bpf-to-bpf call (``src == 1``); ``imm`` is relative to the next slot."""
        return self.is_call and self.src == PSEUDO_CALL

    @property
    def is_kfunc_call(self) -> bool:
        """A call to a kernel function by BTF id (``src == 2``)."""
        return self.is_call and self.src == PSEUDO_KFUNC_CALL

    @property
    def is_pseudo_func(self) -> bool:
        """``ld_imm64`` of a sub-program's address (``src == 4``); ``imm`` is slot-relative."""
        return self.is_wide and self.src == PSEUDO_FUNC

    @property
    def is_exit(self) -> bool:
        """``exit``."""
        return self.code == JMP | JMP_EXIT

    @property
    def is_jump(self) -> bool:
        """A branch with a relative target: ``goto``/``gotol`` and conditional jumps."""
        if self.cls not in (JMP, JMP32):
            return False
        return self.op not in (JMP_CALL, JMP_EXIT)

    @property
    def is_long_jump(self) -> bool:
        """``gotol``: JMP32|JA, whose offset is in ``imm`` instead of ``off``."""
        return self.code == JMP32 | JMP_JA

    def jump_target(self, index: int) -> int | None:
        """Slot index this instruction at ``index`` branches to, or None if it does not branch.

        Covers jumps, bpf-to-bpf calls and ``ld_imm64`` of a function address (all relative).
        """
        if self.is_jump:
            return index + 1 + (self.imm if self.is_long_jump else self.off)
        if self.is_pseudo_call:
            return index + 1 + self.imm
        if self.is_pseudo_func:
            return index + 1 + self.imm
        return None

    def with_target(self, index: int, target: int) -> Instruction:
        """A copy of this branch at ``index`` retargeted to slot ``target``."""
        delta = target - index - 1
        if self.is_jump and not self.is_long_jump:
            if not -0x8000 <= delta <= 0x7FFF:
                raise ElfError(f"jump at {index} to {target} does not fit a 16-bit offset")
            return replace(self, off=delta)
        if self.is_long_jump or self.is_pseudo_call or self.is_pseudo_func:
            if not -0x80000000 <= delta <= 0x7FFFFFFF:
                raise ElfError(f"branch at {index} to {target} does not fit a 32-bit offset")
            return replace(self, imm=delta)
        raise ElfError(f"instruction at {index} (code {self.code:#04x}) does not branch")

    def encode(self, byteorder: ByteOrder = "little") -> bytes:
        """The 8 (or 16) bytes of this instruction."""
        return b"".join(_encode_slots(self, byteorder))

    def reads(self) -> frozenset[int]:
        """The registers (0-10) this instruction reads.

        ALU: ``dst`` and, in register form, ``src`` (``mov`` reads only ``src``, or nothing
        with an immediate; ``neg`` and byte swaps read ``dst``). Loads read the base ``src``;
        stores the base ``dst`` and the value ``src``; every atomic reads ``dst`` and ``src``,
        and ``cmpxchg`` also r0 (the expected value). ``ld_imm64`` reads nothing; the legacy
        packet loads ``ld_abs``/``ld_ind`` read r6 (the skb) and ``ld_ind`` its ``src``.
        Conditional jumps read ``dst`` (and ``src`` in register form); ``goto``/``gotol``
        nothing; ``exit`` reads r0.

        Calls follow the calling convention, because how many arguments a helper, kfunc or
        sub-program takes is not in the instruction: a call reads r1-r5 (all argument
        registers) and :meth:`writes` r0-r5 (r0 is the result, r1-r5 are clobbered). Reads
        are therefore an over-approximation for calls, writes are exact. The frame pointer
        r10 counts like any register (a stack store reads it).
        """
        cls = self.cls
        if cls in (ALU, ALU64):
            if self.op == ALU_MOV:
                return frozenset((self.src,)) if self.source == SRC_X else _NO_REGS
            if self.op in (ALU_NEG, ALU_END) or self.source == SRC_K:
                return frozenset((self.dst,))
            return frozenset((self.dst, self.src))
        if cls == LDX:
            return frozenset((self.src,))
        if cls == ST:
            return frozenset((self.dst,))
        if cls == STX:
            if self.mode == MODE_ATOMIC and self.imm == ATOMIC_CMPXCHG:
                return frozenset((self.dst, self.src, 0))
            return frozenset((self.dst, self.src))
        if cls == LD:
            if self.mode == MODE_ABS:
                return _SKB_REG
            if self.mode == MODE_IND:
                return frozenset((6, self.src))
            return _NO_REGS
        if self.is_call:
            return ARG_REGS
        if self.is_exit:
            return _R0
        if self.op == JMP_JA:
            return _NO_REGS
        return frozenset((self.dst, self.src)) if self.source == SRC_X else \
            frozenset((self.dst,))

    def writes(self) -> frozenset[int]:
        """The registers this instruction writes or leaves undefined (see :meth:`reads`).

        ALU, loads and ``ld_imm64``: ``dst``. Stores: nothing, except atomics with a fetch
        (``fetch_add``..., ``xchg``: the old value lands in ``src``) and ``cmpxchg`` (in r0).
        ``ld_abs``/``ld_ind`` and calls: r0-r5 (:data:`CALLER_SAVED`). Jumps and ``exit``:
        nothing.
        """
        cls = self.cls
        if cls in (ALU, ALU64, LDX):
            return frozenset((self.dst,))
        if cls == LD:
            if self.mode in (MODE_ABS, MODE_IND):
                return CALLER_SAVED
            return frozenset((self.dst,))
        if cls == STX and self.mode == MODE_ATOMIC:
            if self.imm == ATOMIC_CMPXCHG:
                return _R0
            if self.imm & ATOMIC_FETCH:
                return frozenset((self.src,))
            return _NO_REGS
        if self.is_call:
            return CALLER_SAVED
        return _NO_REGS


def _pack(code: int, dst: int, src: int, off: int, imm: int, byteorder: ByteOrder) -> bytes:
    if not (0 <= code <= 0xFF and 0 <= dst <= 0xF and 0 <= src <= 0xF):
        raise ElfError(f"instruction field out of range: code={code} dst={dst} src={src}")
    if not (-0x8000 <= off <= 0x7FFF and -0x80000000 <= imm <= 0x7FFFFFFF):
        raise ElfError(f"instruction field out of range: off={off} imm={imm}")
    if byteorder == "little":
        return _LE.pack(code, (src << 4) | dst, off, imm)
    return _BE.pack(code, (dst << 4) | src, off, imm)


def _encode_slots(insn: Instruction, byteorder: ByteOrder) -> list[bytes]:
    first = _pack(insn.code, insn.dst, insn.src, insn.off, insn.imm, byteorder)
    if not insn.is_wide:
        return [first]
    if not 0 <= insn.pad <= 0xFFFFFFFF or not -0x80000000 <= insn.imm_hi <= 0x7FFFFFFF:
        raise ElfError(f"ld_imm64 second slot out of range: pad={insn.pad} imm={insn.imm_hi}")
    if byteorder == "big":
        second = insn.pad.to_bytes(4, "big") + struct.pack(">i", insn.imm_hi)
    else:
        second = insn.pad.to_bytes(4, "little") + struct.pack("<i", insn.imm_hi)
    return [first, second]


def decode_one(data: bytes, offset: int = 0, byteorder: ByteOrder = "little") -> Instruction:
    """Decode the instruction starting at byte ``offset`` of ``data``.

    Raises :class:`ElfError` when fewer than 8 bytes (16 for ``ld_imm64``) remain.
    """
    if offset < 0 or offset + INSN_SIZE > len(data):
        raise ElfError(f"truncated instruction at byte {offset}")
    unpack = _LE if byteorder == "little" else _BE
    code, regs, off, imm = unpack.unpack_from(data, offset)
    if byteorder == "little":
        dst, src = regs & 0xF, regs >> 4
    else:
        dst, src = regs >> 4, regs & 0xF
    if code != LD_IMM64:
        return Instruction(code, dst, src, off, imm)
    if offset + 2 * INSN_SIZE > len(data):
        raise ElfError(f"ld_imm64 at byte {offset} lacks its second slot")
    pad = int.from_bytes(data[offset + 8:offset + 12], byteorder)
    (imm_hi,) = struct.unpack_from("<i" if byteorder == "little" else ">i", data, offset + 12)
    return Instruction(code, dst, src, off, imm, imm_hi, pad)


def decode(data: bytes, byteorder: ByteOrder = "little") -> list[Instruction]:
    """Decode a whole instruction stream (its length must be a multiple of 8)."""
    if len(data) % INSN_SIZE:
        raise ElfError(f"instruction stream of {len(data)} bytes is not a multiple of 8")
    out: list[Instruction] = []
    pos = 0
    while pos < len(data):
        insn = decode_one(data, pos, byteorder)
        out.append(insn)
        pos += insn.slots * INSN_SIZE
    return out


def encode(insns: Iterable[Instruction], byteorder: ByteOrder = "little") -> bytes:
    """Encode instructions back to bytes."""
    return b"".join(part for insn in insns for part in _encode_slots(insn, byteorder))


def slot_offsets(insns: Sequence[Instruction]) -> list[int]:
    """The slot index of each instruction (``ld_imm64`` advances by two)."""
    out: list[int] = []
    pos = 0
    for insn in insns:
        out.append(pos)
        pos += insn.slots
    return out


def insert_instructions(
    insns: Sequence[Instruction], inserts: Mapping[int, Sequence[Instruction]]
) -> list[Instruction]:
    """Insert instructions before given slot indices and fix every relative branch across them.

    ``inserts`` maps a slot index of ``insns`` (an instruction boundary, or the end) to the
    instructions to place before it. Branches of the original program (jumps, ``gotol``,
    bpf-to-bpf calls, ``ld_imm64`` of a function address) keep their original destination; a
    branch to slot ``T`` lands on the code inserted at ``T``, so inserted code runs on every path
    reaching ``T``. Inserted instructions are copied as they are (their branches are taken as
    relative to themselves). Raises :class:`ElfError` for an index that is not an instruction
    boundary or a branch leaving the program, or an offset that no longer fits.
    """
    starts = slot_offsets(insns)
    total = starts[-1] + insns[-1].slots if insns else 0
    boundaries = set(starts) | {total}
    for where in inserts:
        if where not in boundaries:
            raise ElfError(f"cannot insert at slot {where}: not an instruction boundary")
    added_before: dict[int, int] = {}
    running = 0
    for slot in sorted(boundaries):
        added_before[slot] = running  # slots inserted strictly before this boundary's own block
        running += sum(i.slots for i in inserts.get(slot, ()))

    def block_start(old: int) -> int:
        return old + added_before[old]

    def new_position(old: int) -> int:
        return old + added_before[old] + sum(i.slots for i in inserts.get(old, ()))

    out: list[Instruction] = []
    for old, insn in zip(starts, insns, strict=True):
        out.extend(inserts.get(old, ()))
        target = insn.jump_target(old)
        if target is not None:
            if target not in boundaries:
                raise ElfError(f"branch at slot {old} targets slot {target}, outside the program")
            insn = insn.with_target(new_position(old), block_start(target))
        out.append(insn)
    out.extend(inserts.get(total, ()))
    return out
