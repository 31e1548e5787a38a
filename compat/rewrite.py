"""The rewrite that makes a legacy program acceptable to Linux (spec §4, §6, §8, §10).

One forward data-flow pass (:func:`pylibbpf.elf.forward_dataflow`, with the register effects of
:meth:`pylibbpf.elf.Instruction.writes`) tags each register (an ``extern`` map slot, the context
pointer plus an offset, a stack address, a constant) and the bytes of constant stores to the
stack.  From the tags at each instruction the rewrite:

* turns ``ld_imm64 rP, &map_sym`` into ``ld_imm64 rP, map_by_fd(fd)`` and each ``ldxw rX,
  [rP+0]`` reached by rP (through moves, and across calls in r6-r9) into ``mov64 rX, rP``;
* adds a NULL check after each ``map_lookup_elem`` whose result is used (a safe ``return 0``);
* gives ``trace_printk`` a translated format string (``{}`` -> ``%llu``) kept in a map;
* gives ``get_current_comm`` the legacy return value (the buffer size, see docs);
* records every context read, so each attach backend can remap it (see :mod:`compat.context`).

Every branch offset is fixed by :func:`pylibbpf.elf.insn.insert_instructions`.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pylibbpf.elf import ElfError, forward_dataflow
from pylibbpf.elf import insn as I
from pylibbpf.elf.insn import Instruction

from .errors import RewriteError
from .printk import translate_format

__all__ = ["Rewritten", "rewrite", "HELPER_LOOKUP", "HELPER_TRACE_PRINTK"]

HELPER_LOOKUP, HELPER_UPDATE, HELPER_DELETE, HELPER_PROBE_READ = 1, 2, 3, 4
HELPER_TRACE_PRINTK, HELPER_GET_COMM = 6, 16

Tag = tuple[Any, ...] | None
_CTX_ANY: Tag = ("ctxany",)
_MAX_VISITS = 200_000

MOV64_X = I.ALU64 | I.ALU_MOV | I.SRC_X
MOV64_K = I.ALU64 | I.ALU_MOV | I.SRC_K
JNE_K = I.JMP | I.JMP_JNE | I.SRC_K
JA = I.JMP | I.JMP_JA
EXIT = I.JMP | I.JMP_EXIT


def mov_imm(dst: int, imm: int) -> Instruction:
    """``mov64 dst, imm``."""
    return Instruction(MOV64_K, dst, 0, 0, imm)


def ld_map_fd(dst: int, fd: int) -> Instruction:
    """``ld_imm64 dst, map_by_fd(fd)``."""
    return Instruction(I.LD_IMM64, dst, I.PSEUDO_MAP_FD, 0, fd, 0, 0)


def ld_map_value(dst: int, fd: int, offset: int) -> Instruction:
    """``ld_imm64 dst, map_value(fd) + offset``."""
    return Instruction(I.LD_IMM64, dst, I.PSEUDO_MAP_VALUE, 0, fd, offset, 0)


def null_check() -> list[Instruction]:
    """``if r0 != 0 goto +2; r0 = 0; exit``: both paths reachable, nothing unreachable."""
    return [Instruction(JNE_K, 0, 0, 2, 0), mov_imm(0, 0), Instruction(EXIT)]


@dataclass
class Rewritten:
    """A rewritten program: instructions plus what the per-backend context step needs."""

    insns: list[Instruction]
    ctx_loads: dict[int, int] = field(default_factory=dict)  # index -> legacy ctx offset
    needs_synthetic_ctx: bool = False
    formats: list[tuple[bytes, bytes]] = field(default_factory=list)  # (legacy, linux)
    fmt_patches: list[tuple[int, int]] = field(default_factory=list)  # (index, fmt offset)
    notes: list[str] = field(default_factory=list)
    origin: dict[int, int] = field(default_factory=dict)  # new index -> legacy slot


class _State:
    __slots__ = ("regs", "stack")

    def __init__(self, regs: list[Tag], stack: dict[int, int]) -> None:
        self.regs = regs
        self.stack = stack

    def copy(self) -> _State:
        return _State(list(self.regs), dict(self.stack))

    def merge(self, other: _State) -> bool:
        """Merge ``other`` in; True when this state changed."""
        changed = False
        for r in range(11):
            a, b = self.regs[r], other.regs[r]
            if a == b or a is None:
                continue
            if a[0] in ("ctx", "ctxany") and b is not None and b[0] in ("ctx", "ctxany"):
                merged: Tag = _CTX_ANY
            else:
                merged = None
            if merged != a:
                self.regs[r] = merged
                changed = True
        for off in list(self.stack):
            if other.stack.get(off) != self.stack[off]:
                del self.stack[off]
                changed = True
        return changed


def _store_bytes(state: _State, base: Tag, off: int, size: int, value: Tag) -> None:
    if base is None or base[0] != "stk":
        return
    start = base[1] + off
    if value is not None and value[0] == "const":
        data = (value[1] & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        for k in range(size):
            state.stack[start + k] = data[k]
    else:
        for k in range(size):
            state.stack.pop(start + k, None)


def _alu(insn: Instruction, state: _State) -> None:
    regs = state.regs
    is64 = insn.cls == I.ALU64
    # neg and byte swaps read no source register (a byte swap's source bit is its byte order,
    # and its src field is not checked against r0-r10 by rewrite(): see Instruction.reads)
    uses_src = insn.source == I.SRC_X and insn.op not in (I.ALU_NEG, I.ALU_END)
    src: Tag = regs[insn.src] if uses_src else ("const", insn.imm)
    dst = regs[insn.dst]
    op = insn.op
    result: Tag = None
    if op == I.ALU_MOV:
        if insn.source == I.SRC_X and insn.src == 10:
            result = ("stk", 0) if is64 else None
        elif src is not None and src[0] == "const":
            value = src[1] if is64 else src[1] & 0xFFFFFFFF
            result = ("const", value & 0xFFFFFFFFFFFFFFFF)
        elif is64:
            result = src
    elif op in (I.ALU_ADD, I.ALU_SUB) and dst is not None:
        if src is not None and src[0] == "const":
            delta = src[1] if op == I.ALU_ADD else -src[1]
            if dst[0] in ("stk", "ctx") and is64:
                result = (dst[0], dst[1] + _signed64(delta))
            elif dst[0] == "ctxany":
                result = _CTX_ANY
            elif dst[0] == "const":
                result = ("const", (dst[1] + delta) & _mask(is64))
        elif dst[0] in ("ctx", "ctxany"):
            result = _CTX_ANY
    elif dst is not None and dst[0] == "const" and src is not None and src[0] == "const":
        a, b = dst[1], src[1] & _mask(is64)
        ops = {I.ALU_OR: lambda: a | b, I.ALU_AND: lambda: a & b, I.ALU_XOR: lambda: a ^ b,
               I.ALU_LSH: lambda: a << (b & 63), I.ALU_RSH: lambda: a >> (b & 63),
               I.ALU_MUL: lambda: a * b}
        if op in ops:
            result = ("const", ops[op]() & _mask(is64))
    elif dst is not None and dst[0] in ("ctx", "ctxany"):
        result = _CTX_ANY
    regs[insn.dst] = result


def _mask(is64: bool) -> int:
    return 0xFFFFFFFFFFFFFFFF if is64 else 0xFFFFFFFF


def _signed64(value: int) -> int:
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >> 63 else value


def _analyse(insns: list[Instruction], slots: list[int], map_relocs: Mapping[int, str]
             ) -> list[_State | None]:
    """The tags before each instruction (None where no path reaches it)."""
    regs0: list[Tag] = [None] * 11
    regs0[1] = ("ctx", 0)
    regs0[10] = ("stk", 0)
    visits = 0

    def transfer(i: int, state: _State) -> _State:
        nonlocal visits
        visits += 1
        if visits > _MAX_VISITS:
            raise RewriteError(_errno.E2BIG, "the legacy program is too complex to analyse")
        return _transfer(insns[i], slots[i], state, map_relocs)

    try:
        return forward_dataflow(insns, _State(regs0, {}), transfer)
    except ElfError as exc:
        raise RewriteError(_errno.EINVAL, f"the legacy .text cannot run: {exc}") from None


def _transfer(insn: Instruction, slot: int, state: _State, map_relocs: Mapping[int, str]
              ) -> _State:
    """The tags after ``insn`` (``state``, the tags before it, is left alone)."""
    out = state.copy()
    cls = insn.cls
    if insn.is_wide:
        sym = map_relocs.get(slot)
        if sym is not None:
            out.regs[insn.dst] = ("map", sym)
        elif insn.src == 0:
            out.regs[insn.dst] = ("const", insn.imm64)
        else:
            out.regs[insn.dst] = None
    elif cls == I.LDX:
        base = state.regs[insn.src]
        if base is not None and base[0] == "map" and insn.size == I.SIZE_W and insn.off == 0:
            out.regs[insn.dst] = base  # becomes ``mov64 dst, rP``
        else:
            out.regs[insn.dst] = None
    elif cls == I.ST:
        if insn.mode == I.MODE_MEM:
            _store_bytes(out, state.regs[insn.dst], insn.off, I.SIZE_BYTES[insn.size],
                         ("const", insn.imm))
    elif cls == I.STX:
        value = state.regs[insn.src] if insn.mode == I.MODE_MEM else None
        _store_bytes(out, state.regs[insn.dst], insn.off, I.SIZE_BYTES[insn.size], value)
        for r in insn.writes():  # an atomic fetch or cmpxchg replaces a register
            out.regs[r] = None
    elif cls in (I.ALU, I.ALU64):
        _alu(insn, out)
    elif insn.is_call:
        if insn.is_helper_call and insn.imm in (HELPER_PROBE_READ, HELPER_GET_COMM):
            dst, size = state.regs[1], state.regs[2]
            if dst is not None and dst[0] == "stk":
                if size is not None and size[0] == "const" and size[1] < 4096:
                    for k in range(size[1]):
                        out.stack.pop(dst[1] + k, None)
                else:
                    out.stack.clear()
        for r in insn.writes():
            out.regs[r] = None
    elif cls == I.LD:
        for r in insn.writes():  # ld_abs/ld_ind
            out.regs[r] = None
    return out


def _result_used(insns: list[Instruction], i: int) -> bool:
    for insn in insns[i + 1:]:
        if 0 in insn.reads() or insn.is_jump or insn.is_exit:
            return True
        if 0 in insn.writes():
            return False
    return True


def rewrite(insns: list[Instruction], map_relocs: Mapping[int, str],
            map_fds: Mapping[str, int], fmt_base: int = 0) -> Rewritten:
    """Rewrite a legacy program (``insns`` decoded from ``.text``).

    ``map_relocs`` maps the slot of each ``ld_imm64`` relocated against a map_array symbol to
    the symbol; ``map_fds`` maps the symbol to its fd.  Format strings are laid out from
    ``fmt_base`` in the format map (patched in by :mod:`compat.loader`).
    """
    if not insns:
        raise RewriteError(_errno.ENOENT, ".text is empty: the legacy program has no code")
    slots = I.slot_offsets(insns)
    for insn, slot in zip(insns, slots, strict=True):
        bad = [r for r in insn.reads() | insn.writes() if r > 10]
        if bad:
            raise RewriteError(_errno.EINVAL, f"legacy instruction {slot} (code "
                               f"{insn.code:#04x}) uses r{max(bad)}: eBPF has r0-r10")
    states = _analyse(insns, slots, map_relocs)
    replace: dict[int, Instruction] = {}
    before: dict[int, list[Instruction]] = {}
    result = Rewritten([])
    fmt_offset = fmt_base
    fmt_sites: list[tuple[int, int]] = []
    for i, insn in enumerate(insns):
        state = states[i]
        if state is None:
            continue  # unreachable in the legacy program; the verifier will say so
        regs = state.regs
        if insn.is_wide and slots[i] in map_relocs:
            replace[i] = ld_map_fd(insn.dst, map_fds[map_relocs[slots[i]]])
            continue
        for r in sorted(insn.reads()):
            tag = regs[r]
            if tag is None:
                continue
            if tag[0] == "map":
                load_ok = (insn.cls == I.LDX and r == insn.src and insn.size == I.SIZE_W
                           and insn.off == 0)
                copy_ok = (insn.cls in (I.ALU64,) and insn.op == I.ALU_MOV
                           and insn.source == I.SRC_X)
                if insn.is_call:
                    continue  # a map pointer passed to a helper is what Linux wants
                if not (load_ok or copy_ok):
                    raise RewriteError(
                        _errno.EINVAL,
                        f"legacy instruction {slots[i]} uses the address of extern map "
                        f"'{tag[1]}' in a way compat cannot translate (code "
                        f"{insn.code:#04x}); only '*(u32 *)&{tag[1]}' reads of the fd are "
                        "supported")
                if load_ok:
                    replace[i] = Instruction(MOV64_X, insn.dst, insn.src)
            elif tag[0] in ("ctx", "ctxany"):
                if insn.cls == I.LDX and r == insn.src and tag == ("ctx", 0) \
                        and insn.size == I.SIZE_DW:
                    result.ctx_loads[i] = insn.off
                elif insn.cls in (I.ALU64,) and insn.dst == r and insn.op in (
                        I.ALU_ADD, I.ALU_SUB, I.ALU_MOV) and tag[0] == "ctx" and \
                        insn.source == I.SRC_K:
                    continue
                elif insn.cls == I.ALU64 and insn.op == I.ALU_MOV and insn.source == I.SRC_X:
                    continue
                elif insn.is_exit or insn.is_call:
                    continue
                else:
                    result.needs_synthetic_ctx = True
        if insn.is_helper_call and insn.imm == HELPER_LOOKUP and _result_used(insns, i):
            before[slots[i]] = [insn, *null_check()]
            replace[i] = Instruction(JA)
        elif insn.is_helper_call and insn.imm == HELPER_GET_COMM:
            size = regs[2]
            if size is not None and size[0] == "const" and 0 < size[1] < (1 << 31):
                before[slots[i]] = [insn, mov_imm(0, size[1])]
                replace[i] = Instruction(JA)
                result.notes.append(f"get_current_comm at {slots[i]} returns {size[1]}")
        elif insn.is_helper_call and insn.imm == HELPER_TRACE_PRINTK:
            text = _known_string(state)
            if text is None:
                result.notes.append(f"trace_printk at {slots[i]}: format not known "
                                    "statically; passed through unchanged")
                continue
            linux = translate_format(text)
            result.formats.append((text, linux))
            fmt_sites.append((slots[i], fmt_offset))
            before[slots[i]] = [ld_map_value(1, 0, fmt_offset), mov_imm(2, len(linux))]
            fmt_offset += (len(linux) + 7) & ~7
    out = list(insns)
    for i, new in replace.items():
        out[i] = new
    try:
        final = I.insert_instructions(out, before)
    except ElfError as exc:
        raise RewriteError(_errno.E2BIG, f"the rewritten legacy program does not fit: {exc}"
                           ) from None
    # positions of the original instructions in the new stream
    new_index: list[int] = []
    added = 0
    for i in range(len(insns)):
        added += len(before.get(slots[i], ()))
        new_index.append(i + added)
    result.insns = final
    result.ctx_loads = {new_index[i]: off for i, off in result.ctx_loads.items()}
    result.fmt_patches = []
    for slot, offset in fmt_sites:
        i = slots.index(slot)
        result.fmt_patches.append((new_index[i] - 2, offset))
    for i in range(len(insns)):
        result.origin[new_index[i]] = slots[i]
    return result


def _known_string(state: _State) -> bytes | None:
    ptr, size = state.regs[1], state.regs[2]
    if ptr is None or ptr[0] != "stk" or size is None or size[0] != "const":
        return None
    length = size[1]
    if not 0 < length <= 512:
        return None
    data = bytearray()
    for k in range(length):
        byte = state.stack.get(ptr[1] + k)
        if byte is None:
            return None
        data.append(byte)
    return bytes(data)
