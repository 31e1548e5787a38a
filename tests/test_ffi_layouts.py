"""The ctypes structs of ``pylibbpf._ffi.structs`` against the C headers installed on this machine.

Two independent witnesses, both from one small C program compiled with gcc at test time:

* **printf**: the program, generated from the Python table, prints ``sizeof``/``offsetof`` of every
  named member (nested ones by their C path, e.g. ``iter.cgroup.order``) and, for bitfields, the
  bytes a struct holds after the bitfield is set to all ones. A Python name the header lacks
  breaks the compile; a wrong type or position shows as a different number.
* **DWARF**: the same program is built with ``-g``, so gcc records every member of every struct as
  the headers declare it (names, order, offsets, bitfield positions, types). Walking that tree
  with pyelftools lists the C side *from the header*, not from our table, so a field the Python
  class forgot (or an extra one) fails the comparison. Unnamed bitfields (``__u32 :32``) have no
  DWARF member; our ``_padN`` stand-ins are checked to lie only in bytes no named member uses.

What must hold depends on the headers. With the ones the mirrors were copied from (libbpf 1.1,
Linux 6.1 UAPI: Debian 12) the member lists must be identical. Newer headers only ever grow these
structs (libbpf 1.5 adds ``token_fd``, Linux 6.12 ``btf_vmlinux_id``...), and the ``sz`` /
``info_len`` rule makes a shorter mirror correct there; so with them every member we declare
must still sit at the header's offset with the header's size and type, in the header's order,
and a header member we lack must be one that growth explains: past the end of our aggregate, a
new alternative of a union, a name given to bits our padding holds, or an anonymous wrapper
around members we declare. A member we lack in the middle of our layout still fails.
"""

from __future__ import annotations

import ctypes
import errno
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from elftools.elf.elffile import ELFFile

from pylibbpf._ffi import structs
from tests.support.bpfbuild import compile_bpf, compile_c

HEADERS = ("<stdio.h>", "<stddef.h>", "<string.h>", "<bpf/libbpf.h>", "<bpf/bpf.h>",
           "<linux/perf_event.h>",
           "<linux/bpf.h>", "<linux/version.h>")
# the headers structs.py was copied from: libbpf 1.1 and the Linux 6.1 UAPI (Debian 12)
MIRRORED_LIBBPF = (1, 1)
MIRRORED_LINUX = (6, 1)
LAYOUT_DIR = Path(__file__).resolve().parent / "layout"

Aggregate = type[ctypes.Structure] | type[ctypes.Union]
_FUNC_PTR: type = ctypes.CFUNCTYPE(ctypes.c_int).__mro__[1]  # ctypes' private _CFuncPtr base


