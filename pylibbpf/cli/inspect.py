"""``pylibbpf inspect OBJ.o [--json] [--disasm] [--btf]``: describe an eBPF object file
(no root, no libbpf: :mod:`pylibbpf.elf` only)."""

from __future__ import annotations

import argparse
import json
import sys

from ..elf import ElfError, ObjectFile
from ..elf.btf import BtfKind
from ._output import want_json

__all__ = ["add_parser", "inspect_json", "inspect_text", "run"]


def inspect_json(obj: ObjectFile, *, disasm: bool = False, btf: bool = False) -> str:
    """The stable JSON description (sorted keys, two-space indent)."""
    data = obj.to_json()
    if disasm:
        data["disassembly"] = obj.disassemble(raw=False, source=True)
    if btf and obj.btf is not None:
        data["btf"] = [t.to_json() for t in obj.btf.types[1:]]
    return json.dumps(data, indent=2, sort_keys=True)


def inspect_text(obj: ObjectFile, *, disasm: bool = False, btf: bool = False) -> str:
    """A readable summary of programs, maps, relocations, externs, license and BTF."""
    lines = [f"object: {obj.name}  ({obj.endianness}-endian)",
             f"license: {obj.license or '-'}",
             f"kern_version: {obj.kern_version:#x}",
             f"btf: {'yes' if obj.has_btf else 'no'}"
             f"{f' ({len(obj.btf)} types)' if obj.btf is not None else ''}"
             f"  btf.ext: {'yes' if obj.has_btf_ext else 'no'}"]
    lines.append(f"\nprograms ({len(obj.programs)}):")
    for p in obj.programs:
        attach = p.expected_attach_type.name.lower() if p.section_def and \
            p.section_def.attach_type else "-"
        lines.append(f"  {p.name}  sec={p.section_name}  type={p.prog_type.name.lower()}  "
                     f"attach={attach}  insns={p.sec_insn_off}+{p.sec_insn_cnt}"
                     f"{'  sleepable' if p.sleepable else ''}"
                     f"{'' if p.is_global else '  static'}")
        if p.subprograms:
            lines.append(f"    calls: {', '.join(p.subprograms)}")
        for r in p.relocations:
            what = r.map_name or r.target or ""
            lines.append(f"    reloc insn {r.insn_idx}: {r.kind.value} {r.symbol}"
                         f"{f' -> {what}' if what and what != r.symbol else ''}"
                         f"{f' +{r.sym_off}' if r.sym_off else ''}")
    if obj.subprograms:
        lines.append(f"\nsub-programs ({len(obj.subprograms)}):")
        for p in obj.subprograms:
            lines.append(f"  {p.name}  insns={p.sec_insn_off}+{p.sec_insn_cnt}"
                         f"{'' if p.is_global else '  static'}")
    lines.append(f"\nmaps ({len(obj.maps)}):")
    for m in obj.maps:
        lines.append(f"  {m.name}  type={m.type_name}  key={m.key_size}  value={m.value_size}  "
                     f"max_entries={m.max_entries}  flags={m.map_flags:#x}  ({m.origin})"
                     f"{f'  pinning={m.pinning}' if m.pinning else ''}")
        if m.inner is not None:
            i = m.inner
            lines.append(f"    inner: type={i.type_name} key={i.key_size} value={i.value_size} "
                         f"max_entries={i.max_entries}")
        for slot, name in sorted(m.init_slots.items()):
            lines.append(f"    [{slot}] = {name}")
        for v in m.variables:
            lines.append(f"    +{v.offset} {v.name}: {v.type_name or '?'} ({v.size} bytes)")
    if obj.externs:
        lines.append(f"\nexterns ({len(obj.externs)}):")
        for e in obj.externs:
            lines.append(f"  {e.name}  {e.kind}{'  weak' if e.weak else ''}")
    for w in obj.warnings:
        lines.append(f"warning: {w}")
    text = "\n".join(lines) + "\n"
    if btf and obj.btf is not None:
        out = ["\nBTF types:"]
        for t in obj.btf.types[1:]:
            if t.kind in (BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.ENUM64,
                          BtfKind.TYPEDEF) and t.name:
                out.append(f"[{t.id}] {obj.btf.format_c(t)};")
            else:
                out.append(f"[{t.id}] {t.kind.name} '{t.name}'")
        text += "\n".join(out) + "\n"
    if disasm:
        text += obj.disassemble(raw=False, source=True)
    return text


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               common: argparse.ArgumentParser) -> None:
    """``inspect OBJ.o [--json] [--disasm] [--btf]``."""
    ins = sub.add_parser("inspect", parents=[common],
                         help="describe an eBPF object file (no root needed)")
    ins.add_argument("object", help="path to a BPF ELF object (.o)")
    ins.add_argument("--disasm", action="store_true", help="include the disassembly")
    ins.add_argument("--btf", action="store_true", help="include the BTF types")
    ins.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Describe ``args.object``; 1 when it cannot be read."""
    try:
        obj = ObjectFile.from_path(args.object)
    except (ElfError, OSError) as exc:
        print(f"pylibbpf inspect: {args.object}: {exc}", file=sys.stderr)
        return 1
    as_json = want_json(args)
    render = inspect_json if as_json else inspect_text
    sys.stdout.write(render(obj, disasm=args.disasm, btf=args.btf))
    if as_json:
        sys.stdout.write("\n")
    return 0
