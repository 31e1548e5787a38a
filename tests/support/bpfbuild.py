"""Compile the BPF C test programs with clang, cached by content hash.

Every test that needs a ``.o`` calls :func:`compile_bpf`. The cache key covers the source,
every header it can include from ``tests/bpf`` and ``vendor``, the flags and the clang version,
so an edit anywhere rebuilds exactly what depends on it.  The cache lives in
``$PYLIBBPF_TEST_CACHE`` (default ``tests/.cache``) and is safe to delete.

``$PYLIBBPF_TEST_BPF_INCLUDE`` names a folder holding another libbpf release's ``bpf/*.h``
(the libbpf tiers of ``vmtest`` set it): programs then build against the headers of the libbpf
the tests load, as a user of that release would.  The key holds those headers' contents, not
the folder's path, so objects built on the host serve a guest that sees them elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from functools import cache
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
BPF_SRC = TESTS / "bpf"
VENDOR = ROOT / "vendor"
CACHE = Path(os.environ.get("PYLIBBPF_TEST_CACHE", TESTS / ".cache"))
EXAMPLES_CACHE = CACHE / "examples"  # the examples' own builds ($PYLIBBPF_EXAMPLES_CACHE)
INCLUDE_ENV = "PYLIBBPF_TEST_BPF_INCLUDE"


class BuildError(RuntimeError):
    """clang refused a test program; the message holds its diagnostics."""


@cache
def _clang_version(clang: str) -> str:
    exe = shutil.which(clang)
    if exe is None:
        raise BuildError(f"{clang} not found: install the Debian package 'clang'")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0]


def _headers_digest(*extra: Path) -> str:
    h = hashlib.sha256()
    for folder in (BPF_SRC, VENDOR, *extra):
        for path in sorted(folder.glob("*.h")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def compile_bpf(
    src: str | Path,
    *,
    cflags: Sequence[str] = (),
    btf: bool = True,
    opt: str = "-O2",
    clang: str = "clang",
) -> Path:
    """Compile ``src`` (a name under ``tests/bpf`` or a path) to a BPF object and return its path.

    ``btf=False`` builds without ``-g`` (no .BTF/.BTF.ext), for objects that must lack BTF.
    """
    path = Path(src)
    if not path.is_absolute():
        path = BPF_SRC / path
    source = path.read_bytes()
    args = ["-target", "bpf", opt, "-Wall", "-Werror", "-Wno-unused-function"]
    args += ["-D__TARGET_ARCH_x86", f"-I{BPF_SRC}", f"-I{VENDOR}", f"-I{path.parent}"]
    if btf:
        args.append("-g")
    args += list(cflags)
    # the source's folder enters the key by its headers, not its path: a program a test writes
    # into a temporary folder is built once, on the host, and found again in a VM guest
    keyed = ["-I<source folder>" if a == f"-I{path.parent}" else a for a in args]
    headers = _headers_digest(path.parent)
    libbpf_include = os.environ.get(INCLUDE_ENV)
    if libbpf_include:
        args.insert(0, f"-I{libbpf_include}")
        keyed.insert(0, "-I<libbpf headers>")
        headers += _headers_digest(Path(libbpf_include) / "bpf")
    key = hashlib.sha256()
    for part in (source, headers.encode(), "\0".join(keyed).encode(),
                 _clang_version(clang).encode()):
        key.update(part)
        key.update(b"\0")
    out = CACHE / "bpf" / f"{path.stem}-{key.hexdigest()[:16]}.o"
    # a refusal is kept too (same key): tests that try builds which must fail (no BTF with
    # CO-RE reads) ask again in every run, and in a VM guest each clang run takes seconds
    refused = out.with_suffix(".err")
    if out.exists():
        return out
    if refused.exists():
        raise BuildError(f"clang failed on {path.name}:\n{refused.read_text()}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    proc = subprocess.run([clang, *args, "-c", str(path), "-o", str(tmp)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        err_tmp = refused.with_suffix(f".{os.getpid()}.errtmp")
        err_tmp.write_text(proc.stderr)
        os.replace(err_tmp, refused)
        raise BuildError(f"clang failed on {path.name}:\n{proc.stderr}")
    os.replace(tmp, out)
    return out


def compile_c(
    src: str | Path, *, cflags: Sequence[str] = (), libs: Sequence[str] = (), cc: str = "gcc"
) -> Path:
    """Compile a host C program (helpers for uprobes, layout checks), cached like BPF objects."""
    path = Path(src)
    if not path.is_absolute():
        path = TESTS / path
    key = hashlib.sha256(path.read_bytes() + "\0".join([*cflags, *libs]).encode()).hexdigest()
    out = CACHE / "bin" / f"{path.stem}-{key[:16]}"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    proc = subprocess.run([cc, *cflags, str(path), "-o", str(tmp), *libs],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"{cc} failed on {path.name}:\n{proc.stderr}")
    os.replace(tmp, out)
    return out


def build_all() -> list[Path]:
    """Compile every ``tests/bpf/*.bpf.c`` (used to warm the cache before a VM run)."""
    return [compile_bpf(p) for p in sorted(BPF_SRC.glob("*.bpf.c"))]


if __name__ == "__main__":
    for built in build_all():
        print(built)
