"""Register effects (``Instruction.reads``/``writes``), control flow and the data-flow solver.

The register sets are checked against the kernel verifier: an instruction reads rK exactly when
the verifier refuses it with rK uninitialised (``R<K> !read_ok``); it writes a register it does
not read exactly when that register is readable afterwards, and clobbers a register it reads
when the register is unreadable afterwards (calls: r1-r5).
"""

from __future__ import annotations

import pytest

from pylibbpf.elf import (
    ARG_REGS,
    CALLER_SAVED,
    ControlFlow,
    ElfError,
    Instruction,
    forward_dataflow,
)

BPF_PROG_TYPE_SOCKET_FILTER = 1
EXIT = Instruction(0x95)


def mov_k(dst: int, imm: int) -> Instruction:
    return Instruction(0xB7, dst, 0, 0, imm)


def mov_x(dst: int, src: int) -> Instruction:
    return Instruction(0xBF, dst, src)


# (name, instruction, registers that must hold a stack pointer, expected reads, writes)
FORMS: list[tuple[str, Instruction, set[int], set[int], set[int]]] = [
    ("add64 reg", Instruction(0x0F, 1, 2), set(), {1, 2}, {1}),
    ("add64 imm", Instruction(0x07, 1, 0, 0, 5), set(), {1}, {1}),
    ("add32 reg", Instruction(0x0C, 1, 2), set(), {1, 2}, {1}),
    ("mul64 reg", Instruction(0x2F, 3, 4), set(), {3, 4}, {3}),
    ("mov64 reg", mov_x(1, 2), set(), {2}, {1}),
    ("mov64 imm", mov_k(1, 5), set(), set(), {1}),
    ("mov32 reg", Instruction(0xBC, 1, 2), set(), {2}, {1}),
    ("neg64", Instruction(0x87, 1), set(), {1}, {1}),
    ("be16", Instruction(0xDC, 1, 0, 0, 16), set(), {1}, {1}),
    ("le32", Instruction(0xD4, 1, 0, 0, 32), set(), {1}, {1}),
    ("ldxdw", Instruction(0x79, 1, 2, -8), {2}, {2}, {1}),
    ("ldxb", Instruction(0x71, 3, 2, -8), {2}, {2}, {3}),
    ("stdw imm", Instruction(0x7A, 1, 0, -8, 7), {1}, {1}, set()),
    ("stxdw", Instruction(0x7B, 1, 2, -8), {1}, {1, 2}, set()),
    ("stxw", Instruction(0x63, 1, 2, -8), {1}, {1, 2}, set()),
    ("atomic add", Instruction(0xDB, 1, 2, -8, 0x00), {1}, {1, 2}, set()),
    ("atomic or32", Instruction(0xC3, 1, 2, -8, 0x40), {1}, {1, 2}, set()),
    ("atomic fetch_add", Instruction(0xDB, 1, 2, -8, 0x01), {1}, {1, 2}, {2}),
    ("atomic fetch_xor32", Instruction(0xC3, 1, 2, -8, 0xA1), {1}, {1, 2}, {2}),
    ("xchg", Instruction(0xDB, 1, 2, -8, 0xE1), {1}, {1, 2}, {2}),
    ("cmpxchg", Instruction(0xDB, 1, 2, -8, 0xF1), {1}, {0, 1, 2}, {0}),
    ("ld_imm64", Instruction(0x18, 1, 0, 0, 5, 0), set(), set(), {1}),
    ("jeq reg", Instruction(0x1D, 1, 2, 0), set(), {1, 2}, set()),
    ("jgt imm", Instruction(0x25, 1, 0, 0, 3), set(), {1}, set()),
    ("jmp32 jne reg", Instruction(0x5E, 3, 4, 0), set(), {3, 4}, set()),
    ("ja", Instruction(0x05, 0, 0, 0), set(), set(), set()),
    ("call get_prandom_u32", Instruction(0x85, 0, 0, 0, 7), set(), set(ARG_REGS),
     set(CALLER_SAVED)),
    ("exit", EXIT, set(), {0}, set()),
]


@pytest.mark.parametrize("name, insn, _bases, reads, writes", FORMS, ids=[f[0] for f in FORMS])
def test_register_sets(name: str, insn: Instruction, _bases: set[int], reads: set[int],
                       writes: set[int]) -> None:
    assert insn.reads() == reads
    assert insn.writes() == writes


def test_legacy_packet_loads() -> None:
    ld_abs = Instruction(0x30, 0, 0, 0, 14)   # r0 = *(u8 *)skb[14]
    ld_ind = Instruction(0x48, 0, 3, 0, 2)    # r0 = *(u16 *)skb[r3 + 2]
    assert ld_abs.reads() == {6} and ld_ind.reads() == {6, 3}
    assert ld_abs.writes() == ld_ind.writes() == CALLER_SAVED


def _program(insn: Instruction, bases: set[int], uninit: int | None,
             after: int | None) -> list[Instruction]:
    code = [Instruction(0x7A, 10, 0, -8, 0)]  # *(u64 *)(r10 - 8) = 0
    if uninit is not None and 1 <= uninit <= 5:
        code.append(Instruction(0x85, 0, 0, 0, 7))  # r1 (the context) is set at entry: clobber
    for r in range(10):
        if r != uninit:
            code.append(mov_x(r, 10) if r in bases else mov_k(r, 0))
    code.append(insn)
    if insn.is_exit:
        return code
    if after is not None:
        code.append(mov_x(0, after))
    return [*code, mov_k(0, 0), EXIT]


