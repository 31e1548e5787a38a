"""The instruction codec: exact round trips, rewriting helpers, and fuzzed bad input."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pylibbpf.elf import ElfError, Instruction, ObjectFile, decode, encode, insert_instructions
from pylibbpf.elf.disasm import format_instruction
from pylibbpf.elf.insn import slot_offsets
from tests.support.elf_objects import all_objects, own_objects

OBJECTS = all_objects()
FUZZ = settings(max_examples=int(os.environ.get("ELF_FUZZ_EXAMPLES", "300")), deadline=2000,
                suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_round_trip_every_section(name: str) -> None:
    obj = ObjectFile.from_path(OBJECTS[name])
    for sec in obj.sections:
        if sec.is_exec and sec.size:
            insns = decode(sec.data)
            assert encode(insns) == sec.data
            assert sum(i.slots for i in insns) * 8 == sec.size


def _run(insns: list[Instruction], start: int = 0) -> list[int]:
    """Follow a straight-line/jump program (no conditions taken) and list the slots visited."""
    starts = slot_offsets(insns)
    where = {s: i for i, s in enumerate(starts)}
    seen, pc = [], start
    for _ in range(100):
        insn = insns[where[pc]]
        seen.append(pc)
        if insn.is_exit:
            break
        target = insn.jump_target(pc)
        pc = target if target is not None and insn.op == 0 else pc + insn.slots
    return seen


def test_insert_fixes_jumps_and_calls() -> None:
    prog = [
        Instruction(0xB7, 0, 0, 0, 1),              # 0: r0 = 1
        Instruction(0x05, off=2),                   # 1: goto +2 -> 4
        Instruction(0x18, 1, 0, 0, 5, 0),           # 2-3: r1 = 5 ll
        Instruction(0x15, 0, 0, -3, 0),             # 4: if r0 == 0 goto -3 -> 2
        Instruction(0x85, 0, 1, 0, 1),              # 5: call +1 -> 7
        Instruction(0x95),                          # 6: exit
        Instruction(0x95),                          # 7: exit (sub-program)
    ]
    nop = Instruction(0xBF, 2, 2)  # r2 = r2
    new = insert_instructions(prog, {0: [nop], 2: [nop, nop], 4: [nop], 7: [nop]})
    assert len(new) == len(prog) + 5
    # Each original branch now reaches the code inserted before its original target.
    assert [format_instruction(i) for i in new] == [
        "r2 = r2", "r0 = 1", "goto +4", "r2 = r2", "r2 = r2", "r1 = 5 ll", "r2 = r2",
        "if r0 == 0 goto -6", "call 1", "exit", "r2 = r2", "exit"]
    assert _run(new) == [0, 1, 2, 7, 8, 9, 10]
    assert encode(insert_instructions(prog, {})) == encode(prog)
    with pytest.raises(ElfError):
        insert_instructions(prog, {3: [nop]})  # inside ld_imm64


def test_insert_rejects_offset_overflow() -> None:
    prog = [Instruction(0x05, off=1), Instruction(0xB7), Instruction(0x95)]
    with pytest.raises(ElfError):
        insert_instructions(prog, {1: [Instruction(0xB7)] * 40000})


def test_insert_in_real_program_keeps_disassembly_of_targets() -> None:
    obj = ObjectFile.from_path(own_objects()["elf_progs"])
    prog = obj.program("global_helper")
    before = {s: format_instruction(prog.instructions[i])
              for i, s in enumerate(slot_offsets(prog.instructions))}
    inserts = {s: [Instruction(0xBF, 9, 9)] for s in before}
    new = insert_instructions(prog.instructions, inserts)
    starts = slot_offsets(new)
    for i, insn in enumerate(new):
        target = insn.jump_target(starts[i])
        if target is not None and insn.is_jump:
            assert format_instruction(new[starts.index(target)]) == "r9 = r9"
            assert format_instruction(new[starts.index(target) + 1]) != "r9 = r9"


@FUZZ
@given(st.binary(max_size=200).map(lambda b: b[: len(b) // 8 * 8]))
def test_decoder_fuzz(data: bytes) -> None:
    try:
        insns = decode(data)
    except ElfError:
        return
    assert encode(insns) == data
    for insn in insns:
        assert isinstance(format_instruction(insn), str)


SEEDS = sorted(own_objects())


def _build(mode: int, seed: int, cut: int, flips: list[tuple[int, int]], junk: bytes) -> bytes:
    base = own_objects()[SEEDS[seed % len(SEEDS)]].read_bytes()
    if mode == 0:
        return base[:cut]
    if mode == 1:
        data = bytearray(base)
        for pos, value in flips:
            data[pos % len(data)] = value
        return bytes(data)
    if mode == 2:
        return junk
    return base[:64] + junk


@FUZZ
@given(st.integers(0, 3), st.integers(0, 10), st.integers(0, 20000),
       st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(0, 255)), min_size=1,
                max_size=8), st.binary(max_size=300))
def test_object_file_fuzz(mode: int, seed: int, cut: int, flips: list[tuple[int, int]],
                          junk: bytes) -> None:
    data = _build(mode, seed, cut, flips, junk)
    try:
        obj = ObjectFile.from_bytes(data, name="fuzz")
    except ElfError as exc:
        assert str(exc)
        return
    obj.to_json()
    try:
        obj.disassemble()
        if obj.btf is not None:
            for t in obj.btf.types[:200]:
                obj.btf.format_c(t)
    except ElfError:
        pass


def test_header_errors_name_the_problem() -> None:
    good = own_objects()["elf_progs"].read_bytes()
    cases = {
        b"": "shorter than an ELF64 header",
        b"\x7fELF\x01" + good[5:]: "not ELF64",
        good[:18] + struct.pack("<H", 62) + good[20:]: "not EM_BPF",
        good[:1000]: "past the end",
    }
    for data, message in cases.items():
        with pytest.raises(ElfError, match=message):
            ObjectFile.from_bytes(data)
    with pytest.raises(ValueError):
        ObjectFile.from_bytes(b"junk" * 20)
