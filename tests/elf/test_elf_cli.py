"""``pylibbpf inspect`` and ``python -m pylibbpf inspect``; pylibbpf.elf stays pure Python."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pylibbpf.elf
from pylibbpf.cli import main
from tests.support.elf_objects import own_objects


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pylibbpf", "inspect", *args],
                          capture_output=True, text=True)


def test_json_is_stable_and_complete() -> None:
    path = own_objects()["elf_data"]
    first = _run(str(path), "--json", "--btf")
    assert first.returncode == 0, first.stderr
    assert first.stdout == _run(str(path), "--json", "--btf").stdout
    data = json.loads(first.stdout)
    assert data["license"] == "GPL"
    assert [p["name"] for p in data["programs"]] == ["use_data"]
    assert {m["name"] for m in data["maps"]} >= {"outer", "elf_data.rodata", ".data.custom"}
    assert any(t["name"] == "event" for t in data["btf"])


def test_text_summary(capsys: object) -> None:
    path = own_objects()["elf_progs"]
    assert main(["inspect", str(path), "--disasm"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "tp_two  sec=tp/syscalls/sys_enter_getpid  type=tracepoint" in out
    assert "calls: nested, global_helper, bump" in out
    assert "Disassembly of section xdp:" in out


def test_bad_file_is_reported() -> None:
    proc = _run(__file__)
    assert proc.returncode == 1
    assert "bad magic" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_elf_package_never_imports_ctypes() -> None:
    folder = Path(pylibbpf.elf.__file__).parent
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            for name in names:
                assert "ctypes" not in name and "_ffi" not in name, f"{path.name}: {name}"
                # outside elf/ it may use only the pure-Python enums, lazy-names and clang-build
                # modules
                assert not name.startswith("..") or name in ("..enums", ".._lazy", "..build"), \
                    f"{path.name} reaches outside elf/: {name}"
