"""Our disassembly equals llvm-objdump's, line by line, in both immediate styles.

llvm-objdump 14 prints immediates in decimal unless given ``--print-imm-hex``; 15 and newer print
them in hex unless given ``--no-print-imm-hex`` (which 14 accepts too). Each of our styles is
compared with the installed llvm-objdump told to print that style, and the installed release's
default is checked to be the style its version says.
"""

from __future__ import annotations

import re
import struct
import subprocess
from pathlib import Path

import pytest

from pylibbpf.elf import ObjectFile, decode_one, disassemble_object, format_instruction
from pylibbpf.elf.disasm import STYLES
from tests.support.elf_objects import all_objects, own_objects, tool

OBJECTS = all_objects()


STYLE_FLAGS = {"decimal": "--no-print-imm-hex", "hex": "--print-imm-hex"}


def _objdump(path: Path, raw: bool, style: str | None) -> list[str]:
    args = [tool("llvm-objdump"), "-d"] + ([] if raw else ["--no-show-raw-insn"])
    if style is not None:
        args.append(STYLE_FLAGS[style])
    out = subprocess.run([*args, str(path)], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[2:]  # skip the line naming the file


def _llvm_major() -> int:
    out = subprocess.run([tool("llvm-objdump"), "--version"], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"LLVM version (\d+)\.", out)
    assert m, out
    return int(m.group(1))


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("raw", [True, False], ids=["raw", "noraw"])
@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_disassembly_matches_llvm_objdump(name: str, raw: bool, style: str) -> None:
    path = OBJECTS[name]
    ours = disassemble_object(ObjectFile.from_path(path), raw=raw, style=style).splitlines()[2:]
    ref = _objdump(path, raw, style)
    assert len(ref) > 5
    for n, (a, b) in enumerate(zip(ours, ref, strict=False)):
        assert a == b, f"line {n}: ours {a!r} llvm {b!r}"
    assert len(ours) == len(ref)


def _canonical() -> list[bytes]:
    """Well-formed encodings of every instruction form llvm 14 knows (unused fields zero)."""
    out: list[bytes] = []

    def ins(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> None:
        out.append(struct.pack("<BBhi", code, (src << 4) | dst, off, imm))

    for cls in (0x04, 0x07):
        for op in range(0x00, 0xD0, 0x10):
            if op == 0x80:
                ins(cls | op, 3)
                continue
            ins(cls | op, 3, 0, 0, -9 if op not in (0x60, 0x70, 0xC0) else 7)
            ins(cls | op | 0x08, 3, 4)
    for imm in (16, 32, 64):
        ins(0xD4, 5, 0, 0, imm)
        ins(0xDC, 5, 0, 0, imm)
    for cls in (0x05, 0x06):
        for op in (0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xA0, 0xB0, 0xC0, 0xD0):
            ins(cls | op, 1, 0, -2, 77)
            ins(cls | op | 0x08, 1, 2, 3)
    ins(0x05, 0, 0, 1)
    ins(0x85, 0, 0, 0, 12)
    ins(0x85, 0, 1, 0, -1)
    ins(0x95)
    for size in (0x00, 0x08, 0x10, 0x18):
        ins(0x61 | size, 1, 2, -8)
        ins(0x63 | size, 10, 3, 16)
    for size in (0x00, 0x08, 0x10):
        ins(0x20 | size, 0, 0, 0, 14)
        ins(0x40 | size, 0, 7, 0, 0)
    for imm in (0x00, 0x40, 0x50, 0xA0, 0x01, 0x41, 0x51, 0xA1, 0xE1, 0xF1):
        ins(0xDB, 2, 3, 8, imm)
    ins(0xC3, 2, 3, -8, 0)
    out.append(struct.pack("<BBhiBBhi", 0x18, 1, 0, 0x12345678, 0, 0, 0, -2))
    return out


def test_installed_default_style() -> None:
    """What the installed llvm-objdump prints with no style flag is the style of its release
    (the tests above pass the flag, so they hold on any release)."""
    expected = "hex" if _llvm_major() >= 15 else "decimal"
    path = own_objects()["elf_progs"]
    assert _objdump(path, False, None) == _objdump(path, False, expected)
    ours = disassemble_object(ObjectFile.from_path(path), raw=False, style=expected)
    assert ours.splitlines()[2:] == _objdump(path, False, None)


def test_styles_differ_only_in_numbers() -> None:
    insn = decode_one(struct.pack("<BBhi", 0x61, 0x2A, -8, 0))
    assert format_instruction(insn) == "r10 = *(u32 *)(r2 - 8)"
    assert format_instruction(insn, style="hex") == "r10 = *(u32 *)(r2 - 0x8)"
    assert format_instruction(decode_one(struct.pack("<BBhi", 0x85, 0, 0, 14)),
                              style="hex") == "call 0xe"
    with pytest.raises(ValueError, match="style"):
        format_instruction(insn, style="octal")


@pytest.mark.parametrize("style", STYLES)
def test_canonical_encodings_match_llvm(tmp_path: Path, style: str) -> None:
    insns = _canonical()
    src = [".section code,\"ax\"", ".globl f", "f:"]
    for blob in insns:
        for i in range(0, len(blob), 8):
            src.append(f".quad {struct.unpack('<Q', blob[i:i + 8])[0]:#018x}")
    (tmp_path / "c.s").write_text("\n".join(src) + "\n")
    subprocess.run([tool("llvm-mc"), "-triple", "bpfel", "-filetype=obj",
                    str(tmp_path / "c.s"), "-o", str(tmp_path / "c.o")], check=True)
    listing = _objdump(tmp_path / "c.o", False, style)
    ref = [re.sub(r" <\w+(\+0x[0-9a-f]+)?>$", "", line.split("\t", 1)[1]) for line in listing
           if re.match(r"^ *\d+:\t", line)]
    assert len(ref) == len(insns)
    known = 0
    for blob, text in zip(insns, ref, strict=True):
        if text == "<unknown>":
            continue
        assert format_instruction(decode_one(blob), style=style) == text, blob.hex()
        known += 1
    assert known > 120


def test_source_lines_interleaved() -> None:
    obj = ObjectFile.from_path(own_objects()["elf_progs"])
    text = obj.disassemble(source=True, raw=False)
    assert "; return skb->len; @ " in text
    assert "elf_progs.bpf.c:" in text
    # removing the source lines gives back the plain listing
    plain = "\n".join(line for line in text.splitlines() if not line.startswith("; "))
    assert plain == obj.disassemble(raw=False).rstrip("\n")
