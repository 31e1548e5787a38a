"""Checks an object must pass before libbpf 1.1's parser may see it, and bounded file reads.

libbpf checks the ELF structure through libelf, but trusts much of what lies inside the
sections: BTF type ids and string offsets are followed without a range check, a chain of
typedefs and modifiers is walked until it ends, ``.BTF.ext`` section names are looked up as
given.  One changed byte in ``.BTF`` is then enough to make ``bpf_object__open_mem`` read
outside its buffers or loop forever.  :func:`validate_object` parses the object with
:class:`~pylibbpf.elf.ObjectFile` (which bounds every offset, size, index and walk it reads) and
adds the checks libbpf needs beyond those, so that an object it accepts is safe to open::

    from pylibbpf.elf.validate import read_object_file, validate_object
    data = read_object_file("prog.bpf.o")     # a regular file, at most MAX_OBJECT_SIZE bytes
    validate_object(data)                     # ElfError if libbpf must not parse it

:func:`read_object_file` refuses what is not a regular file (a FIFO would block, ``/dev/zero``
never ends) and files above a size bound, without reading them.
"""

from __future__ import annotations

from .btf import MAX_DEPTH, MODIFIERS, Btf, BtfKind, BtfType
from .errors import ElfError
from .objectfile import ObjectFile
from .reader import MAX_OBJECT_SIZE, read_object_file

__all__ = ["MAX_OBJECT_SIZE", "VALIDATOR_VERSION", "read_object_file", "validate_object"]

VALIDATOR_VERSION = 1
"""Raised whenever a check is added to or changed in :func:`validate_object` (or in the parsers
it relies on), so that a verdict remembered by an earlier validator is not trusted again."""


def validate_object(data: bytes, name: str = "") -> ObjectFile:
    """Parse ``data`` and check what libbpf 1.1 trusts; the parsed object, or :class:`ElfError`.

    An object that passes is one libbpf's parser can open without reading out of bounds or
    looping; libbpf may still refuse it with an error of its own (a legacy ``maps`` section,
    say), and the kernel may refuse to load it.
    """
    obj = ObjectFile(data, name)
    if obj.btf is not None:
        _check_btf(obj.btf)
    return obj


def _check_btf(btf: Btf) -> None:
    """What libbpf's BTF walks assume beyond ids and string offsets in range."""
    ends: dict[int, bool] = {}  # type id -> its modifier chain ends (memo)
    for t in btf.types:
        if t.kind in MODIFIERS:
            _check_modifier_chain(btf, t.id, ends)
        if t.kind == BtfKind.INT:
            _check_int(t)
        if t.kind == BtfKind.DATASEC:
            for si in t.secinfos:
                if btf.types[si.type_id].kind not in (BtfKind.VAR, BtfKind.FUNC):
                    raise ElfError(f".BTF: DATASEC '{t.name}' [{t.id}] lists type "
                                   f"[{si.type_id}], which is neither a VAR nor a FUNC")


def _check_int(t: BtfType) -> None:
    # The kernel's rule for BTF_KIND_INT (btf_int_check_meta): at most 16 bytes, its bits
    # within them.  libbpf 1.1 does not check: a kconfig extern of a 4 GB "unsigned int"
    # sizes libbpf's .kconfig buffer from it and crashes bpf_object__open.
    size = t.size or 0
    bits, offset = t.bits, t.int_offset
    if not 1 <= size <= 16 or bits + offset > 128 or (bits + 7) // 8 > size:
        raise ElfError(f".BTF: INT '{t.name}' [{t.id}] is {size} bytes with {bits} bits at "
                       f"bit {offset} (the kernel allows at most 16 bytes, holding its bits)")


def _check_modifier_chain(btf: Btf, start: int, ends: dict[int, bool]) -> None:
    # libbpf's skip_mods_and_typedefs() follows typedefs and modifiers with no bound: a cycle
    # hangs bpf_object__open.  Chains longer than libbpf's own resolve depth are refused too.
    seen: list[int] = []
    cur = start
    while btf.types[cur].kind in MODIFIERS and not ends.get(cur):
        if cur in seen or len(seen) > MAX_DEPTH:
            raise ElfError(f".BTF: type [{start}]: typedef/modifier chain is cyclic or "
                           f"deeper than {MAX_DEPTH}")
        seen.append(cur)
        cur = btf.types[cur].type_id or 0
    for type_id in seen:
        ends[type_id] = True
