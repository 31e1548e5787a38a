"""Control flow and forward data flow over a decoded program.

Indexes here are positions in the instruction list (an ``ld_imm64`` is one instruction), not
slots; :class:`ControlFlow` keeps the slot of each instruction for messages and jump targets.
The analysis is intra-procedural: a call (helper, kfunc or bpf-to-bpf) falls through to the next
instruction, its effect on registers being :meth:`Instruction.writes` (r0-r5).

A typical use tracks some property of registers forward through a program::

    states = forward_dataflow(insns, MyState.entry(), lambda i, s: my_transfer(insns[i], s))
    # states[i]: what holds before instruction i on every path (None: unreachable)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from .errors import ElfError
from .insn import JMP_JA, Instruction, slot_offsets

__all__ = ["ControlFlow", "FlowState", "forward_dataflow"]

S = TypeVar("S", bound="FlowState")


class FlowState(Protocol):
    """What :func:`forward_dataflow` needs of an abstract state."""

    def copy(self: S) -> S:
        """An independent copy."""

    def merge(self: S, other: S) -> bool:
        """Join ``other`` into this state in place; True when this state changed."""


class ControlFlow:
    """The successors of each instruction of ``insns`` (by instruction index).

    Conditional jumps have two successors, the target first, then the next instruction;
    ``goto``/``gotol`` one, ``exit`` none, everything else the next instruction.
    """

    def __init__(self, insns: Sequence[Instruction]) -> None:
        self.insns = insns
        self.slots = slot_offsets(insns)
        self._index = {slot: i for i, slot in enumerate(self.slots)}

    def index_of_slot(self, slot: int) -> int | None:
        """The instruction starting at ``slot``, or None (inside an ``ld_imm64``, outside)."""
        return self._index.get(slot)

    def successors(self, index: int) -> tuple[int, ...]:
        """Where control goes after instruction ``index``.

        Raises :class:`ElfError` for a jump to a slot that is not an instruction of the
        program, or for control falling off the end (the last instruction is not ``exit`` or
        an unconditional jump).
        """
        insn = self.insns[index]
        slot = self.slots[index]
        if insn.is_exit:
            return ()
        out: list[int] = []
        if insn.is_jump:
            target = insn.jump_target(slot)
            assert target is not None
            where = self._index.get(target)
            if where is None:
                raise ElfError(f"jump at slot {slot} leaves the program (to slot {target})")
            out.append(where)
            if insn.op == JMP_JA:  # goto / gotol
                return tuple(out)
        if index + 1 >= len(self.insns):
            raise ElfError(f"instruction at slot {slot} falls off the end of the program")
        out.append(index + 1)
        return tuple(out)


def forward_dataflow(insns: Sequence[Instruction], entry: S,
                     transfer: Callable[[int, S], S], *,
                     max_visits: int | None = None) -> list[S | None]:
    """The state before each instruction, iterated to a fixed point from ``entry`` at 0.

    ``transfer(index, before)`` returns the state after instruction ``index``; it must not
    modify ``before`` (copy it). Each successor's state is a copy of the first state reaching it,
    merged (:meth:`FlowState.merge`) with later ones; an instruction whose state changed is
    visited again (last in, first out). The result has ``None`` for unreachable instructions.
    Only reachable instructions are checked (see :meth:`ControlFlow.successors`); more than
    ``max_visits`` visits raise :class:`ElfError`. The merge must converge (a finite lattice).
    """
    states: list[S | None] = [None] * len(insns)
    if not insns:
        return states
    flow = ControlFlow(insns)
    states[0] = entry
    work = [0]
    visits = 0
    while work:
        index = work.pop()
        visits += 1
        if max_visits is not None and visits > max_visits:
            raise ElfError(f"data flow did not settle within {max_visits} visits")
        before = states[index]
        assert before is not None
        after = transfer(index, before)
        for succ in flow.successors(index):
            current = states[succ]
            if current is None:
                states[succ] = after.copy()
                work.append(succ)
            elif current.merge(after):
                work.append(succ)
    return states
