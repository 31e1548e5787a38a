"""Find libbpf, load it once, and apply the signature table.

``PYLIBBPF_LIBBPF=/path/to/libbpf.so`` overrides the search.  A missing library raises
:class:`~pylibbpf.errors.LibbpfNotFoundError` naming the Debian package to install; a required
symbol the library lacks is reported by name.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from ctypes import POINTER
from typing import Any

from ..errors import LibbpfNotFoundError
from . import structs
from .errcheck import CHECKERS
from .signatures import SIGNATURES, Ptr

MIN_VERSION = (1, 1)
_lock = threading.Lock()
_lib: LibbpfLibrary | None = None


class LibbpfLibrary:
    """The loaded libbpf: its functions as attributes, its version, and which symbols it has."""

    def __init__(self, cdll: ctypes.CDLL, path: str) -> None:
        self.cdll = cdll
        self.path = path
        self.missing: set[str] = set()
        self.version = (0, 0)

    def __getattr__(self, name: str) -> Any:
        if name in self.missing:
            raise AttributeError(
                f"{name} is not exported by the libbpf at {self.path} "
                f"(version {self.version[0]}.{self.version[1]})"
            )
        raise AttributeError(f"{name} is not in pylibbpf's libbpf signature table")


def _resolve(argtype: Any) -> Any:
    if isinstance(argtype, Ptr):
        return POINTER(getattr(structs, argtype.struct))
    return argtype


def apply_signatures(cdll: ctypes.CDLL, path: str) -> LibbpfLibrary:
    """Bind every function of :data:`SIGNATURES` with its argtypes, restype and errcheck."""
    lib = LibbpfLibrary(cdll, path)
    major = cdll.libbpf_major_version
    minor = cdll.libbpf_minor_version
    major.restype = minor.restype = ctypes.c_uint32
    lib.version = (major(), minor())
    missing_required = []
    for name, sig in SIGNATURES.items():
        try:
            func = getattr(cdll, name)
        except AttributeError:
            lib.missing.add(name)
            if sig.since <= MIN_VERSION:
                missing_required.append(name)
            continue
        func.argtypes = [_resolve(a) for a in sig.argtypes]
        func.restype = _resolve(sig.restype)
        if sig.check is not None:
            func.errcheck = CHECKERS[sig.check]
        setattr(lib, name, func)
    if lib.version < MIN_VERSION:
        raise LibbpfNotFoundError(
            f"libbpf at {path} is version {lib.version[0]}.{lib.version[1]}; pylibbpf needs "
            f">= {MIN_VERSION[0]}.{MIN_VERSION[1]} (Debian 12: apt-get install libbpf1)"
        )
    if missing_required:
        raise LibbpfNotFoundError(
            f"libbpf at {path} lacks required symbols: {', '.join(sorted(missing_required))}"
        )
    return lib


def _candidates() -> list[str]:
    override = os.environ.get("PYLIBBPF_LIBBPF")
    if override:
        return [override]
    found = ctypes.util.find_library("bpf")
    names = ["libbpf.so.1"]
    if found and found not in names:
        names.append(found)
    return names


def load() -> LibbpfLibrary:
    """Load libbpf once (thread-safe) and return it."""
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        errors = []
        for candidate in _candidates():
            try:
                cdll = ctypes.CDLL(candidate, use_errno=True)
            except OSError as exc:
                errors.append(f"{candidate}: {exc}")
                continue
            _lib = apply_signatures(cdll, candidate)
            from .printcb import install

            install(_lib)
            return _lib
        hint = ("set PYLIBBPF_LIBBPF to a libbpf.so path" if os.environ.get("PYLIBBPF_LIBBPF")
                else "install it: apt-get install libbpf1 (Debian/Ubuntu) or dnf install libbpf")
        raise LibbpfNotFoundError(f"cannot load libbpf ({'; '.join(errors)}): {hint}")
