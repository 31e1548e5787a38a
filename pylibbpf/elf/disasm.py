"""Disassembly in llvm-objdump's BPF syntax, optionally with BTF source lines.

:func:`format_instruction` gives the text llvm-objdump 14 prints for one instruction
(``r1 = *(u32 *)(r2 + 8)``, ``if w1 s> 5 goto +3``, ``lock *(u64 *)(r0 + 0) += r1``...).
Immediates and offsets come in two styles: ``"decimal"`` (the default, as llvm-objdump 14 prints
them) or ``"hex"`` (``r1 = *(u32 *)(r2 + 0x8)``, ``call 0xe``: what llvm-objdump 15 and newer
print by default, and any release with ``--print-imm-hex``).
Instructions newer than llvm 14 (BPF ISA v4: ``sdiv``/``smod``, ``movsx``, ``bswap``,
sign-extending loads, ``gotol``, store of an immediate) use the syntax of newer llvm releases.
Anything the codec does not recognise prints as ``<unknown>``, as llvm-objdump does.

:func:`disassemble_object` reproduces the whole ``llvm-objdump -d`` listing: per executable
section a ``Disassembly of section NAME:`` block, a ``<symbol>:`` label wherever a symbol
starts, slot numbers, optional raw bytes, and ``<label>`` / ``<label+0xN>`` after jumps.
With ``source=True`` and ``.BTF.ext`` line info, each instruction that starts a source line is
preceded by ``; <source text> @ <file>:<line>:<column>`` (the style of ``bpftool prog dump``).
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from . import insn as I
from .errors import ElfError
from .reader import STT_FILE, STT_SECTION

if TYPE_CHECKING:
    from .objectfile import ObjectFile

__all__ = ["STYLES", "format_instruction", "disassemble_object", "disassemble_section"]

_ALU_OPS = {I.ALU_ADD: "+=", I.ALU_SUB: "-=", I.ALU_MUL: "*=", I.ALU_DIV: "/=",
            I.ALU_OR: "|=", I.ALU_AND: "&=", I.ALU_LSH: "<<=", I.ALU_RSH: ">>=",
            I.ALU_MOD: "%=", I.ALU_XOR: "^=", I.ALU_MOV: "=", I.ALU_ARSH: "s>>="}
_JMP_OPS = {I.JMP_JEQ: "==", I.JMP_JGT: ">", I.JMP_JGE: ">=", I.JMP_JSET: "&",
            I.JMP_JNE: "!=", I.JMP_JSGT: "s>", I.JMP_JSGE: "s>=", I.JMP_JLT: "<",
            I.JMP_JLE: "<=", I.JMP_JSLT: "s<", I.JMP_JSLE: "s<="}
_ATOMIC_OPS = {I.ALU_ADD: ("+=", "add"), I.ALU_OR: ("|=", "or"), I.ALU_AND: ("&=", "and"),
               I.ALU_XOR: ("^=", "xor")}
UNKNOWN = "<unknown>"


STYLES = ("decimal", "hex")


def _num(value: int, hexa: bool) -> str:
    """An immediate as llvm-objdump prints it: ``-8``, or with --print-imm-hex ``-0x8``."""
    if not hexa:
        return str(value)
    return f"-0x{-value:x}" if value < 0 else f"0x{value:x}"


def _mem(reg: int, off: int, hexa: bool) -> str:
    return f"r{reg} + {_num(off, hexa)}" if off >= 0 else f"r{reg} - {_num(-off, hexa)}"


def _branch(off: int, hexa: bool) -> str:
    return f"+{_num(off, hexa)}" if off >= 0 else _num(off, hexa)


def _check_style(style: str) -> bool:
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, not {style!r}")
    return style == "hex"


def format_instruction(insn: I.Instruction, *, style: str = "decimal") -> str:
    """llvm-objdump's text for one instruction (without a jump-target annotation).

    ``style="decimal"`` prints immediates and offsets as llvm-objdump 14 does by default
    (``r1 += -8``, ``call 14``); ``style="hex"`` as llvm-objdump 15 and newer do by default, or
    any release with ``--print-imm-hex`` (``r1 += -0x8``, ``call 0xe``).
    """
    hexa = _check_style(style)
    cls, code = insn.cls, insn.code
    if insn.dst > 10 or insn.src > 10:
        return UNKNOWN
    if cls in (I.ALU, I.ALU64):
        return _format_alu(insn, hexa)
    if cls in (I.JMP, I.JMP32):
        return _format_jmp(insn, hexa)
    bits = I.SIZE_BYTES[insn.size] * 8
    if cls == I.LD:
        if code == I.LD_IMM64:
            if insn.src == 0:
                value = insn.imm64 - (1 << 64) if insn.imm64 >= 1 << 63 else insn.imm64
                return f"r{insn.dst} = {_num(value, hexa)} ll"
            return f"ld_pseudo\tr{insn.dst}, {insn.src}, {_num(insn.imm & 0xFFFFFFFF, hexa)}"
        if insn.mode == I.MODE_ABS and insn.size != I.SIZE_DW:
            return f"r0 = *(u{bits} *)skb[{_num(insn.imm, hexa)}]"
        if insn.mode == I.MODE_IND and insn.size != I.SIZE_DW:
            return f"r0 = *(u{bits} *)skb[r{insn.src}]"
        return UNKNOWN
    if cls == I.LDX:
        if insn.mode == I.MODE_MEM:
            return f"r{insn.dst} = *(u{bits} *)({_mem(insn.src, insn.off, hexa)})"
        if insn.mode == I.MODE_MEMSX and insn.size != I.SIZE_DW:
            return f"r{insn.dst} = *(s{bits} *)({_mem(insn.src, insn.off, hexa)})"
        return UNKNOWN
    if cls == I.ST:
        if insn.mode == I.MODE_MEM:
            return f"*(u{bits} *)({_mem(insn.dst, insn.off, hexa)}) = {_num(insn.imm, hexa)}"
        return UNKNOWN
    # STX
    if insn.mode == I.MODE_MEM:
        return f"*(u{bits} *)({_mem(insn.dst, insn.off, hexa)}) = r{insn.src}"
    if insn.mode == I.MODE_ATOMIC and insn.size in (I.SIZE_W, I.SIZE_DW):
        return _format_atomic(insn, bits, hexa)
    return UNKNOWN


def _format_atomic(insn: I.Instruction, bits: int, hexa: bool) -> str:
    wide = insn.size == I.SIZE_DW
    reg = "r" if wide else "w"
    addr = _mem(insn.dst, insn.off, hexa)
    op = insn.imm & ~I.ATOMIC_FETCH
    if insn.imm == I.ATOMIC_XCHG:
        fn = "xchg_64" if wide else "xchg32_32"
        return f"{reg}{insn.src} = {fn}({addr}, {reg}{insn.src})"
    if insn.imm == I.ATOMIC_CMPXCHG:
        fn = "cmpxchg_64" if wide else "cmpxchg32_32"
        return f"{reg}0 = {fn}({addr}, {reg}0, {reg}{insn.src})"
    if op not in _ATOMIC_OPS or insn.imm & ~0xF1:
        return UNKNOWN
    sym, name = _ATOMIC_OPS[op]
    if insn.imm & I.ATOMIC_FETCH:
        return f"{reg}{insn.src} = atomic_fetch_{name}((u{bits} *)({addr}), {reg}{insn.src})"
    # llvm 14 names the source r even for the 32-bit form
    return f"lock *(u{bits} *)({addr}) {sym} r{insn.src}"


def _format_alu(insn: I.Instruction, hexa: bool) -> str:
    reg = "r" if insn.cls == I.ALU64 else "w"
    op = insn.op
    dst = f"{reg}{insn.dst}"
    if op == I.ALU_NEG:
        return f"{dst} = -{dst}"
    if op == I.ALU_END:
        if insn.imm not in (16, 32, 64):
            return UNKNOWN
        if insn.cls == I.ALU64:
            return UNKNOWN if insn.source else f"r{insn.dst} = bswap{insn.imm} r{insn.dst}"
        kind = "be" if insn.source else "le"
        return f"r{insn.dst} = {kind}{insn.imm} r{insn.dst}"
    if op not in _ALU_OPS:
        return UNKNOWN
    sym = _ALU_OPS[op]
    if op in (I.ALU_DIV, I.ALU_MOD) and insn.off == 1:
        sym = "s" + sym
    if op == I.ALU_MOV and insn.source == I.SRC_X and insn.off in (8, 16, 32):
        return f"{dst} = (s{insn.off}){reg}{insn.src}"
    operand = f"{reg}{insn.src}" if insn.source == I.SRC_X else _num(insn.imm, hexa)
    return f"{dst} {sym} {operand}"


def _format_jmp(insn: I.Instruction, hexa: bool) -> str:
    op = insn.op
    if op == I.JMP_JA:
        if insn.cls == I.JMP32:
            return f"gotol {_branch(insn.imm, hexa)}"
        return f"goto {_branch(insn.off, hexa)}"
    if op == I.JMP_CALL:
        if insn.cls != I.JMP:
            return UNKNOWN
        if insn.source == I.SRC_X:
            return f"callx r{insn.imm}" if 0 <= insn.imm <= 10 else UNKNOWN
        return f"call {_num(insn.imm, hexa)}"
    if op == I.JMP_EXIT:
        return "exit" if insn.cls == I.JMP and insn.imm == 0 else UNKNOWN
    if op not in _JMP_OPS:
        return UNKNOWN
    reg = "r" if insn.cls == I.JMP else "w"
    rhs = f"{reg}{insn.src}" if insn.source == I.SRC_X else _num(insn.imm, hexa)
    return f"if {reg}{insn.dst} {_JMP_OPS[op]} {rhs} goto {_branch(insn.off, hexa)}"


def _labels(obj: ObjectFile, sec_index: int, sec_name: str) -> list[tuple[int, str]]:
    """Symbols of a section as llvm-objdump uses them: one per address, sorted."""
    syms = sorted((s.value, s.name) for s in obj.symbols
                  if s.shndx == sec_index and s.type not in (STT_SECTION, STT_FILE))
    if not syms or syms[0][0] != 0:
        syms.insert(0, (0, sec_name))
    best: dict[int, str] = {}
    for addr, name in syms:
        best[addr] = name  # the last in (address, name) order wins, as in llvm-objdump
    return sorted(best.items())


def disassemble_section(obj: ObjectFile, sec_index: int, *, raw: bool = True,
                        source: bool = False, style: str = "decimal") -> str:
    """One ``Disassembly of section`` block (with its leading blank line)."""
    _check_style(style)
    sec = obj.section(sec_index)
    labels = _labels(obj, sec_index, sec.name)
    addrs = [a for a, _ in labels]
    lines = {}
    if source and obj.btf_ext is not None:
        lines = obj.btf_ext.lines_for(sec.name)
    out = [f"\nDisassembly of section {sec.name}:\n"]
    label_at = dict(labels)
    pos = 0
    data = sec.data
    while pos + I.INSN_SIZE <= len(data):
        slot = pos // 8
        if pos in label_at:
            out.append(f"\n{pos:016x} <{label_at[pos]}>:\n")
        if slot in lines:
            li = lines[slot]
            out.append(f"; {li.line_text.strip()} @ {li.file_name}:{li.line}:{li.column}\n")
        try:
            insn = I.decode_one(data, pos, obj.byteorder)
        except ElfError:  # a truncated ld_imm64: nothing valid to show
            size = 8
            text = UNKNOWN
        else:
            size = insn.slots * 8
            text = format_instruction(insn, style=style)
            if insn.is_jump and text != UNKNOWN:
                off = insn.imm if insn.is_long_jump else insn.off
                target = pos + 8 + off * 8
                k = bisect.bisect_right(addrs, target) - 1
                if k >= 0:
                    base, name = labels[k]
                    disp = target - base
                    text += f" <{name}+0x{disp:x}>" if disp else f" <{name}>"
        line = f"{slot:8d}:"
        if raw:
            line += "\t" + " ".join(f"{b:02x}" for b in data[pos:pos + size])
        out.append(f"{line}\t{text}\n")
        pos += size
    return "".join(out)


def disassemble_object(obj: ObjectFile, *, raw: bool = True, source: bool = False,
                       style: str = "decimal") -> str:
    """The whole ``llvm-objdump -d`` listing of ``obj`` (``raw=False``: --no-show-raw-insn;
    ``style``: as :func:`format_instruction`)."""
    _check_style(style)
    name = obj.path.rsplit("/", 1)[-1] if obj.path else obj.name
    parts = [f"\n{name}:\tfile format elf64-bpf\n"]
    for sec in obj.sections:
        if sec.is_exec and sec.size and sec.type != 8:
            parts.append(disassemble_section(obj, sec.index, raw=raw, source=source,
                                             style=style))
    return "".join(parts)