# --------------------------------------------------------------------------------------------
# the Python side
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One member as both sides can describe it; ``path`` is the C designator (``a.b.c``)."""

    path: str  # "" + "<anon>" marks an anonymous aggregate
    offset: int  # bytes from the start of the top-level type
    size: int  # bytes of the member's type (the storage unit for a bitfield)
    bits: tuple[int, int] | None  # (bit offset from `offset`, width) for bitfields
    kind: Any  # type shape, see _ctypes_kind / _dwarf_kind
    # (path, offset, "struct" | "union") of the enclosing aggregate ("" for the top level);
    # filled in on the C side only, and not part of the comparison
    parent: tuple[str, int, str] | None = field(default=None, compare=False)


def _bitfield(field: Any) -> tuple[int, int] | None:
    """(bit offset inside the storage unit, width) of a ctypes bitfield, else None."""
    if hasattr(field, "is_bitfield"):  # CPython >= 3.14 spells it out
        return (field.bit_offset, field.bit_size) if field.is_bitfield else None
    if field.size >> 16:  # older CPython packs (width << 16) | bit offset into .size
        return (field.size & 0xFFFF, field.size >> 16)
    return None


def _is_signed(t: Any) -> bool:
    return bool(t(-1).value < 0)


def _ctypes_kind(t: Any) -> Any:
    if issubclass(t, ctypes.Array):
        return ("array", _ctypes_kind(t._type_), t._length_)
    if issubclass(t, ctypes.Structure):
        return "struct"
    if issubclass(t, ctypes.Union):
        return "union"
    if t is ctypes.c_void_p:
        return ("ptr", "void")
    if t is ctypes.c_char_p:
        return ("ptr", "char")
    if issubclass(t, ctypes._Pointer):
        target = t._type_
        if issubclass(target, (ctypes.Structure, ctypes.Union)):
            return ("ptr", (_ctypes_kind(target), target.__name__))
        return ("ptr", _ctypes_kind(target))
    if issubclass(t, _FUNC_PTR):
        return ("ptr", "func")
    if t is ctypes.c_bool:
        return "bool"
    if t is ctypes.c_char:
        return "char"
    return ("int", ctypes.sizeof(t), _is_signed(t))


def python_members(cls: Aggregate, prefix: str = "", base: int = 0) -> Iterator[Member]:
    """Every member of ``cls``, depth first, in declaration order, padding fields included."""
    anonymous = set(getattr(cls, "_anonymous_", ()))
    for name, ctype, *_ in cls._fields_:
        field = getattr(cls, name)
        offset = base + field.offset
        if name in anonymous and issubclass(ctype, (ctypes.Structure, ctypes.Union)):
            yield Member(prefix + "<anon>", offset, ctypes.sizeof(ctype), None, _ctypes_kind(ctype))
            yield from python_members(ctype, prefix, offset)
            continue
        path = prefix + name
        yield Member(path, offset, ctypes.sizeof(ctype), _bitfield(field), _ctypes_kind(ctype))
        if issubclass(ctype, (ctypes.Structure, ctypes.Union)):
            yield from python_members(ctype, path + ".", offset)


def is_padding(member: Member) -> bool:
    """Our stand-ins for unnamed bitfields: a last path component starting with one ``_`` (two
    begin a C name, such as ``perf_event_attr.__reserved_1``)."""
    name = member.path.rsplit(".", 1)[-1]
    return name.startswith("_") and not name.startswith("__")


def is_reserved(member: Member) -> bool:
    """A whole member the kernel reserves (``perf_event_attr.__reserved_3``).  Linux gives such
    bits a meaning by narrowing the member to a bitfield beside the new named bits (6.13 made
    ``__reserved_3`` 29 bits of a union with ``aux_action``), which ``offsetof`` cannot take:
    the DWARF witness alone checks where it lies."""
    name = member.path.rsplit(".", 1)[-1]
    return name.startswith("__reserved") and member.bits is None


def _reserved_narrowed(pm: Member, cm: Member) -> bool:
    """The header narrowed our reserved member to a bitfield inside the same bytes."""
    return (is_reserved(pm) and cm.bits is not None and cm.path == pm.path
            and set(_bit_range(cm)) <= set(_bit_range(pm)))


def c_type_name(cls: Aggregate) -> str:
    return f"{'union' if issubclass(cls, ctypes.Union) else 'struct'} {cls.__name__}"


# --------------------------------------------------------------------------------------------
# the C side: one program, printf + DWARF
# --------------------------------------------------------------------------------------------


def generate_c(types: tuple[Aggregate, ...]) -> str:
    lines = [f"#include {h}" for h in HEADERS]
    for i, cls in enumerate(types):
        lines.append(f"{c_type_name(cls)} keep_{i};  /* makes gcc emit the type's DWARF */")
    lines += [
        "static void dump(const char *t, const char *m, const void *p, size_t n) {",
        "    const unsigned char *b = p;",
        '    printf("bits %s %s ", t, m);',
        '    for (size_t i = 0; i < n; i++) printf("%02x", b[i]);',
        '    printf("\\n");',
        "}",
        "int main(void) {",
        '    printf("version libbpf - %d %d\\n", LIBBPF_MAJOR_VERSION, LIBBPF_MINOR_VERSION);',
        '    printf("version linux - %d %d\\n", LINUX_VERSION_CODE >> 16,'
        " (LINUX_VERSION_CODE >> 8) & 0xff);",
    ]
    for cls in types:
        t = c_type_name(cls)
        lines.append(f'    printf("size {cls.__name__} - %zu %zu\\n", sizeof({t}), _Alignof({t}));')
        for m in python_members(cls):
            if m.path.endswith("<anon>") or is_padding(m) or is_reserved(m):
                continue
            if m.bits is None:
                lines.append(
                    f'    printf("member {cls.__name__} {m.path} %zu %zu\\n", '
                    f"offsetof({t}, {m.path}), sizeof((({t} *)0)->{m.path}));"
                )
            else:
                lines += [
                    "    {",
                    f"        {t} v; memset(&v, 0, sizeof(v)); v.{m.path} = -1;",
                    f'        dump("{cls.__name__}", "{m.path}", &v, sizeof(v));',
                    "    }",
                ]
    lines += ["    return 0;", "}", ""]
    return "\n".join(lines)


@dataclass
class CLayout:
    sizes: dict[str, tuple[int, int]]  # type -> (sizeof, alignof)
    members: dict[tuple[str, str], tuple[int, int]]  # (type, path) -> (offsetof, sizeof)
    bits: dict[tuple[str, str], bytes]  # (type, path) -> bytes after setting the bitfield to ~0
    binary: Path
    versions: dict[str, tuple[int, int]] = field(default_factory=dict)  # libbpf/linux headers

    @property
    def mirrored_headers(self) -> bool:
        """The headers are the ones structs.py copies, so nothing may be missing from it."""
        return (self.versions["libbpf"] == MIRRORED_LIBBPF
                and self.versions["linux"] == MIRRORED_LINUX)


def build_layout(types: tuple[Aggregate, ...], workdir: Path) -> CLayout:
    src = workdir / "ffi_layouts.c"
    src.write_text(generate_c(types))
    binary = compile_c(src, cflags=("-g", "-O0", "-std=gnu11", "-Wall"))
    out = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout
    layout = CLayout({}, {}, {}, binary)
    for line in out.splitlines():
        tag, tname, path, *rest = line.split()
        if tag == "version":
            layout.versions[tname] = (int(rest[0]), int(rest[1]))
        elif tag == "size":
            layout.sizes[tname] = (int(rest[0]), int(rest[1]))
        elif tag == "member":
            layout.members[(tname, path)] = (int(rest[0]), int(rest[1]))
        else:
            layout.bits[(tname, path)] = bytes.fromhex(rest[0])
    return layout


_DW_ATE_boolean, _DW_ATE_signed, _DW_ATE_signed_char = 0x02, 0x05, 0x06


def _strip(die: Any) -> Any:
    """Follow typedefs and qualifiers; None for ``void`` (a qualifier with no type)."""
    while die.tag in ("DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type"):
        if "DW_AT_type" not in die.attributes:
            return None
        die = die.get_DIE_from_attribute("DW_AT_type")
    return die


def _dwarf_size(die: Any) -> int:
    die = _strip(die)
    if die.tag == "DW_TAG_array_type":
        return _dwarf_size(die.get_DIE_from_attribute("DW_AT_type")) * _array_len(die)
    return int(die.attributes["DW_AT_byte_size"].value)


def _array_len(die: Any) -> int:
    (sub,) = [c for c in die.iter_children() if c.tag == "DW_TAG_subrange_type"]
    if "DW_AT_count" in sub.attributes:
        return int(sub.attributes["DW_AT_count"].value)
    return int(sub.attributes["DW_AT_upper_bound"].value) + 1


def _dwarf_kind(die: Any) -> Any:
    die = _strip(die)
    tag = die.tag
    if tag == "DW_TAG_array_type":
        return ("array", _dwarf_kind(die.get_DIE_from_attribute("DW_AT_type")), _array_len(die))
    if tag == "DW_TAG_structure_type":
        return "struct"
    if tag == "DW_TAG_union_type":
        return "union"
    if tag == "DW_TAG_pointer_type":
        if "DW_AT_type" not in die.attributes:
            return ("ptr", "void")
        target = _strip(die.get_DIE_from_attribute("DW_AT_type"))
        if target is None:
            return ("ptr", "void")
        if target.tag == "DW_TAG_subroutine_type":
            return ("ptr", "func")
        if target.tag in ("DW_TAG_structure_type", "DW_TAG_union_type"):
            return ("ptr", (_dwarf_kind(target), target.attributes["DW_AT_name"].value.decode()))
        return ("ptr", _dwarf_kind(target))
    if tag == "DW_TAG_enumeration_type":
        under = die.attributes.get("DW_AT_type")
        if under is not None:
            return _dwarf_kind(die.get_DIE_from_attribute("DW_AT_type"))
        return ("int", int(die.attributes["DW_AT_byte_size"].value), False)
    assert tag == "DW_TAG_base_type", tag
    enc = die.attributes["DW_AT_encoding"].value
    name = die.attributes["DW_AT_name"].value.decode()
    if enc == _DW_ATE_boolean:
        return "bool"
    if name == "char":
        return "char"
    size = int(die.attributes["DW_AT_byte_size"].value)
    return ("int", size, enc in (_DW_ATE_signed, _DW_ATE_signed_char))


def dwarf_members(die: Any, prefix: str = "", base: int = 0,
                  parent_path: str = "") -> Iterator[Member]:
    """Every member gcc recorded for the struct/union ``die``, as :func:`python_members` lists."""
    parent = (parent_path, base, "union" if die.tag == "DW_TAG_union_type" else "struct")
    for child in die.iter_children():
        if child.tag != "DW_TAG_member":
            continue
        attrs = child.attributes
        offset = base + int(attrs["DW_AT_data_member_location"].value) \
            if "DW_AT_data_member_location" in attrs else base
        mtype = child.get_DIE_from_attribute("DW_AT_type")
        size = _dwarf_size(mtype)
        bits = None
        if "DW_AT_bit_size" in attrs:
            # DWARF 4/5: DW_AT_data_bit_offset counts from the start of the enclosing struct.
            bit_pos = base * 8 + int(attrs["DW_AT_data_bit_offset"].value)
            unit = (bit_pos // 8) // size * size
            offset, bits = unit, (bit_pos - unit * 8, int(attrs["DW_AT_bit_size"].value))
        kind = _dwarf_kind(mtype)
        name = attrs["DW_AT_name"].value.decode() if "DW_AT_name" in attrs else None
        stripped = _strip(mtype)
        nested = stripped.tag in ("DW_TAG_structure_type", "DW_TAG_union_type")
        if name is None:
            yield Member(prefix + "<anon>", offset, size, bits, kind, parent)
            if nested:
                yield from dwarf_members(stripped, prefix, offset, prefix + "<anon>")
            continue
        yield Member(prefix + name, offset, size, bits, kind, parent)
        if nested:
            yield from dwarf_members(stripped, prefix + name + ".", offset, prefix + name)


def dwarf_types(binary: Path, names: set[str]) -> dict[str, Any]:
    """The complete struct/union DIE for each wanted C type name."""
    found: dict[str, Any] = {}
    with open(binary, "rb") as f:
        dwarf = ELFFile(f).get_dwarf_info()
        for cu in dwarf.iter_CUs():
            for die in cu.iter_DIEs():
                if die.tag not in ("DW_TAG_structure_type", "DW_TAG_union_type"):
                    continue
                name_attr = die.attributes.get("DW_AT_name")
                if name_attr is None or "DW_AT_declaration" in die.attributes:
                    continue
                name = name_attr.value.decode()
                if name in names and name not in found:
                    found[name] = (die, list(dwarf_members(die)))
    # the DIEs die with the file; keep only what was computed from them
    return {name: members for name, (_, members) in found.items()}


# --------------------------------------------------------------------------------------------
# comparison
# --------------------------------------------------------------------------------------------


def _bit_range(m: Member) -> range:
    start = m.offset * 8 + (m.bits[0] if m.bits else 0)
    return range(start, start + (m.bits[1] if m.bits else m.size * 8))


def _growth_explains(cm: Member, py: list[Member], py_size: int) -> bool:
    """Whether a header member the mirror lacks can be one the header gained after 1.1 / 6.1."""
    assert cm.parent is not None
    parent_path, parent_offset, parent_kind = cm.parent
    extents = {(m.path, m.offset): m.offset + m.size for m in py}
    # At the top level, past our last member: in our tail padding (zero in every struct
    # new_opts builds, which libbpf reads as unset) or past sizeof (past ``sz``).
    extents[("", 0)] = max((m.offset + m.size for m in py), default=0)
    if (parent_path, parent_offset) not in extents:
        return True  # inside a member we lack: that member was judged
    if cm.path.endswith("<anon>") or parent_kind == "union":
        return True  # a wrapper around members checked one by one, or a new alternative
    if cm.offset >= extents[(parent_path, parent_offset)]:
        return True  # appended past the end of our aggregate
    bits = set(_bit_range(cm))
    return any(bits <= set(_bit_range(pm)) for pm in py if is_padding(pm))  # reserved bits named


def _grown_aggregate(pm: Member, cm: Member) -> bool:
    """A union (or struct) that gained members since the mirror: same place, same shape,
    larger; what lies inside it is compared member by member."""
    return (pm.kind in ("struct", "union") and (pm.path, pm.offset, pm.bits, pm.kind)
            == (cm.path, cm.offset, cm.bits, cm.kind) and pm.size <= cm.size)


def layout_errors(cls: Aggregate, c: CLayout, dwarf: list[Member], *,
                  exact: bool | None = None) -> list[str]:
    """Every difference between ``cls`` and the C type of the same name; empty when they agree.

    ``exact`` (the default with the headers the mirrors were copied from) wants the same member
    list; otherwise the header may have grown as :func:`_growth_explains` allows.
    """
    if exact is None:
        exact = c.mirrored_headers
    name = cls.__name__
    errors: list[str] = []
    py = list(python_members(cls))
    py_named = [m for m in py if not is_padding(m)]

    c_size, c_align = c.sizes[name]
    py_size, py_align = ctypes.sizeof(cls), ctypes.alignment(cls)
    if (py_size, py_align) != (c_size, c_align) and (exact or py_align != c_align
                                                     or py_size > c_size):
        errors.append(f"sizeof/alignof: python {(py_size, py_align)}, C {(c_size, c_align)}")

    # printf witness: offsets and sizes of every named member, bit patterns of bitfields
    for m in py_named:
        if m.path.endswith("<anon>") or is_reserved(m):
            continue
        if m.bits is None:
            got = c.members[(name, m.path)]
            if (m.offset, m.size) != got:
                errors.append(f"{m.path}: python offset/size {(m.offset, m.size)}, C {got}")
        else:
            value = cls()
            target: Any = value
            *parents, leaf = m.path.split(".")
            for part in parents:
                target = getattr(target, part)
            setattr(target, leaf, (1 << 64) - 1)
            # a grown header struct is longer: compare the bytes the mirror covers
            c_bytes = c.bits[(name, m.path)]
            rest = c_bytes[len(bytes(value)):]
            if bytes(value) != c_bytes[:len(bytes(value))] or any(rest):
                errors.append(f"{m.path}: bitfield bytes python {bytes(value).hex()}, "
                              f"C {c_bytes.hex()}")

    # DWARF witness: the member list, in order, with types
    py_paths = [m.path for m in py_named]
    c_paths = [m.path for m in dwarf]
    mirrored = {(m.path, m.offset) for m in py_named}
    if exact:
        if py_paths != c_paths:
            missing = [p for p in c_paths if p not in py_paths]
            extra = [p for p in py_paths if p not in c_paths]
            errors.append(f"member list differs: missing {missing}, extra {extra}, "
                          f"python order {py_paths}, C order {c_paths}")
        else:
            for pm, cm in zip(py_named, dwarf, strict=True):
                if pm != cm:
                    errors.append(f"{pm.path}: python {pm}, DWARF {cm}")
    else:
        # ours must be a subsequence of the header's, member for member...
        it = iter(dwarf)
        for pm in py_named:
            found = next((m for m in it if m.path == pm.path
                          and (m.offset == pm.offset or _reserved_narrowed(pm, m))), None)
            if found is None:
                errors.append(f"{pm.path}: not in the header at offset {pm.offset}, or out of "
                              f"order: python order {py_paths}, C order {c_paths}")
                break
            if pm != found and not (_grown_aggregate(pm, found)
                                    or _reserved_narrowed(pm, found)):
                errors.append(f"{pm.path}: python {pm}, DWARF {found}")
        # ...and what the header has beyond ours must be growth
        missing = [cm.path for cm in dwarf if (cm.path, cm.offset) not in mirrored
                   and not _growth_explains(cm, py, py_size)]
        if missing:
            errors.append(f"member list differs: missing {missing} inside the mirrored layout")

    # padding stand-ins must sit in bytes (or bits) that no named member uses
    used: set[int] = set()
    for cm in dwarf:
        if cm.path.endswith("<anon>") or (not exact and (cm.path, cm.offset) not in mirrored):
            continue
        used.update(_bit_range(cm))
    for pm in py:
        if is_padding(pm) and used & set(_bit_range(pm)):
            errors.append(f"{pm.path}: padding overlaps a named C member")
    return errors


# --------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory: pytest.TempPathFactory) -> CLayout:
    return build_layout(structs.C_TYPES, tmp_path_factory.mktemp("layout"))


@pytest.fixture(scope="module")
def dwarf(c_layout: CLayout) -> dict[str, list[Member]]:
    return dwarf_types(c_layout.binary, {cls.__name__ for cls in structs.C_TYPES})


@pytest.mark.parametrize("cls", structs.C_TYPES, ids=lambda c: c.__name__)
def test_layout_matches_header(
    cls: Aggregate, c_layout: CLayout, dwarf: dict[str, list[Member]]
) -> None:
    assert cls.__name__ in dwarf, f"no DWARF for {c_type_name(cls)}"
    assert dwarf[cls.__name__], "the C type has no members?"
    assert layout_errors(cls, c_layout, dwarf[cls.__name__]) == []


def test_every_exported_type_is_checked() -> None:
    """Nested helper types are covered through their parent; everything else is in C_TYPES."""
    reached: set[Aggregate] = set()
    todo: list[Aggregate] = list(structs.C_TYPES)
    while todo:
        cls = todo.pop()
        if cls in reached:
            continue
        reached.add(cls)
        for _, ctype, *_ in cls._fields_:
            inner: Any = ctype
            while issubclass(inner, ctypes.Array):
                inner = inner._type_
            if issubclass(inner, (ctypes.Structure, ctypes.Union)):
                todo.append(inner)
    exported = {getattr(structs, n) for n in structs.__all__}
    aggregates = {t for t in exported
                  if isinstance(t, type) and issubclass(t, (ctypes.Structure, ctypes.Union))}
    assert aggregates - reached == set()
    assert all(getattr(structs, c.__name__) is c for c in aggregates)


def _mutant(cls: Aggregate, fields: list[Any]) -> Aggregate:
    attrs: dict[str, Any] = {"_fields_": fields}
    if hasattr(cls, "_anonymous_"):
        attrs["_anonymous_"] = cls._anonymous_
    return type(cls.__name__, (cls.__mro__[1],), attrs)


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "grown"])
def test_checker_catches_a_missing_field(
    c_layout: CLayout, dwarf: dict[str, list[Member]], exact: bool
) -> None:
    fields = [f for f in structs.bpf_map_info._fields_ if f[0] != "map_flags"]
    errors = layout_errors(_mutant(structs.bpf_map_info, fields), c_layout, dwarf["bpf_map_info"],
                           exact=exact)
    assert any("missing ['map_flags'" in e for e in errors), errors


def test_checker_accepts_only_growth_on_newer_headers(
    c_layout: CLayout, dwarf: dict[str, list[Member]]
) -> None:
    """A mirror without the header's last member is what a newer header looks like: accepted
    unless the headers are the ones the mirrors copy; the same member dropped from the middle
    is refused either way (above)."""
    fields = structs.bpf_map_info._fields_
    assert fields[-1][0] == "map_extra"  # a u64: dropping it shortens the struct
    mutant = _mutant(structs.bpf_map_info, fields[:-1])
    assert layout_errors(mutant, c_layout, dwarf["bpf_map_info"], exact=False) == []
    errors = layout_errors(mutant, c_layout, dwarf["bpf_map_info"], exact=True)
    assert any("missing [" in e and "'map_extra'" in e for e in errors), errors


class _attr_demo(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("__reserved_3", ctypes.c_uint32)]


def _demo_header(reserved_bits: tuple[int, int]) -> list[Member]:
    """The DWARF members of ``_attr_demo`` as Linux 6.13 reshaped perf_event_attr's reserved
    word: ``union { __u32 aux_action; struct { __u32 aux_start_paused:1, ...,
    __reserved_3:29; }; }``."""
    u32 = ("int", 4, False)
    union, inner = ("", 4, "union"), ("<anon>", 4, "struct")
    return [Member("size", 0, 4, None, u32, ("", 0, "struct")),
            Member("<anon>", 4, 4, None, "union", ("", 0, "struct")),
            Member("aux_action", 4, 4, None, u32, union),
            Member("<anon>", 4, 4, None, "struct", union),
            Member("aux_start_paused", 4, 4, (0, 1), u32, inner),
            Member("__reserved_3", 4, 4, reserved_bits, u32, inner)]


def test_a_reserved_member_narrowed_by_a_newer_header_is_growth() -> None:
    """Newer headers may give a reserved word's bits names; ours still covers the same bytes.
    With the mirrored headers the member list must match exactly, so there it is refused; a
    narrowed member that left our bytes is refused either way."""
    c = CLayout({"_attr_demo": (8, 4)}, {("_attr_demo", "size"): (0, 4)}, {}, Path("-"))
    assert generate_c((_attr_demo,)).count("offsetof(") == 1  # not of the reserved word
    assert layout_errors(_attr_demo, c, _demo_header((3, 29)), exact=False) == []
    assert layout_errors(_attr_demo, c, _demo_header((3, 29)), exact=True) != []
    moved = [*_demo_header((3, 29))[:-1], Member("__reserved_3", 8, 4, (3, 29), ("int", 4, False),
                                                  ("<anon>", 4, "struct"))]
    assert layout_errors(_attr_demo, c, moved, exact=False) != []


def test_headers_are_known(c_layout: CLayout) -> None:
    """The version lines parsed, and headers older than the mirrors' are not silently used."""
    assert c_layout.versions["libbpf"] >= MIRRORED_LIBBPF
    assert c_layout.versions["linux"] >= MIRRORED_LINUX


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "grown"])
def test_checker_catches_a_wrong_type(
    c_layout: CLayout, dwarf: dict[str, list[Member]], exact: bool
) -> None:
    # Same size and offsets, only the signedness differs: only the type comparison can see it.
    fields = [(f[0], ctypes.c_int32 if f[0] == "btf_size" else f[1])
              for f in structs.bpf_btf_info._fields_]
    errors = layout_errors(_mutant(structs.bpf_btf_info, fields), c_layout, dwarf["bpf_btf_info"],
                           exact=exact)
    assert len(errors) == 1 and errors[0].startswith("btf_size:"), errors


