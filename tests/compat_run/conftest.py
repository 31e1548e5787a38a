"""Fixtures for the ``compat run`` tests: the legacy C test programs (compiled with gcc against
the legacy-style ``c/bpf.h``/``c/bpf.c``), the legacy BPF objects of ``tests/compat/bpf`` (built
exactly as compat's own tests build them), and a runner for ``python -m compat run``."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.bpfbuild import compile_bpf, compile_c
from tests.support.leftovers import open_fds, release_and_check

HERE = Path(__file__).resolve().parent
C_DIR = HERE / "c"
ROOT = HERE.parent.parent
LEGACY_BPF = HERE.parent / "compat" / "bpf"


def _digest(paths: list[Path]) -> str:
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in paths)).hexdigest()


@pytest.fixture(scope="session")
def legacy_objects() -> dict[str, Path]:
    """``map``, ``time1``, ``time2``: legacy objects (no BTF; time1/time2 at -O1 as the
    latte-c samples were built), with the same flags as ``tests/compat``'s fixture."""
    header = _digest(sorted(LEGACY_BPF.glob("*.h")))[:12]
    flags = (f"-DLEGACY_HEADER_DIGEST={header}",)
    return {name: compile_bpf(LEGACY_BPF / f"{name}.c", cflags=flags, btf=False, opt=opt)
            for name, opt in (("map", "-O2"), ("time1", "-O1"), ("time2", "-O1"))}


@pytest.fixture(scope="session")
def c_program() -> Callable[..., Path]:
    """``c_program("maps_test", zcore=False)``: a legacy C test program linked with the legacy
    user library (``-DZCORE`` selects the zCore attach layout and errors)."""
    library = _digest(sorted([*C_DIR.glob("*.h"), C_DIR / "bpf.c"]))[:12]

    def build(name: str, *, zcore: bool = False) -> Path:
        flags = ["-O1", "-g", "-Wall", "-Werror", "-pthread", f"-I{C_DIR}",
                 f"-DLEGACY_LIB_DIGEST={library}", str(C_DIR / "bpf.c")]
        if zcore:
            flags.append("-DZCORE")
        return compile_c(C_DIR / f"{name}.c", cflags=flags, libs=("-pthread",))

    return build


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_cli("--trace", "--", prog, args...)``: ``python -m compat run`` as a user runs it."""

    def run(*args: str | os.PathLike[str], timeout: float = 120,
            **kwargs: object) -> subprocess.CompletedProcess[str]:
        proc: subprocess.CompletedProcess[str] = subprocess.run(  # type: ignore[call-overload]
            [sys.executable, "-m", "compat", "run", *map(str, args)], capture_output=True,
            text=True, timeout=timeout, cwd=ROOT, **kwargs)
        return proc

    return run


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """In-process supervisors must leave no attachment, legacy program or fd behind."""
    before = open_fds()
    yield
    release_and_check(before)
