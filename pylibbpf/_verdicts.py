"""Validation verdicts remembered by content, so that opening the same object again skips the
ELF parse that :func:`pylibbpf.elf.validate.validate_object` makes in Python.

The key is the SHA-256 of the object's exact bytes together with the validator's version and the
loaded libbpf's (what is safe to hand a parser depends on both): changed bytes, a newer validator
or another libbpf give another key, and the object is validated afresh.  Only an object that
passed is remembered, so a refused one is checked (and refused) again each time and the cache
can never let an unvalidated object through.  At most :data:`MAX_ENTRIES` verdicts are kept, the
least recently used going first.

A verdict also keeps what the load needs to know from the same parse: the object's
``.struct_ops.link`` sections, which libbpf before 1.2 skips silently.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

from . import _ffi
from .elf import validate

MAX_ENTRIES = 64
"""How many verdicts are kept (least recently used evicted first)."""

_STRUCT_OPS_LINK = ".struct_ops.link"


@dataclass(frozen=True)
class Verdict:
    """What validating an object found that opening and loading it need later."""

    struct_ops_link: tuple[str, ...]
    """The object's ``.struct_ops.link`` sections (``?`` prefix included), in section order."""


_lock = threading.Lock()
_verdicts: OrderedDict[tuple[bytes, int, tuple[int, int]], Verdict] = OrderedDict()


def check(blob: bytes, name: str = "") -> Verdict:
    """The verdict on ``blob``: remembered if these exact bytes passed before, else
    :func:`~pylibbpf.elf.validate.validate_object` runs (raising its
    :class:`~pylibbpf.elf.errors.ElfError` on a malformed object, which is not remembered)."""
    key = (hashlib.sha256(blob).digest(), validate.VALIDATOR_VERSION, _ffi.version())
    with _lock:
        verdict = _verdicts.get(key)
        if verdict is not None:
            _verdicts.move_to_end(key)
            return verdict
    parsed = validate.validate_object(blob, name)  # outside the lock: other threads go on
    verdict = Verdict(struct_ops_link=tuple(
        sec.name for sec in parsed.sections if sec.name.lstrip("?") == _STRUCT_OPS_LINK))
    with _lock:
        _verdicts[key] = verdict
        _verdicts.move_to_end(key)
        while len(_verdicts) > MAX_ENTRIES:
            _verdicts.popitem(last=False)
    return verdict


def clear() -> None:
    """Forget every remembered verdict."""
    with _lock:
        _verdicts.clear()


def size() -> int:
    """How many verdicts are remembered."""
    with _lock:
        return len(_verdicts)
