"""The BPF objects the ELF tests compare against libbpf, llvm-objdump and bpftool."""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import cache
from pathlib import Path

from tests.support.bpfbuild import BPF_SRC, TESTS, BuildError, compile_bpf, compile_c

HERE = TESTS / "elf"
OWN = HERE / "bpf"


@cache
def own_objects() -> dict[str, Path]:
    """This folder's test objects (name -> compiled path); elf_nobtf is built without -g."""
    out = {}
    for src in sorted(OWN.glob("*.bpf.c")):
        stem = src.name.removesuffix(".bpf.c")
        out[stem] = compile_bpf(src, btf=stem != "elf_nobtf")
    return out


@cache
def shared_objects() -> dict[str, Path]:
    """Every tests/bpf/*.bpf.c that compiles (others' objects, compared too)."""
    out = {}
    for src in sorted(BPF_SRC.glob("*.bpf.c")):
        try:
            out[src.name.removesuffix(".bpf.c")] = compile_bpf(src)
        except BuildError:
            continue
    return out


def all_objects() -> dict[str, Path]:
    """Own and shared objects together."""
    return {**own_objects(), **{f"shared:{k}": v for k, v in shared_objects().items()}}


@cache
def libbpf_dump_tool() -> Path:
    """The compiled reference program (tests/elf/libbpf_dump.c linked with -lbpf)."""
    return compile_c(HERE / "libbpf_dump.c", cflags=["-O1"], libs=["-lbpf"])


def libbpf_view(path: Path) -> list[dict[str, object]]:
    """JSON lines printed by libbpf_dump for one object."""
    out = subprocess.run([str(libbpf_dump_tool()), str(path)], capture_output=True, text=True,
                         check=True)
    return [json.loads(line) for line in out.stdout.splitlines()]


def libbpf_types(names: list[str]) -> list[dict[str, object]]:
    """libbpf_prog_type_by_name() for each section name."""
    out = subprocess.run([str(libbpf_dump_tool()), "--types"], input="\n".join(names) + "\n",
                         capture_output=True, text=True, check=True)
    return [json.loads(line) for line in out.stdout.splitlines()]


def tool(name: str) -> str:
    """Path of a required command-line tool (the test fails loudly if it is missing)."""
    exe = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    assert exe, f"{name} is required for the ELF comparison tests"
    return exe
