"""The legacy program context (spec §8) and its mapping onto each Linux backend's context.

Legacy ``R1`` pointed at ``struct { u64 ptype; u64 paddr; TrapFrame tf; }`` (288 bytes): RISC-V
x0..x31 at ``16 + 8*i``, ``sstatus`` at 272, ``sepc`` at 280.  Each backend gives every 8-byte
slot of it a *source*: a field of the Linux context (``("field", offset)``) or a constant.

===========  ==========================================  ====================================
slot         syscall tracepoint (sys_enter / sys_exit)    kprobe (x86_64 ``pt_regs``)
===========  ==========================================  ====================================
ptype        0 / 1 / 2 by target type                     same
paddr        the syscall number (``__syscall_nr``)        ``ip``
a0 (x10)     0 (was ``&self``) / the return value         ``di`` / at exit ``ax``
a1..a6       the syscall's ``args[0..5]`` (entry only)     ``si, dx, cx, r8, r9`` (a1..a5)
a7 (x17)     the syscall number                           0
sp (x2)      0                                            ``sp``
sepc         0                                            ``ip``
others       0                                            0
===========  ==========================================  ====================================

fentry/fexit (``BPF_PROG_TYPE_TRACING``) read the probed function's arguments as an array of
u64 (``ctx[k]``; fexit adds the return value after them).  For a syscall handler
``__x64_sys_<name>(const struct pt_regs *regs)`` the mapping is the tracepoint one, read through
``regs`` (a BTF pointer the verifier lets the program load from directly): ``paddr`` and ``a7``
are ``regs->orig_ax`` (the syscall number), ``a1..a6`` are ``di, si, dx, r10, r8, r9`` at entry,
``a0`` is the return value at exit.  For any other function, ``a0..a5`` are its first six
arguments at entry and ``a0`` is its return value at exit (the kprobe mapping without ``ip``
and ``sp``, which fentry does not see).

The legacy probed functions were Rust methods whose ``a0`` was ``&self`` and whose arguments
started at ``a1``: the tracepoint mapping keeps that (``a1`` is the syscall's first argument).
On kprobes of plain Linux functions, ``a0`` is the first argument.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pylibbpf.elf import insn as I
from pylibbpf.elf.insn import Instruction

from .targets import Phase

__all__ = ["LEGACY_CTX_SIZE", "Backend", "TracedFunction", "ctx_sources", "reg_offset",
           "regs_load", "synthetic_prologue"]

LEGACY_CTX_SIZE = 288
_REG_BASE = 16
_RISCV_REGS = ("zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2",
               "a3", "a4", "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9",
               "s10", "s11", "t3", "t4", "t5", "t6")


class Backend(str, enum.Enum):
    """How a legacy attachment is made on Linux."""

    TRACEPOINT = "tracepoint"  # syscalls/sys_enter_* and sys_exit_*
    KPROBE = "kprobe"          # kprobe / kretprobe
    FENTRY = "fentry"          # fentry / fexit (BPF trampolines)


@dataclass(frozen=True)
class TracedFunction:
    """A kernel function an fentry/fexit program attaches to: its vmlinux BTF id, how many
    arguments it takes and whether it is a syscall handler taking ``struct pt_regs *``."""

    name: str
    btf_id: int
    nargs: int
    syscall_regs: bool = False


def reg_offset(name: str) -> int:
    """Offset of a RISC-V register (``"a0"``, ``"sp"``...) in the legacy context."""
    return _REG_BASE + 8 * _RISCV_REGS.index(name)


_PT_REGS_X86_64 = {"r15": 0, "r14": 8, "r13": 16, "r12": 24, "bp": 32, "bx": 40, "r11": 48,
                   "r10": 56, "r9": 64, "r8": 72, "ax": 80, "cx": 88, "dx": 96, "si": 104,
                   "di": 112, "orig_ax": 120, "ip": 128, "cs": 136, "flags": 144, "sp": 152}
_TP_ID, _TP_ARGS, _TP_RET = 8, 16, 16

_SYSCALL_ARG_REGS = ("di", "si", "dx", "r10", "r8", "r9")

Source = tuple[str, int]


def ctx_sources(backend: Backend, phase: Phase, tp_args: int = 6,
                function: TracedFunction | None = None) -> dict[int, Source]:
    """Legacy context offset -> ``("field", linux_offset)`` (8 bytes), ``("field32",
    linux_offset)`` (4 bytes, zero-extended), ``("regs", pt_regs_offset)`` (8 bytes of the
    ``struct pt_regs`` whose pointer is the context's first u64) or ``("const", value)``.

    ``tp_args``: how many arguments the syscall tracepoint record holds (the kernel refuses a
    program reading past the record); the legacy registers beyond them read as 0.
    ``function``: the fentry/fexit target (required for :attr:`Backend.FENTRY`).
    """
    table: dict[int, Source] = {off: ("const", 0) for off in range(0, LEGACY_CTX_SIZE, 8)}
    table[0] = ("const", phase.value)
    if backend is Backend.TRACEPOINT:
        # the record's __syscall_nr is an int (4 bytes) at offset 8
        table[8] = ("field32", _TP_ID)
        table[reg_offset("a7")] = ("field32", _TP_ID)
        if phase.at_exit:
            table[reg_offset("a0")] = ("field", _TP_RET)
        else:
            for k in range(min(tp_args, 6)):
                table[reg_offset(f"a{k + 1}")] = ("field", _TP_ARGS + 8 * k)
    elif backend is Backend.KPROBE:
        regs = _PT_REGS_X86_64
        table[8] = ("field", regs["ip"])
        table[280] = ("field", regs["ip"])
        table[reg_offset("sp")] = ("field", regs["sp"])
        if phase.at_exit:
            table[reg_offset("a0")] = ("field", regs["ax"])
        else:
            for k, reg in enumerate(("di", "si", "dx", "cx", "r8", "r9")):
                table[reg_offset(f"a{k}")] = ("field", regs[reg])
    elif backend is Backend.FENTRY:
        if function is None:
            raise ValueError("the fentry backend needs the traced function")
        if function.syscall_regs:
            regs = _PT_REGS_X86_64
            table[8] = ("regs", regs["orig_ax"])
            table[reg_offset("a7")] = ("regs", regs["orig_ax"])
            if phase.at_exit:
                table[reg_offset("a0")] = ("field", 8 * function.nargs)
            else:
                for k, reg in enumerate(_SYSCALL_ARG_REGS):
                    table[reg_offset(f"a{k + 1}")] = ("regs", regs[reg])
        elif phase.at_exit:
            table[reg_offset("a0")] = ("field", 8 * function.nargs)
        else:
            for k in range(min(function.nargs, 6)):
                table[reg_offset(f"a{k}")] = ("field", 8 * k)
    return table


def regs_load(dst: int, ctx_reg: int, regs_offset: int) -> list[Instruction]:
    """``dst = ((struct pt_regs *)ctx[0])->field``: two loads, the second through the BTF
    pointer the fentry context holds (the verifier turns it into a fault-safe read)."""
    ldx_dw = I.LDX | I.SIZE_DW | I.MODE_MEM
    return [Instruction(ldx_dw, dst, ctx_reg, 0, 0),
            Instruction(ldx_dw, dst, dst, regs_offset, 0)]


def synthetic_prologue(ctx_map_fd: int, sources: dict[int, Source]) -> list[Instruction]:
    """Code that builds the legacy context in a per-CPU map value and points r1 at it.

    Used when the program reads the context by variable index (``ctx->tf.regs[i]``), which the
    verifier refuses on a real context but accepts, bounds-checked, on a map value.
    """
    stx_dw = I.STX | I.SIZE_DW | I.MODE_MEM
    st_dw = I.ST | I.SIZE_DW | I.MODE_MEM
    code = [
        Instruction(I.ALU64 | I.ALU_MOV | I.SRC_X, 6, 1),            # r6 = ctx
        Instruction(I.ST | I.SIZE_W | I.MODE_MEM, 10, 0, -4, 0),     # *(u32 *)(r10 - 4) = 0
        Instruction(I.LD_IMM64, 1, I.PSEUDO_MAP_FD, 0, ctx_map_fd),  # r1 = &ctx_map
        Instruction(I.ALU64 | I.ALU_MOV | I.SRC_X, 2, 10),           # r2 = r10
        Instruction(I.ALU64 | I.ALU_ADD | I.SRC_K, 2, 0, 0, -4),     # r2 += -4
        Instruction(I.JMP | I.JMP_CALL, 0, 0, 0, 1),                 # map_lookup_elem
        Instruction(I.JMP | I.JMP_JNE | I.SRC_K, 0, 0, 2, 0),        # if r0 != 0 goto +2
        Instruction(I.ALU64 | I.ALU_MOV | I.SRC_K, 0, 0, 0, 0),      # r0 = 0
        Instruction(I.JMP | I.JMP_EXIT),                             # exit
    ]
    for off in range(0, LEGACY_CTX_SIZE, 8):
        kind, value = sources[off]
        if kind in ("field", "field32"):
            size = I.SIZE_W if kind == "field32" else I.SIZE_DW
            code.append(Instruction(I.LDX | size | I.MODE_MEM, 2, 6, value, 0))
            code.append(Instruction(stx_dw, 0, 2, off, 0))
        elif kind == "regs":
            code.extend(regs_load(2, 6, value))
            code.append(Instruction(stx_dw, 0, 2, off, 0))
        else:
            code.append(Instruction(st_dw, 0, 0, off, value))
    code.append(Instruction(I.ALU64 | I.ALU_MOV | I.SRC_X, 1, 0))   # r1 = legacy ctx
    return code
