"""Validation verdicts remembered by content, so that opening the same object again skips the
ELF parse that :func:`pylibbpf.elf.validate.validate_object` makes in Python.

A verdict is found by the object's exact bytes, together with the validator's version and the
loaded libbpf's (what is safe to hand a parser depends on both): changed bytes, a newer validator
or another libbpf find nothing, and the object is validated afresh.  The bytes are compared
whole with the ones that passed (kept with the verdict: usually the very ``bytes`` an open
object holds anyway); only an object over :data:`KEEP_MAX` bytes is remembered by its SHA-256
instead, as hashing costs little next to parsing it.  A comparison costs a fraction of a hash
(a ``memcmp``), and no two objects can ever share a verdict.  Only an object that passed is
remembered, so a refused one is checked (and refused) again each time and the cache can never
let an unvalidated object through.  At most :data:`MAX_ENTRIES` verdicts are kept, the least
recently used going first.

Why not a key from ``os.stat`` (device, inode, size, times), which would spare reading the file:
libbpf is handed the very bytes that were validated (``bpf_object__open_mem``), never the path,
so nothing can change between the check and the parse; a stat key would have to trust that a
file rewritten in place within one timestamp tick (or by someone who resets its times) is
unchanged.  Reading the file costs about what libbpf's own ``bpf_object__open_file`` spends
reading it.

A verdict also keeps what the load needs to know from the same parse: the object's
``.struct_ops.link`` sections, which libbpf before 1.2 skips silently.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

from . import _ffi
from .elf import validate

MAX_ENTRIES = 64
"""How many verdicts are kept (least recently used evicted first)."""

KEEP_MAX = 1 << 18
"""The largest object remembered by its bytes (256 KiB, so at most 16 MiB are kept, and
usually a few hundred KiB: BPF objects are mostly tens of KiB); a larger one is remembered by
its SHA-256."""

_TAIL = 32  # the last bytes (an ELF's section headers) sort objects of one size apart

_STRUCT_OPS_LINK = ".struct_ops.link"


@dataclass(frozen=True)
class Verdict:
    """What validating an object found that opening and loading it need later."""

    struct_ops_link: tuple[str, ...]
    """The object's ``.struct_ops.link`` sections (``?`` prefix included), in section order."""


_Key = tuple[int, bytes, int, tuple[int, int]]  # size, tail, validator, libbpf
_lock = threading.Lock()
# key -> (the bytes that passed, or their SHA-256 if larger than KEEP_MAX; the verdict)
_verdicts: OrderedDict[_Key, tuple[bytes, Verdict]] = OrderedDict()


def _content(blob: bytes) -> bytes:
    return blob if len(blob) <= KEEP_MAX else hashlib.sha256(blob).digest()


def check(blob: bytes, name: str | bytes = "") -> Verdict:
    """The verdict on ``blob``: remembered if these exact bytes passed before, else
    :func:`~pylibbpf.elf.validate.validate_object` runs (raising its
    :class:`~pylibbpf.elf.errors.ElfError` on a malformed object, which is not remembered)."""
    size = len(blob)
    key = (size, blob[-_TAIL:], validate.VALIDATOR_VERSION, _ffi.version())
    # A hit takes no lock: get and move_to_end are each one step under the GIL, and the
    # comparison is of immutable bytes (a memcmp).
    found = _verdicts.get(key)
    if found is not None and found[0] == (blob if size <= KEEP_MAX else _content(blob)):
        try:
            _verdicts.move_to_end(key)
        except KeyError:
            pass  # another thread's insertion evicted it meanwhile: the verdict still holds
        return found[1]
    if type(name) is not str:  # a name taken from a path: decoded only when it is needed
        name = os.fsdecode(name)
    parsed = validate.validate_object(blob, name)  # outside the lock: other threads go on
    verdict = Verdict(struct_ops_link=tuple(
        sec.name for sec in parsed.sections if sec.name.lstrip("?") == _STRUCT_OPS_LINK))
    with _lock:
        _verdicts[key] = (_content(blob), verdict)  # replaces another object of that key
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