def test_checker_catches_a_missing_padding_field(
    c_layout: CLayout, dwarf: dict[str, list[Member]]
) -> None:
    # `__u32 :32` dropped from bpf_map_info: map_extra stays 8-aligned, so the pad must be there.
    fields = [f for f in structs.bpf_map_info._fields_ if f[0] != "_pad0"]
    errors = layout_errors(_mutant(structs.bpf_map_info, fields), c_layout, dwarf["bpf_map_info"])
    if c_layout.mirrored_headers:
        assert errors == []  # ...which is true: the pad is only for readability here
    # (Linux 6.12 names those bits btf_vmlinux_id: without the pad, nothing explains that member)
    fields = [f for f in structs.bpf_object_open_opts._fields_ if f[0] != "_pad0"]
    errors = layout_errors(_mutant(structs.bpf_object_open_opts, fields), c_layout,
                           dwarf["bpf_object_open_opts"])
    assert any(e.startswith("kconfig:") for e in errors), errors


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "grown"])
def test_checker_catches_a_wrong_bitfield(
    c_layout: CLayout, dwarf: dict[str, list[Member]], exact: bool
) -> None:
    fields = [("gpl_compatible", ctypes.c_uint32, 2) if f[0] == "gpl_compatible" else
              ("_pad0", ctypes.c_uint32, 30) if f[0] == "_pad0" else f
              for f in structs.bpf_prog_info._fields_]
    errors = layout_errors(_mutant(structs.bpf_prog_info, fields), c_layout, dwarf["bpf_prog_info"],
                           exact=exact)
    assert any(e.startswith("gpl_compatible: bitfield bytes") for e in errors), errors


