"""Map definitions: BTF-defined ``.maps``, legacy ``SEC("maps")`` and internal data maps."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..enums import MapType  # pure Python: the kernel's enums, shared with the core
from .btf import Btf, BtfKind
from .datasec import Variable
from .errors import ElfError

__all__ = ["MapType", "MapDef", "Variable", "internal_map_name", "parse_btf_map_def",
           "BPF_F_RDONLY_PROG", "BPF_F_MMAPABLE"]

BPF_F_RDONLY_PROG = 0x80
BPF_F_MMAPABLE = 0x400
OBJ_NAME_LEN = 16  # BPF_OBJ_NAME_LEN, including the NUL


def map_type_name(value: int) -> str:
    """``"hash"``, ``"array"``... or the number for a type this module does not know."""
    try:
        return MapType(value).name.lower()
    except ValueError:
        return str(value)


@dataclass
class MapDef:
    """A map the object defines, as libbpf sees it after open.

    ``origin`` is ``"btf"`` (``.maps``), ``"legacy"`` (``SEC("maps")``), ``"data"``, ``"rodata"``,
    ``"bss"`` or ``"kconfig"``; ``real_name`` is the ELF section of an internal map.
    """

    name: str
    origin: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int = 0
    pinning: int = 0
    numa_node: int = 0
    map_extra: int = 0
    key_type_id: int = 0
    value_type_id: int = 0
    section_name: str = ""
    section_index: int = -1
    sec_offset: int = 0
    real_name: str = ""
    inner: MapDef | None = None
    init_slots: dict[int, str] = field(default_factory=dict)
    variables: list[Variable] = field(default_factory=list)
    initial_value: bytes = b""

    @property
    def type_name(self) -> str:
        """libbpf's name for the map type (``"hash"``, ``"array_of_maps"``...)."""
        return map_type_name(self.type)

    @property
    def is_internal(self) -> bool:
        """A global-data or kconfig map libbpf creates from a section."""
        return self.origin in ("data", "rodata", "bss", "kconfig")

    def to_json(self) -> dict[str, object]:
        """A JSON-friendly description with stable keys."""
        out: dict[str, object] = {
            "name": self.name, "origin": self.origin, "type": self.type_name,
            "type_id": self.type, "key_size": self.key_size, "value_size": self.value_size,
            "max_entries": self.max_entries, "map_flags": self.map_flags,
            "pinning": self.pinning, "numa_node": self.numa_node, "map_extra": self.map_extra,
            "key_type_id": self.key_type_id, "value_type_id": self.value_type_id,
            "section": self.section_name, "sec_offset": self.sec_offset,
        }
        if self.real_name:
            out["real_name"] = self.real_name
        if self.inner is not None:
            out["inner"] = self.inner.to_json()
        if self.init_slots:
            out["init_slots"] = {str(k): v for k, v in sorted(self.init_slots.items())}
        if self.variables:
            out["variables"] = [
                {"name": v.name, "offset": v.offset, "size": v.size, "type_id": v.type_id,
                 "type": v.type_name, "linkage": v.linkage} for v in self.variables]
        return out


def object_name_from_path(path: str) -> str:
    """libbpf's object name: the file's base name, cut to 15 bytes, then at its first dot."""
    base = path.rstrip("/").rsplit("/", 1)[-1]
    raw = base.encode()[:OBJ_NAME_LEN - 1].decode("utf-8", "ignore")
    return raw.split(".", 1)[0]


def internal_map_name(obj_name: str, real_name: str) -> str:
    """The name libbpf 1.1 gives the internal map of section ``real_name``.

    The suffix is the section name, with room for at least 7 characters reserved; the object
    name fills what remains of 15 characters (8 at most), except for custom ``.data.*`` and
    ``.rodata.*`` sections, whose name is used alone. Characters the kernel refuses become ``_``.
    """
    sfx_len = max(7, len(real_name))
    if "." in real_name[1:]:
        pfx_len = 0
    else:
        pfx_len = max(0, min(OBJ_NAME_LEN - sfx_len - 1, len(obj_name)))
    name = (obj_name[:pfx_len] + real_name[:sfx_len])[:OBJ_NAME_LEN - 1]
    return "".join(c if (c.isascii() and c.isalnum()) or c in "_." else "_" for c in name)


