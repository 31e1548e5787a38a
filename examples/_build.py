"""What every example shares: its BPF program compiled with clang, cached by content."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# clang's -D__TARGET_ARCH_<arch> for bpf_tracing.h's register access, per machine
_TARGET_ARCH = {"x86_64": "x86", "aarch64": "arm64", "ppc64le": "powerpc", "s390x": "s390",
                "riscv64": "riscv", "loongarch64": "loongarch", "armv7l": "arm"}


def build_bpf(source: Path) -> Path:
    """``source`` (a ``.bpf.c`` next to the example) compiled against ``vendor/vmlinux.h``
    into ``~/.cache/pylibbpf-examples`` (``$XDG_CACHE_HOME``), rebuilt when it or
    ``vmlinux.h`` changes.  Exits with a hint when clang is missing."""
    digest = hashlib.sha256(source.read_bytes() + (ROOT / "vendor/vmlinux.h").read_bytes())
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pylibbpf-examples"
    stem = source.name.removesuffix(".bpf.c")
    target = cache / f"{stem}-{digest.hexdigest()[:16]}.bpf.o"
    if target.exists():
        return target
    if shutil.which("clang") is None:
        sys.exit(f"{stem}: clang is needed to build the BPF program (apt-get install clang)")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    arch = _TARGET_ARCH.get(platform.machine(), platform.machine())
    subprocess.run(["clang", "-target", "bpf", "-g", "-O2", f"-D__TARGET_ARCH_{arch}",
                    f"-I{ROOT / 'vendor'}", "-c", str(source), "-o", str(tmp)], check=True)
    tmp.replace(target)
    return target
