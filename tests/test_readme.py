"""The README's tour runs as written: its BPF program compiles and its Python prints a count."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.bpfbuild import compile_bpf

ROOT = Path(__file__).resolve().parent.parent


def blocks(lang: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def test_readme_starts_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    first = re.search(r"```sh\n(.*?)```", text, re.S)
    assert first is not None
    commands = [line.split("#")[0].strip() for line in first.group(1).splitlines()]
    assert commands == ["./scripts/demo.sh", "./scripts/test.sh"]
    assert text.index("```sh") < text.index("## ")
    assert (ROOT / ".ci/run").read_text().strip().endswith("exec ./scripts/test.sh")


@pytest.mark.kernel
def test_tour_runs(tmp_path: Path) -> None:
    c_source = blocks("c")[0]
    python = next(b for b in blocks("python") if "Object.open_file(\"count.bpf.o\")" in b)
    (tmp_path / "count.bpf.c").write_text(c_source)
    obj = compile_bpf(tmp_path / "count.bpf.c")
    script = python.replace('"count.bpf.o"', repr(str(obj)))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == repr((100).to_bytes(8, "little"))
