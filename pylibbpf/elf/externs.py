"""Extern symbols of an object (``__kconfig``, ``__ksym``, kfuncs) as libbpf classifies them."""

from __future__ import annotations

from .btf import Btf, BtfKind
from .errors import ElfError
from .reader import SHN_UNDEF, STB_GLOBAL, STB_WEAK, STT_NOTYPE, RawElf
from .relocs import Extern

__all__ = ["collect_externs"]


def _btf_extern(btf: Btf | None, name: str) -> tuple[str, int, int, int] | None:
    """(datasec name, type id, size, align) of an extern's BTF VAR or FUNC."""
    if btf is None:
        return None
    for t in btf.find_all(name):
        if t.kind not in (BtfKind.VAR, BtfKind.FUNC) or t.linkage != 2:
            continue
        for ds in btf.types:
            if ds.kind != BtfKind.DATASEC:
                continue
            if any(si.type_id == t.id for si in ds.secinfos):
                if t.kind == BtfKind.FUNC:
                    return ds.name, t.id, 0, 0
                vt = t.type_id or 0
                try:
                    return ds.name, t.id, btf.size_of(vt), btf.align_of(vt)
                except ElfError:
                    return ds.name, t.id, 0, 0
        return "", t.id, 0, 0
    return None


def collect_externs(raw: RawElf, btf: Btf | None,
                    warnings: list[str]) -> tuple[list[Extern], int]:
    """The object's externs in libbpf's order, and the size of the ``.kconfig`` map they
    lay out (kconfig externs by alignment descending, size, then name)."""
    found: list[tuple[Extern, int]] = []
    for sym in raw.symbols:
        if sym.shndx != SHN_UNDEF or sym.bind not in (STB_GLOBAL, STB_WEAK):
            continue
        if sym.type != STT_NOTYPE or not sym.name:
            continue
        info = _btf_extern(btf, sym.name)
        weak = sym.bind == STB_WEAK
        if info is None:
            warnings.append(f"extern '{sym.name}' has no BTF (libbpf refuses it)")
            found.append((Extern(sym.name, "undefined", weak), 0))
            continue
        sec_name, type_id, size, align = info
        if sec_name == ".kconfig":
            found.append((Extern(sym.name, "kconfig", weak, type_id, 0, size), align))
        elif sec_name == ".ksyms":
            is_func = btf is not None and \
                btf.type_by_id(type_id).kind == BtfKind.FUNC
            found.append((Extern(sym.name, "kfunc" if is_func else "ksym", weak, type_id),
                          0))
        else:
            found.append((Extern(sym.name, "undefined", weak, type_id), 0))
    order = {"kconfig": 1, "ksym": 2, "kfunc": 2, "undefined": 3}

    def key(item: tuple[Extern, int]) -> tuple[int, int, int, str]:
        ext, align = item
        if ext.kind == "kconfig":
            return (1, -align, ext.size, ext.name)
        return (order[ext.kind], 0, 0, ext.name)

    found.sort(key=key)
    off = 0
    out: list[Extern] = []
    for ext, align in found:
        if ext.kind == "kconfig":
            if align:
                off = (off + align - 1) // align * align
            ext = Extern(ext.name, ext.kind, ext.weak, ext.type_id, off, ext.size)
            off += ext.size
        out.append(ext)
    return out, off