def _verdict(code: list[Instruction]) -> str:
    """'ok', or the 'R<k> !read_ok' line of the verifier log."""
    import os

    from pylibbpf import VerifierError, lowlevel

    try:
        fd = lowlevel.prog_load(BPF_PROG_TYPE_SOCKET_FILTER, code, license="GPL")
    except VerifierError as exc:
        found = [ln for ln in exc.log.splitlines() if "!read_ok" in ln]
        assert found, exc.log
        return found[-1].strip()
    os.close(fd)
    return "ok"


def _verifier_forms() -> list[object]:
    """FORMS as params; the atomic forms need a kernel that knows them (5.12)."""
    atomic = ("atomic", "xchg", "cmpxchg")
    return [pytest.param(*form, id=form[0],
                         marks=[pytest.mark.needs("atomics")] if form[0].startswith(atomic)
                         else []) for form in FORMS]


@pytest.mark.kernel
@pytest.mark.parametrize("name, insn, bases, reads, writes", _verifier_forms())
def test_register_sets_match_the_verifier(name: str, insn: Instruction, bases: set[int],
                                          reads: set[int], writes: set[int]) -> None:
    assert _verdict(_program(insn, bases, None, None)) == "ok"
    for k in range(10):
        verdict = _verdict(_program(insn, bases, k, None))
        kernel_reads = verdict == f"R{k} !read_ok"
        if insn.is_call:  # the convention over-approximates: every argument register
            assert not kernel_reads or k in insn.reads()
        else:
            assert kernel_reads == (k in insn.reads()), (k, verdict)
        if insn.is_exit:
            continue
        if k in insn.reads():
            clobbered = _verdict(_program(insn, bases, None, k)) != "ok"
            assert not clobbered or k in insn.writes(), k
            if insn.is_call:
                assert clobbered == (k in insn.writes()), k
        else:
            assert (_verdict(_program(insn, bases, k, k)) == "ok") == (k in insn.writes()), k


def _prog(*insns: Instruction) -> list[Instruction]:
    return list(insns)


def test_control_flow_successors() -> None:
    prog = _prog(
        mov_k(0, 0),                            # 0
        Instruction(0x15, 1, 0, 3, 0),          # 1 (slot 1): if r1 == 0 goto slot 5
        Instruction(0x18, 2, 0, 0, 1, 0),       # 2 (slots 2-3)
        Instruction(0x05, 0, 0, 0),             # 3 (slot 4): goto slot 5
        Instruction(0x85, 0, 0, 0, 7),          # 4 (slot 5): call
        EXIT,                                   # 5 (slot 6)
    )
    flow = ControlFlow(prog)
    assert flow.slots == [0, 1, 2, 4, 5, 6]
    assert [flow.successors(i) for i in range(6)] == [(1,), (4, 2), (3,), (4,), (5,), ()]
    assert flow.index_of_slot(3) is None and flow.index_of_slot(5) == 4
    with pytest.raises(ElfError, match="leaves the program"):
        ControlFlow([Instruction(0x05, 0, 0, 5), EXIT]).successors(0)
    with pytest.raises(ElfError, match="leaves the program"):   # into an ld_imm64
        ControlFlow([Instruction(0x05, 0, 0, 1), Instruction(0x18, 1), EXIT]).successors(0)
    with pytest.raises(ElfError, match="falls off the end"):
        ControlFlow([mov_k(0, 0)]).successors(0)


class Consts:
    """Which registers hold a known constant (a tiny constant propagation)."""

    def __init__(self, regs: dict[int, int]) -> None:
        self.regs = regs

    def copy(self) -> Consts:
        return Consts(dict(self.regs))

    def merge(self, other: Consts) -> bool:
        drop = [r for r, v in self.regs.items() if other.regs.get(r) != v]
        for r in drop:
            del self.regs[r]
        return bool(drop)


def _consts(insns: list[Instruction]) -> list[Consts | None]:
    def transfer(i: int, before: Consts) -> Consts:
        after = before.copy()
        insn = insns[i]
        for r in insn.writes():
            after.regs.pop(r, None)
        if insn.code == 0xB7:
            after.regs[insn.dst] = insn.imm
        return after

    return forward_dataflow(insns, Consts({}), transfer)


def test_forward_dataflow_joins_paths() -> None:
    prog = _prog(
        mov_k(1, 1),                        # 0
        mov_k(2, 2),                        # 1
        Instruction(0x15, 3, 0, 2, 0),      # 2: if r3 == 0 goto 5
        mov_k(1, 9),                        # 3
        Instruction(0x05, 0, 0, 0),         # 4: goto 5
        Instruction(0x85, 0, 0, 0, 7),      # 5: call (clobbers r1-r5)
        EXIT,                               # 6
        mov_k(4, 4),                        # 7: unreachable
        EXIT,                               # 8
    )
    states = _consts(prog)
    assert states[3] is not None and states[3].regs == {1: 1, 2: 2}
    assert states[5] is not None and states[5].regs == {2: 2}   # r1 is 1 or 9
    assert states[6] is not None and states[6].regs == {}
    assert states[7] is None and states[8] is None


def test_forward_dataflow_loops_and_limits() -> None:
    loop = _prog(
        mov_k(1, 0),                        # 0
        Instruction(0x07, 1, 0, 0, 1),      # 1: r1 += 1
        Instruction(0x35, 1, 0, -2, 10),    # 2: if r1 >= 10 goto 1
        EXIT,
    )
    states = _consts(loop)
    assert states[1] is not None and states[1].regs == {}
    with pytest.raises(ElfError, match="did not settle"):
        forward_dataflow(loop, Consts({}), lambda i, s: s.copy(), max_visits=2)
    with pytest.raises(ElfError, match="falls off the end"):
        _consts([mov_k(0, 0)])
    # an unreachable bad jump is not reported: only reachable code is checked
    assert _consts([EXIT, Instruction(0x05, 0, 0, 99)])[1] is None
    assert _consts([]) == []
