"""Seed corpora for the fuzz targets, built from the test suite's own BPF objects.

The objects are compiled with ``tests/support/bpfbuild.py`` (cached by content hash), so a seed is
always a real object of this checkout: ``open_mem`` and ``elf`` get whole objects (BTF and no
BTF), ``insn`` the program sections' instructions, ``attr`` well-formed attrs of every legacy
command, ``legacy_load`` the legacy objects of ``tests/compat/bpf`` prefixed with the map-name
mask byte that target reads first.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
WORK = Path(os.environ.get("PYLIBBPF_FUZZ_DIR", ROOT / "fuzz" / ".work"))

__all__ = ["WORK", "build", "corpus_dir", "test_objects", "legacy_objects"]


def test_objects() -> dict[str, bytes]:
    """Every ``tests/bpf`` and ``tests/elf/bpf`` object that compiles, by name."""
    from tests.support.bpfbuild import BuildError, compile_bpf

    out: dict[str, bytes] = {}
    sources = sorted((TESTS / "bpf").glob("*.bpf.c")) + sorted((TESTS / "elf" / "bpf").glob(
        "*.bpf.c"))
    for src in sources:
        stem = src.name.removesuffix(".bpf.c")
        try:
            path = compile_bpf(src, btf=stem != "elf_nobtf")
        except BuildError:
            continue
        out[stem] = path.read_bytes()
    return out


def legacy_objects() -> dict[str, bytes]:
    """The legacy (latte-c style) objects of ``tests/compat/bpf``: no BTF, as legacy code was
    built."""
    from tests.support.bpfbuild import compile_bpf

    out: dict[str, bytes] = {}
    for src in sorted((TESTS / "compat" / "bpf").glob("*.c")):
        if src.name.endswith(".bpf.c"):
            continue
        opt = "-O1" if src.stem.startswith("time") else "-O2"
        path = compile_bpf(src, btf=False, opt=opt)
        out[src.stem] = path.read_bytes()
    return out


# map-name mask bits, in fuzz.targets._LEGACY_NAMES order
_LEGACY_MASKS = {"map": 0b00011, "context": 0b00110, "time1": 0b01010, "time2": 0b11010}


def _instruction_streams(objects: dict[str, bytes]) -> dict[str, bytes]:
    from pylibbpf.elf import ElfError, ObjectFile

    out: dict[str, bytes] = {}
    for name, data in objects.items():
        try:
            obj = ObjectFile.from_bytes(data)
        except ElfError:
            continue
        for section in obj.sections:
            if section.name in {p.section_name for p in obj.programs_all}:
                body = section.data
                out[f"{name}{section.name.replace('/', '_')}"] = b"\0\0" + body[:4096]
    return out


def _attrs() -> dict[str, bytes]:
    out = {
        "create_array": struct.pack("=IIII", 2, 4, 8, 4).ljust(32, b"\0") + b"\0",
        "create_hash": struct.pack("=IIII", 1, 8, 16, 4).ljust(32, b"\0") + b"\0",
        "create_bad": struct.pack("=IIII", 9, 4, 8, 4).ljust(32, b"\0") + b"\0",
    }
    for cmd in (1, 2, 3, 4):
        out[f"elem_{cmd}"] = struct.pack("=IIQQQ", 1, 0, 0, 0, 0) + bytes([cmd])
    legacy = legacy_objects()
    out["load_ex"] = struct.pack("=QIIQ", 0, len(legacy["map"]), 2, 0) + b"\x08" + legacy["map"]
    out["attach"] = struct.pack("=QII", 0, 3, 0).ljust(32, b"\0") + b"\x06" + \
        b"kprobe:<rcore::syscall::Syscall>::sys_fork\0"
    return out


def corpus_dir(target: str) -> Path:
    """Where ``target``'s corpus lives (seeds, plus what the fuzzer found interesting)."""
    return WORK / "corpus" / target


def _write(folder: Path, seeds: dict[str, bytes]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        digest = hashlib.sha1(data).hexdigest()[:12]
        (folder / f"seed-{name}-{digest}").write_bytes(data)
    return len(seeds)


def build(targets: list[str] | None = None) -> dict[str, int]:
    """Write the seed corpora; returns the number of seeds per target."""
    objects = test_objects()
    wanted = set(targets or ("open_mem", "elf", "insn", "attr", "legacy_load"))
    counts: dict[str, int] = {}
    if "open_mem" in wanted:
        counts["open_mem"] = _write(corpus_dir("open_mem"), objects)
    if "elf" in wanted:
        legacy = legacy_objects()
        counts["elf"] = _write(corpus_dir("elf"), {**objects, **legacy})
    if "insn" in wanted:
        counts["insn"] = _write(corpus_dir("insn"), _instruction_streams(objects))
    if "attr" in wanted:
        counts["attr"] = _write(corpus_dir("attr"), _attrs())
    if "legacy_load" in wanted:
        seeds = {name: bytes([_LEGACY_MASKS.get(name, 0)]) + data
                 for name, data in legacy_objects().items()}
        counts["legacy_load"] = _write(corpus_dir("legacy_load"), seeds)
    return counts