def _member_int(btf: Btf, map_name: str, member_name: str, type_id: int) -> int:
    value = btf.int_value_of(type_id)
    if value is None:
        raise ElfError(f"map '{map_name}': attr '{member_name}' is not __uint(...)")
    return value


def parse_btf_map_def(btf: Btf, name: str, def_type_id: int, depth: int = 0) -> MapDef:
    """Decode one ``.maps`` variable's struct (libbpf's ``parse_btf_map_def``)."""
    if depth > 2:
        raise ElfError(f"map '{name}': map-in-map nested too deep")
    t = btf.resolve(def_type_id)
    if t.kind != BtfKind.STRUCT:
        raise ElfError(f"map '{name}': definition is {t.kind.name}, not a struct")
    m = MapDef(name=name, origin="btf", type=0, key_size=0, value_size=0, max_entries=0)
    for member in t.members:
        mname = member.name
        if mname in ("type", "max_entries", "map_flags", "numa_node", "pinning", "map_extra",
                     "key_size", "value_size"):
            value = _member_int(btf, name, mname, member.type_id)
            if mname == "type":
                m.type = value
            elif mname == "max_entries":
                m.max_entries = value
            elif mname == "map_flags":
                m.map_flags = value
            elif mname == "numa_node":
                m.numa_node = value
            elif mname == "pinning":
                m.pinning = value
            elif mname == "map_extra":
                m.map_extra = value
            elif mname == "key_size":
                m.key_size = value
            else:
                m.value_size = value
        elif mname in ("key", "value"):
            ptr = btf.resolve(member.type_id)
            if ptr.kind != BtfKind.PTR:
                raise ElfError(f"map '{name}': {mname} spec is not a pointer")
            target = ptr.type_id or 0
            size = btf.size_of(target)
            if mname == "key":
                m.key_type_id, m.key_size = target, size
            else:
                m.value_type_id, m.value_size = target, size
        elif mname == "values":
            arr = btf.resolve(member.type_id)
            if arr.kind != BtfKind.ARRAY:
                raise ElfError(f"map '{name}': values spec is not an array")
            ptr = btf.resolve(arr.elem_type_id)
            if ptr.kind != BtfKind.PTR:
                raise ElfError(f"map '{name}': values element is not a pointer")
            inner_t = btf.resolve(ptr.type_id or 0)
            if inner_t.kind == BtfKind.STRUCT:
                m.inner = parse_btf_map_def(btf, f"{name}.inner", inner_t.id, depth + 1)
                m.value_size = 4
    return m


def parse_legacy_maps(data: bytes, symbols: list[tuple[str, int]], byteorder: str,
                      section_name: str, section_index: int) -> list[MapDef]:
    """Decode ``SEC("maps")`` ``struct bpf_map_def`` entries named by their symbols."""
    if not symbols:
        return []
    per_map = len(data) // len(symbols)
    if per_map < 16:
        raise ElfError(f"section {section_name}: {len(data)} bytes cannot hold "
                       f"{len(symbols)} bpf_map_def")
    e = "<" if byteorder == "little" else ">"
    out = []
    for name, offset in sorted(symbols, key=lambda s: s[1]):
        if offset + 16 > len(data):
            raise ElfError(f"legacy map '{name}' at offset {offset} is past its section")
        fields = list(struct.unpack_from(e + "IIII", data, offset))
        flags = 0
        if per_map >= 20 and offset + 20 <= len(data):
            (flags,) = struct.unpack_from(e + "I", data, offset + 16)
        out.append(MapDef(name=name, origin="legacy", type=fields[0], key_size=fields[1],
                          value_size=fields[2], max_entries=fields[3], map_flags=flags,
                          section_name=section_name, section_index=section_index,
                          sec_offset=offset))
    return out