# --------------------------------------------------------------------------------------------
# new_opts, and one real libbpf call through a mirrored struct
# --------------------------------------------------------------------------------------------


def test_new_opts_sets_sz_and_fields() -> None:
    opts = structs.new_opts(structs.bpf_uprobe_opts, retprobe=True, bpf_cookie=7,
                            func_name=b"malloc")
    assert opts.sz == ctypes.sizeof(structs.bpf_uprobe_opts) == 40
    assert (opts.retprobe, opts.bpf_cookie, opts.func_name) == (True, 7, b"malloc")
    assert opts.ref_ctr_offset == 0


OPTS_TYPES = [c for c in structs.C_TYPES if c._fields_[0][0] == "sz"]


@pytest.mark.parametrize("cls", OPTS_TYPES, ids=lambda c: c.__name__)
def test_sz_is_the_mirrors_size(cls: type[ctypes.Structure], c_layout: CLayout) -> None:
    """What lets a mirror shorter than the installed header work: ``sz`` says how far libbpf
    may read, it never exceeds the header's size (libbpf would refuse the non-zero excess),
    and everything past the mirror's last member (tail padding, where a newer header may have
    put a field) is zero, which libbpf reads as unset."""
    opts = structs.new_opts(cls)
    size = ctypes.sizeof(cls)
    assert opts.sz == size <= c_layout.sizes[cls.__name__][0]
    end = max(m.offset + m.size for m in python_members(cls))
    assert bytes(opts)[end:] == bytes(size - end)


