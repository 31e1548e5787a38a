"""BPF C compiled with clang at run time, cached by content.

:func:`build_object` turns a ``.bpf.c`` into an object file for
:meth:`pylibbpf.Object.open_file`, as bcc compiles its C at run time, but once: the result is
kept in a cache (``$XDG_CACHE_HOME/pylibbpf/objects``, ``~/.cache`` by default) under a key
covering the source text, the flags, the include folders and the compiler (its path, size and
modification time: no process is started to ask its version).  Each entry also records every
header clang read (its ``-MD`` dependency list) with the header's digest, so editing any of
them compiles again; a fresh entry is used without running clang.

The same cache rules serve :func:`pylibbpf.typed.Types.from_c` (types compiled into BTF) and
the exporter's ``source:`` configs; :func:`cache_root` is where all of them live.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BuildError", "bpf_cflags", "build_object", "cache_root", "cached", "compiler_identity",
           "find_clang", "read_depfile", "run_clang", "store"]

# clang's -D__TARGET_ARCH_<arch> for bpf_tracing.h's register access, per machine
_TARGET_ARCH = {"x86_64": "x86", "aarch64": "arm64", "ppc64le": "powerpc", "s390x": "s390",
                "riscv64": "riscv", "loongarch64": "loongarch", "armv7l": "arm"}
# a Makefile-style dependency list: paths separated by unescaped white space
_DEP_SPLIT = re.compile(r"(?<!\\)\s+")


class BuildError(RuntimeError):
    """clang refused the source; ``diagnostics`` holds what it printed."""

    def __init__(self, message: str, diagnostics: str) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/pylibbpf`` (``~/.cache/pylibbpf`` by default): every cache pylibbpf
    keeps lives in a folder of its own under it."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pylibbpf"


def find_clang(clang: str | None = None, *, needed_for: str = "compiling BPF C") -> str:
    """The path of ``clang`` (``$PYLIBBPF_CLANG`` by default, else ``clang`` on ``PATH``).

    Raises ``FileNotFoundError`` naming the package to install."""
    name = clang or os.environ.get("PYLIBBPF_CLANG", "clang")
    exe = shutil.which(name)
    if exe is None:
        raise FileNotFoundError(f"{name} not found: {needed_for} needs clang "
                                "(install the 'clang' package: apt-get install clang)")
    return exe


def bpf_cflags() -> list[str]:
    """The flags a libbpf-style BPF program is built with: the BPF target, BTF, -O2 and the
    ``__TARGET_ARCH_*`` define ``bpf_tracing.h`` needs for this machine."""
    arch = _TARGET_ARCH.get(platform.machine(), platform.machine())
    return ["-target", "bpf", "-g", "-O2", f"-D__TARGET_ARCH_{arch}"]


def compiler_identity(exe: str) -> list[object]:
    """What identifies the compiler in a cache key without running it: its resolved path,
    size and modification time (an upgrade of the package changes them)."""
    real = os.path.realpath(exe)
    try:
        st = os.stat(real)
    except OSError:
        return [real]
    return [real, st.st_size, st.st_mtime_ns]


def _digest(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def read_depfile(depfile: Path, *, exclude: Sequence[Path] = ()) -> list[str]:
    """The absolute paths a clang ``-MD`` dependency file lists (escaped spaces kept)."""
    text = depfile.read_text().replace("\\\n", " ")
    _target, _sep, rest = text.partition(": ")
    paths = {os.path.abspath(p.replace("\\ ", " "))
             for p in _DEP_SPLIT.split(rest.strip()) if p}
    return sorted(paths - {os.path.abspath(p) for p in exclude})


def cached(entry: Path) -> bool:
    """True when ``entry`` exists and every file its dependency record lists is unchanged."""
    try:
        deps = json.loads(entry.with_name(entry.name + ".deps").read_text())
        return entry.is_file() and all(_digest(p) == d for p, d in deps)
    except (OSError, ValueError, TypeError):
        return False


def store(entry: Path, blob: bytes, deps: Sequence[str]) -> bool:
    """Write ``blob`` to ``entry`` with its dependency record, each atomically; False when
    the cache cannot be written (a read-only cache only costs a compile next time)."""
    record = json.dumps([[p, _digest(p)] for p in deps]).encode()
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        # the record first: an entry never appears without the record that validates it
        for target, data in ((entry.with_name(entry.name + ".deps"), record), (entry, blob)):
            fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
    except OSError:
        return False
    return True


def run_clang(exe: str, args: Sequence[str], source: Path, out: Path,
              what: str) -> list[str]:
    """Compile ``source`` to ``out``; the headers it read (``-MD``), ``source`` excluded.

    Raises :class:`BuildError` with clang's diagnostics (the first 30 lines in the message)."""
    depfile = out.with_suffix(".d")
    run = subprocess.run([exe, *args, "-MD", "-MF", str(depfile), "-c", str(source),
                          "-o", str(out)], capture_output=True, text=True, check=False)
    if run.returncode != 0:
        lines = run.stderr.strip().splitlines()
        shown = "\n".join(lines[:30]) + (f"\n... {len(lines) - 30} more lines"
                                         if len(lines) > 30 else "")
        raise BuildError(f"clang could not compile {what}:\n{shown}", run.stderr)
    return read_depfile(depfile, exclude=[source])


PathLike = str | os.PathLike[str]


def build_object(source: PathLike, include_dirs: Sequence[PathLike] = (),
                 cflags: Sequence[str] = (), *, cache: PathLike | None = None,
                 clang: str | None = None) -> Path:
    """The object file of the BPF C program ``source``, compiled or found in the cache.

    It is built with :func:`bpf_cflags`, ``-I`` for each of ``include_dirs`` and ``cflags``,
    into ``cache`` (default ``cache_root() / "objects"``).  Raises ``FileNotFoundError`` when
    clang is missing and :class:`BuildError` with clang's diagnostics when it refuses."""
    src = Path(source).resolve()
    exe = find_clang(clang, needed_for=f"compiling {src.name}")
    args = [*bpf_cflags(), *[f"-I{Path(d).resolve()}" for d in include_dirs], *cflags]
    key = hashlib.sha256(json.dumps([str(src), src.read_text(), args,
                                     compiler_identity(exe)]).encode()).hexdigest()[:20]
    stem = src.name.removesuffix(".c").removesuffix(".bpf")
    entry = Path(cache) if cache is not None else cache_root() / "objects"
    entry = entry / f"{stem}-{key}.bpf.o"
    if cached(entry):
        return entry
    with tempfile.TemporaryDirectory(prefix="pylibbpf-build-") as tmp:
        out = Path(tmp, "out.o")
        deps = run_clang(exe, args, src, out, str(src))
        blob = out.read_bytes()
    if store(entry, blob, [str(src), *deps]):
        return entry
    # an unwritable cache: keep the object in a private temporary file for this process
    fd, path = tempfile.mkstemp(prefix=f"{stem}-", suffix=".bpf.o")
    with os.fdopen(fd, "wb") as f:
        f.write(blob)
    return Path(path)
