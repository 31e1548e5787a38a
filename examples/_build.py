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
# where libbpf-dev puts <bpf/bpf_helpers.h> and the other headers a BPF program includes
_LIBBPF_HEADERS = Path("/usr/include/bpf")


def cache_dir() -> Path:
    """``$PYLIBBPF_EXAMPLES_CACHE``, else ``pylibbpf-examples`` in ``$XDG_CACHE_HOME``
    (``~/.cache``)."""
    override = os.environ.get("PYLIBBPF_EXAMPLES_CACHE")
    if override:
        return Path(override)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pylibbpf-examples"


def build_bpf(source: Path) -> Path:
    """``source`` (a ``.bpf.c`` next to the example) compiled against ``vendor/vmlinux.h`` into
    :func:`cache_dir`.  The object is rebuilt when the source, ``vmlinux.h``, libbpf's headers
    or clang change.  Exits with a hint when clang is missing."""
    clang = shutil.which("clang")
    stem = source.name.removesuffix(".bpf.c")
    if clang is None:
        sys.exit(f"{stem}: clang is needed to build the BPF program (apt-get install clang)")
    digest = hashlib.sha256(source.read_bytes())
    digest.update((ROOT / "vendor/vmlinux.h").read_bytes())
    for header in sorted(_LIBBPF_HEADERS.glob("*.h")):
        digest.update(header.name.encode() + b"\0" + header.read_bytes())
    digest.update(subprocess.run([clang, "--version"], capture_output=True, check=True).stdout)
    target = cache_dir() / f"{stem}-{digest.hexdigest()[:16]}.bpf.o"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    arch = _TARGET_ARCH.get(platform.machine(), platform.machine())
    subprocess.run([clang, "-target", "bpf", "-g", "-O2", f"-D__TARGET_ARCH_{arch}",
                    f"-I{ROOT / 'vendor'}", "-c", str(source), "-o", str(tmp)], check=True)
    tmp.replace(target)
    return target


def build_all() -> list[Path]:
    """Every example's BPF program (``examples/*/*.bpf.c``), built or found in the cache."""
    return [build_bpf(source) for source in sorted(ROOT.glob("examples/*/*.bpf.c"))]
