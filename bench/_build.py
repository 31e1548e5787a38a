"""What the benchmarks need built: the C contender (``cbench.c`` as a shared library, gcc
``-shared -fPIC -lbpf``) and the BPF objects (clang), into ``bench/.build``, cached by content."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUILD = HERE / ".build"
OBJECTS = ("bench_rb", "bench_maps", "bench_core")
_ARCH = {"x86_64": "x86", "aarch64": "arm64"}.get(platform.machine(), "x86")


@dataclass(frozen=True)
class Built:
    clib: Path
    objects: dict[str, Path]


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def build() -> Built:
    """Compile what is missing; return the paths."""
    BUILD.mkdir(exist_ok=True)
    src = HERE / "cbench.c"
    clib = BUILD / f"libcbench-{_digest(src)}.so"
    if not clib.exists():
        subprocess.run(["gcc", "-O2", "-Wall", "-shared", "-fPIC", "-o", str(clib), str(src),
                        "-lbpf"], check=True)
    objects = {}
    for name in OBJECTS:
        c = HERE / f"{name}.bpf.c"
        out = BUILD / f"{name}-{_digest(c)}.o"
        if not out.exists():
            subprocess.run(["clang", "-target", "bpf", "-O2", "-g", f"-D__TARGET_ARCH_{_ARCH}",
                            f"-I{ROOT / 'vendor'}", "-c", str(c), "-o", str(out)], check=True)
        objects[name] = out
    return Built(clib, objects)