def test_new_opts_reaches_anonymous_union_members() -> None:
    cookie = structs.bpf_link_create_opts__perf_event(bpf_cookie=42)
    opts = structs.new_opts(structs.bpf_link_create_opts, perf_event=cookie)
    assert opts.perf_event.bpf_cookie == 42
    assert opts.tracing.cookie == 42  # same bytes, as in the C union


@pytest.mark.parametrize(
    ("cls", "fields", "message"),
    [
        (structs.bpf_kprobe_opts, {"no_such": 1}, "has no field 'no_such'"),
        (structs.bpf_kprobe_opts, {"sz": 1}, "has no field 'sz'"),
        (structs.bpf_object_open_opts, {"_pad0": 1}, "has no field '_pad0'"),
        (structs.bpf_prog_info, {}, "not a libbpf opts struct"),
        (structs.bpf_tc_opts, {"prog_fd": "3"}, "bpf_tc_opts.prog_fd"),
    ],
)
def test_new_opts_rejects(cls: Any, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        structs.new_opts(cls, **fields)


@pytest.fixture(scope="module")
def libbpf() -> ctypes.CDLL:
    lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    lib.bpf_object__open_file.argtypes = [ctypes.c_char_p,
                                          ctypes.POINTER(structs.bpf_object_open_opts)]
    lib.bpf_object__open_file.restype = ctypes.c_void_p
    lib.bpf_object__name.argtypes = [ctypes.c_void_p]
    lib.bpf_object__name.restype = ctypes.c_char_p
    lib.bpf_object__close.argtypes = [ctypes.c_void_p]
    lib.bpf_object__close.restype = None
    return lib


def test_libbpf_reads_open_opts(libbpf: ctypes.CDLL) -> None:
    """libbpf itself finds object_name where our layout put it (no root: open only parses)."""
    obj_file = compile_bpf(LAYOUT_DIR / "minimal.bpf.c")
    opts = structs.new_opts(structs.bpf_object_open_opts, object_name=b"layout_probe",
                            kernel_log_level=1)
    obj = libbpf.bpf_object__open_file(str(obj_file).encode(), ctypes.byref(opts))
    assert obj, f"open failed: errno {ctypes.get_errno()}"
    try:
        assert libbpf.bpf_object__name(obj) == b"layout_probe"
    finally:
        libbpf.bpf_object__close(obj)


def test_libbpf_refuses_unknown_nonzero_tail(libbpf: ctypes.CDLL) -> None:
    """The forward-compat rule the module docstring relies on: bytes past what libbpf knows
    must be zero (libbpf 1.1.2 says "has non-zero extra bytes" and fails with EINVAL); zero
    bytes past it are accepted."""
    obj_file = compile_bpf(LAYOUT_DIR / "minimal.bpf.c")

    # The extra field sits far past any libbpf's struct (a newer libbpf knows more fields
    # than 1.1.2: a non-zero value right after 1.1.2's fields would be read as one of them).
    pad = 4096 - ctypes.sizeof(structs.bpf_object_open_opts)

    class grown(ctypes.Structure):
        _fields_ = [("base", structs.bpf_object_open_opts), ("zeros", ctypes.c_char * pad),
                    ("future", ctypes.c_uint64)]

    for future, ok in ((0, True), (1, False)):
        opts = grown()
        opts.base.sz = ctypes.sizeof(grown)
        opts.future = future
        ctypes.set_errno(0)
        obj = libbpf.bpf_object__open_file(
            str(obj_file).encode(), ctypes.cast(ctypes.byref(opts),
                                                ctypes.POINTER(structs.bpf_object_open_opts)))
        if ok:
            assert obj, f"errno {ctypes.get_errno()}"
            libbpf.bpf_object__close(obj)
        else:
            assert not obj and ctypes.get_errno() == errno.EINVAL
