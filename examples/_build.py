"""What every example shares: its BPF program compiled with clang, cached by content."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pylibbpf.build import build_object, cache_root

ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """``$PYLIBBPF_EXAMPLES_CACHE``, else ``examples`` in pylibbpf's cache
    (``~/.cache/pylibbpf``)."""
    override = os.environ.get("PYLIBBPF_EXAMPLES_CACHE")
    if override:
        return Path(override)
    return cache_root() / "examples"


def build_bpf(source: Path) -> Path:
    """``source`` (a ``.bpf.c`` next to the example) compiled against ``vendor/vmlinux.h`` into
    :func:`cache_dir` (:func:`pylibbpf.build.build_object`: rebuilt when the source, a header
    it includes or clang change).  Exits with a hint when clang is missing."""
    try:
        return build_object(source, [ROOT / "vendor"], cache=cache_dir())
    except FileNotFoundError as exc:
        sys.exit(f"{source.name.removesuffix('.bpf.c')}: {exc}")


def build_all() -> list[Path]:
    """Every example's BPF program (``examples/*/*.bpf.c``), built or found in the cache."""
    return [build_bpf(source) for source in sorted(ROOT.glob("examples/*/*.bpf.c"))]
