"""The only package that knows ctypes: libbpf loading, signatures, struct layouts, errcheck.

C names are kept exactly (``lib().bpf_object__load``).  Everything here is private.
"""

from __future__ import annotations

from .loader import LibbpfLibrary, load


def lib() -> LibbpfLibrary:
    """The loaded libbpf (loaded on first use)."""
    return load()


def has(name: str) -> bool:
    """True when the loaded libbpf exports ``name`` (for optional, newer functions)."""
    return name not in load().missing


def version() -> tuple[int, int]:
    """The loaded libbpf's (major, minor) version."""
    return load().version


__all__ = ["LibbpfLibrary", "has", "lib", "load", "version"]
