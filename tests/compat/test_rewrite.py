"""The rewrite of legacy programs, checked on the instructions (no kernel needed)."""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest

import compat
from compat.loader import parse_legacy_elf
from compat.printk import translate_format
from compat.rewrite import rewrite
from pylibbpf.elf import insn as I


def _rewrite(data: bytes, names: dict[str, int]):  # type: ignore[no-untyped-def]
    elf = parse_legacy_elf(data, list(names))
    return I.decode(elf.text), elf, rewrite(I.decode(elf.text), elf.map_relocs, names)


@pytest.mark.parametrize("opt", ["-O1", "-O2"])
def test_map_references_become_pseudo_map_fd(legacy_object: Callable[..., bytes],
                                             opt: str) -> None:
    data = legacy_object("map.c", opt=opt)
    original, elf, rw = _rewrite(data, {"map_fd": 40, "config": 41})
    assert sorted(set(elf.map_relocs.values())) == ["config", "map_fd"]
    wide = [i for i in rw.insns if i.is_wide and i.src == I.PSEUDO_MAP_FD]
    assert sorted({i.imm for i in wide}) == [40, 41]
    # no fd is read through the extern any more
    fd_regs = {i.dst for i in wide}
    loads = [i for i in rw.insns if i.cls == I.LDX and i.src in fd_regs and i.size == I.SIZE_W
             and i.off == 0]
    assert not loads
    # every used lookup is followed by "if r0 != 0 goto +2; r0 = 0; exit"
    lookups = [k for k, i in enumerate(rw.insns) if i.is_helper_call and i.imm == 1]
    assert len(lookups) == sum(1 for i in original if i.is_helper_call and i.imm == 1) == 2
    for k in lookups:
        check = rw.insns[k + 1:k + 4]
        assert check[0].code == I.JMP | I.JMP_JNE and check[0].off == 2
        assert check[2].is_exit


def test_jumps_keep_their_destinations(legacy_object: Callable[..., bytes]) -> None:
    original, _elf, rw = _rewrite(legacy_object("map.c"), {"map_fd": 3, "config": 4})
    # the early "return 0" of the pid filter still lands on "r0 = 0; exit"
    for insns in (original, rw.insns):
        slots = I.slot_offsets(insns)
        by_slot = {s: k for k, s in enumerate(slots)}
        jumps = [(k, i) for k, i in enumerate(insns)
                 if i.is_jump and i.code == I.JMP | I.JMP_JNE | I.SRC_X]
        k, j = jumps[0]
        target = insns[by_slot[j.jump_target(slots[k])]]
        assert target.code == I.ALU64 | I.ALU_MOV and target.imm == 0


def test_printk_and_comm(legacy_object: Callable[..., bytes]) -> None:
    _orig, _elf, rw = _rewrite(legacy_object("map.c"), {"map_fd": 3, "config": 4})
    assert rw.formats == [(b"value = {}\n\0", b"value = %llu\n\0")]
    comm = [k for k, i in enumerate(rw.insns) if i.is_helper_call and i.imm == 16]
    after = rw.insns[comm[0] + 1]
    assert after.code == I.ALU64 | I.ALU_MOV and after.dst == 0 and after.imm == 16


def test_context_reads(legacy_object: Callable[..., bytes]) -> None:
    _o, _e, const = _rewrite(legacy_object("context.c"), {"dump": 1, "config": 2})
    assert not const.needs_synthetic_ctx
    assert sorted(set(const.ctx_loads.values())) == [0, 8] + [96 + 8 * k for k in range(8)]
    _o, _e, by_index = _rewrite(legacy_object("context.c", "-DBY_INDEX"), {"dump": 1,
                                                                           "config": 2})
    assert by_index.needs_synthetic_ctx


@pytest.mark.parametrize(("legacy", "linux"), [
    (b"value = {}\n\0", b"value = %llu\n\0"),
    (b"{} {} {}", b"%llu %llu %llu\0"),
    (b"{{literal}} 100% {}", b"{literal} 100%% %llu\0"),
    (b"lone { and } stay\0junk", b"lone { and } stay\0"),
])
def test_translate_format(legacy: bytes, linux: bytes) -> None:
    assert translate_format(legacy) == linux


def test_legacy_count_rule_accepts_a_subset(legacy_object: Callable[..., bytes]) -> None:
    # the legacy kernel only compared counts: naming one of two externs passes its rules
    elf = parse_legacy_elf(legacy_object("time1.c"), ["time_counters"])
    assert set(elf.map_relocs.values()) == {"time_counters"}


def test_missing_and_duplicate_names(legacy_object: Callable[..., bytes]) -> None:
    data = legacy_object("time1.c")
    parse_legacy_elf(data, ["time_counters", "config"])
    for names in (["time_counters", "config", "nosuch"], ["config", "config"],
                  ["nosuch"]):
        with pytest.raises(compat.LegacyError) as exc:
            parse_legacy_elf(data, names)
        assert exc.value.errno == errno.ENOENT
        assert "map_array" in str(exc.value)


@pytest.mark.parametrize("op", [I.ALU_END, I.ALU_NEG])
def test_a_byte_swap_or_neg_with_a_stray_src_field(op: int) -> None:
    """A byte swap's source bit is its byte order, and neither it nor neg reads a source
    register: a src field past r10 there (found by fuzzing bpf_prog_load_ex) is not read."""
    insns = [I.Instruction(I.ALU64 | I.ALU_MOV, dst=0, imm=7),
             I.Instruction(I.ALU | op | I.SRC_X, dst=0, src=13, imm=32),
             I.Instruction(I.JMP | I.JMP_EXIT)]
    rw = rewrite(insns, {}, {})
    assert [i.code for i in rw.insns] == [i.code for i in insns]
