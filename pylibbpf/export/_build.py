"""A config's ``source: x.bpf.c`` compiled with clang, as ``examples/_build.py`` does, cached by
content: the key covers the source, the flags and the include folders, and an entry records
every header clang read with its digest (``-MD``), so editing any of them compiles again."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["build_object", "cache_dir"]

# clang's -D__TARGET_ARCH_<arch> for bpf_tracing.h's register access, per machine
_TARGET_ARCH = {"x86_64": "x86", "aarch64": "arm64", "ppc64le": "powerpc", "s390x": "s390",
                "riscv64": "riscv", "loongarch64": "loongarch", "armv7l": "arm"}


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pylibbpf/export`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pylibbpf" / "export"


def _digest(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _fresh(target: Path) -> bool:
    try:
        deps = json.loads(target.with_suffix(".json").read_text())
        return target.exists() and all(_digest(p) == d for p, d in deps)
    except (OSError, ValueError, TypeError):
        return False


def build_object(source: Path, include_dirs: Sequence[Path] = (),
                 cflags: Sequence[str] = ()) -> Path:
    """The object file of ``source``, compiled or found in :func:`cache_dir`.

    Raises ``FileNotFoundError`` when clang is missing and ``RuntimeError`` with clang's
    diagnostics when it refuses the source."""
    clang = shutil.which(os.environ.get("PYLIBBPF_CLANG", "clang"))
    if clang is None:
        raise FileNotFoundError(f"compiling {source} needs clang (apt install clang), or give "
                                "the config a compiled 'object:'")
    arch = _TARGET_ARCH.get(platform.machine(), platform.machine())
    args = ["-target", "bpf", "-g", "-O2", f"-D__TARGET_ARCH_{arch}",
            *[f"-I{Path(d).resolve()}" for d in include_dirs], *cflags]
    source = source.resolve()
    key = hashlib.sha256(json.dumps([str(source), source.read_text(), args]).encode())
    stem = source.name.removesuffix(".c").removesuffix(".bpf")
    target = cache_dir() / f"{stem}-{key.hexdigest()[:20]}.bpf.o"
    if _fresh(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        obj, depfile = Path(tmp, "out.o"), Path(tmp, "out.d")
        run = subprocess.run([clang, *args, "-MD", "-MF", str(depfile), "-c", str(source),
                              "-o", str(obj)], capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise RuntimeError(f"clang could not compile {source}:\n{run.stderr.strip()}")
        text = depfile.read_text().replace("\\\n", " ").partition(": ")[2]
        deps = sorted({os.path.abspath(p) for p in text.split()})
        target.with_suffix(".json").write_text(json.dumps([[p, _digest(p)] for p in deps]))
        os.replace(obj, target)
    return target
