"""``pylibbpf btf dump {id N | file PATH} [format {raw | c}] [root_id ID]...``: a BTF object
the kernel holds, or a BTF file (``/sys/kernel/btf/vmlinux``, an object file's ``.BTF``
through ``pylibbpf inspect``), printed as ``bpftool btf dump`` prints it.

``format raw`` is bpftool's line per type (``[2] INT 'int' size=4 bits_offset=0 nr_bits=32
encoding=SIGNED``, members indented by a tab) and, with ``--json``, its ``{"types": [...]}``;
``format c`` is compilable C declarations, the way a ``vmlinux.h`` is made.  Both are computed
in Python from :class:`~pylibbpf.elf.Btf` (vmlinux takes a few seconds)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..elf.btf import Btf, BtfKind, BtfType
from ..elf.btfc import dump_c
from ..info import BtfInfo, btf_raw_data
from ._output import CommandError, emit, open_fd

__all__ = ["add_parser", "c_header", "raw_json", "raw_text", "run"]

_INT_ENCODING = {0: "(none)", 1: "SIGNED", 2: "CHAR", 4: "BOOL"}
_LINKAGE = {0: "static", 1: "global", 2: "extern"}  # of a FUNC or VAR


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               common: argparse.ArgumentParser) -> None:
    """``btf dump {id N | file PATH} [format {raw,c}] [root_id ID]...``."""
    group = sub.add_parser("btf", parents=[common], help="BTF (bpftool btf)")
    verbs = group.add_subparsers(dest="verb", required=True)
    cmd = verbs.add_parser("dump", parents=[common],
                           help="print a BTF object's types (raw) or C declarations (c)")
    cmd.add_argument("words", nargs="+",
                     metavar="{id N | file PATH} [format {raw|c}] [root_id ID]")
    cmd.set_defaults(run=run)


def _name(t: BtfType) -> str:
    return t.name or "(anon)"


def raw_json(btf: Btf, t: BtfType) -> dict[str, Any]:
    """One type as ``bpftool -j btf dump ... format raw`` describes it."""
    out: dict[str, Any] = {"id": t.id, "kind": t.kind.name, "name": _name(t)}
    kind = t.kind
    if kind == BtfKind.INT:
        out.update(size=t.size, bits_offset=t.int_offset, nr_bits=t.bits,
                   encoding=_INT_ENCODING.get(t.encoding, "UNKN"))
    elif kind in (BtfKind.PTR, BtfKind.CONST, BtfKind.VOLATILE, BtfKind.RESTRICT,
                  BtfKind.TYPEDEF, BtfKind.TYPE_TAG):
        out["type_id"] = t.type_id
    elif kind == BtfKind.ARRAY:
        out.update(type_id=t.elem_type_id, index_type_id=t.index_type_id, nr_elems=t.nelems)
    elif kind in (BtfKind.STRUCT, BtfKind.UNION):
        out.update(size=t.size, vlen=t.vlen, members=[
            {"name": m.name or "(anon)", "type_id": m.type_id, "bits_offset": m.bit_offset,
             **({"bitfield_size": m.bitfield_size} if m.bitfield_size else {})}
            for m in t.members])
    elif kind in (BtfKind.ENUM, BtfKind.ENUM64):
        bits = 32 if kind == BtfKind.ENUM else 64
        out.update(encoding="SIGNED" if t.kind_flag else "UNSIGNED", size=t.size, vlen=t.vlen,
                   values=[{"name": v.name or "(anon)", "val": _enum_value(v.value, bits,
                                                                        t.kind_flag)}
                           for v in t.enum_values])
    elif kind == BtfKind.FWD:
        out["fwd_kind"] = "union" if t.kind_flag else "struct"
    elif kind == BtfKind.FUNC:
        out.update(type_id=t.type_id, linkage=_LINKAGE.get(t.linkage, "(unknown)"))
    elif kind == BtfKind.FUNC_PROTO:
        out.update(ret_type_id=t.type_id, vlen=t.vlen,
                   params=[{"name": p.name or "(anon)", "type_id": p.type_id}
                           for p in t.params])
    elif kind == BtfKind.VAR:
        out.update(type_id=t.type_id, linkage=_LINKAGE.get(t.linkage, "(unknown)"))
    elif kind == BtfKind.DATASEC:
        out.update(size=t.size, vlen=t.vlen, vars=[
            {"type_id": s.type_id, "offset": s.offset, "size": s.size} for s in t.secinfos])
    elif kind == BtfKind.FLOAT:
        out["size"] = t.size
    elif kind == BtfKind.DECL_TAG:
        out.update(type_id=t.type_id, component_idx=t.component_idx)
    return out


def _enum_value(value: int, bits: int, signed: bool) -> int:
    value &= (1 << bits) - 1
    if signed and value >> (bits - 1):
        value -= 1 << bits
    return value


def raw_text(btf: Btf, t: BtfType) -> str:
    """One type as ``bpftool btf dump ... format raw`` prints it (members on further lines)."""
    d = raw_json(btf, t)
    line = f"[{t.id}] {d['kind']} '{d['name']}'"
    kind = t.kind
    if kind == BtfKind.INT:
        line += (f" size={d['size']} bits_offset={d['bits_offset']} nr_bits={d['nr_bits']} "
                 f"encoding={d['encoding']}")
    elif "type_id" in d and kind not in (BtfKind.FUNC, BtfKind.VAR, BtfKind.ARRAY,
                                         BtfKind.DECL_TAG):
        line += f" type_id={d['type_id']}"
    elif kind == BtfKind.ARRAY:
        line += f" type_id={d['type_id']} index_type_id={d['index_type_id']} " \
                f"nr_elems={d['nr_elems']}"
    elif kind in (BtfKind.STRUCT, BtfKind.UNION):
        line += f" size={d['size']} vlen={d['vlen']}"
        for m in d["members"]:
            line += f"\n\t'{m['name']}' type_id={m['type_id']} bits_offset={m['bits_offset']}"
            if "bitfield_size" in m:
                line += f" bitfield_size={m['bitfield_size']}"
    elif kind in (BtfKind.ENUM, BtfKind.ENUM64):
        line += f" encoding={d['encoding']} size={d['size']} vlen={d['vlen']}"
        suffix = "" if kind == BtfKind.ENUM else "LL" if t.kind_flag else "ULL"
        for v in d["values"]:
            line += f"\n\t'{v['name']}' val={v['val']}{suffix}"
    elif kind == BtfKind.FWD:
        line += f" fwd_kind={d['fwd_kind']}"
    elif kind == BtfKind.FUNC:
        line += f" type_id={d['type_id']} linkage={d['linkage']}"
    elif kind == BtfKind.FUNC_PROTO:
        line += f" ret_type_id={d['ret_type_id']} vlen={d['vlen']}"
        for p in d["params"]:
            line += f"\n\t'{p['name']}' type_id={p['type_id']}"
    elif kind == BtfKind.VAR:
        line += f" type_id={d['type_id']}, linkage={d['linkage']}"
    elif kind == BtfKind.DATASEC:
        line += f" size={d['size']} vlen={d['vlen']}"
        for s in t.secinfos:
            line += f"\n\ttype_id={s.type_id} offset={s.offset} size={s.size}"
            if s.type_id < len(btf):
                var = btf.type_by_id(s.type_id)
                line += f" ({var.kind.name} '{_name(var)}')"
    elif kind == BtfKind.FLOAT:
        line += f" size={d['size']}"
    elif kind == BtfKind.DECL_TAG:
        line += f" type_id={d['type_id']} component_idx={d['component_idx']}"
    return line


def c_header(btf: Btf) -> str:
    """The declarations of :func:`~pylibbpf.elf.btfc.dump_c` wrapped as a header that BPF
    programs include as they include a ``vmlinux.h``: an include guard, and CO-RE's
    ``preserve_access_index`` on every struct and union (``-DBPF_NO_PRESERVE_ACCESS_INDEX``
    turns it off)."""
    return ("#ifndef __VMLINUX_H__\n#define __VMLINUX_H__\n\n"
            "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n"
            "#pragma clang attribute push (__attribute__((preserve_access_index)), "
            "apply_to = record)\n#endif\n\n"
            + dump_c(btf)
            + "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n#pragma clang attribute pop\n#endif\n\n"
            "#endif /* __VMLINUX_H__ */\n")


def _parse(words: list[str]) -> tuple[str, str, str, list[int]]:
    if len(words) < 2 or words[0] not in ("id", "file"):
        raise CommandError("btf dump: expected id N or file PATH", 2)
    source, value, rest = words[0], words[1], words[2:]
    fmt, roots = "raw", []
    while rest:
        if len(rest) < 2:
            raise CommandError(f"btf dump: {rest[0]!r} needs a value", 2)
        key, arg, rest = rest[0], rest[1], rest[2:]
        if key == "format" and arg in ("raw", "c"):
            fmt = arg
        elif key == "root_id":
            try:
                roots.append(int(arg, 0))
            except ValueError:
                raise CommandError(f"btf dump: root_id {arg!r} is not a number", 2) from None
        else:
            raise CommandError(f"btf dump: unexpected {key} {arg!r} (format raw|c, "
                               "root_id ID)", 2)
    return source, value, fmt, roots


def _load(source: str, value: str) -> Btf:
    if source == "file":
        try:
            with open(value, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise CommandError(f"btf dump: cannot read {value}: {exc.strerror}") from None
        if data[:4] == b"\x7fELF":
            from ..elf import ObjectFile

            btf = ObjectFile.from_path(value).btf
            if btf is None:
                raise CommandError(f"btf dump: {value} has no .BTF section")
            return btf
        return _parse_btf(data, value)
    try:
        btf_id = int(value, 0)
    except ValueError:
        raise CommandError(f"btf dump: id {value!r} is not a number", 2) from None
    with open_fd("btf", btf_id) as fd:
        info = BtfInfo.from_fd(fd)
        if info.kernel_btf and info.name != "vmlinux":
            raise CommandError(f"btf dump: BTF id {btf_id} is kernel module {info.name}'s, "
                               "split BTF on top of vmlinux, which is not supported yet")
        data = btf_raw_data(fd)
    return _parse_btf(data, f"BTF id {btf_id}")


def _parse_btf(data: bytes, what: str) -> Btf:
    from ..elf.errors import ElfError

    try:
        return Btf.from_bytes(data)
    except ElfError as exc:
        raise CommandError(f"btf dump: {what}: {exc} (split BTF, a kernel module's on top "
                           "of vmlinux, is not supported yet)") from None


def run(args: argparse.Namespace) -> int:
    source, value, fmt, roots = _parse(args.words)
    btf = _load(source, value)
    for root in roots:
        if not 0 < root < len(btf):
            raise CommandError(f"btf dump: root_id {root} is not a type of this BTF "
                               f"(1..{len(btf) - 1})")
    types = [btf.types[i] for i in roots] if roots else btf.types[1:]
    if fmt == "c":
        if roots:
            raise CommandError("btf dump: format c prints the whole BTF (root_id is for raw)", 2)
        sys.stdout.write(c_header(btf))
        return 0
    if getattr(args, "json", False) or getattr(args, "pretty", False):
        emit(args, {"types": [raw_json(btf, t) for t in types]})
    else:
        emit(args, None, "\n".join(raw_text(btf, t) for t in types))
    return 0
