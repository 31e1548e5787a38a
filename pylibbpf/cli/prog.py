"""``pylibbpf prog list|show [id N | name NAME | tag TAG | pinned PATH]``: the loaded programs,
as ``bpftool prog show`` describes them."""

from __future__ import annotations

import argparse
import errno
from collections.abc import Iterator
from typing import Any

from ..errors import BpfError
from ..info import ProgramInfo, program_ids
from ._output import (
    CommandError,
    boot_time_to_epoch,
    emit,
    fdinfo,
    format_time,
    kind_name,
    open_fd,
    open_pinned,
    parse_selector,
)

__all__ = ["add_parser", "describe", "run"]

_SELECTORS = ("id", "name", "tag", "pinned")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               common: argparse.ArgumentParser) -> None:
    """``prog {list,show} [id N | name NAME | tag TAG | pinned PATH]``."""
    group = sub.add_parser("prog", parents=[common], help="loaded programs (bpftool prog)")
    verbs = group.add_subparsers(dest="verb", required=True)
    for verb in ("show", "list"):
        cmd = verbs.add_parser(verb, parents=[common], help="describe loaded programs")
        cmd.add_argument("select", nargs="*", metavar="id N | name NAME | tag TAG | pinned PATH")
        cmd.set_defaults(run=run)


def describe(fd: int) -> dict[str, Any]:
    """The program behind ``fd`` with bpftool's JSON field names (``prog show -j``)."""
    info = ProgramInfo.from_fd(fd)
    out: dict[str, Any] = {"id": info.id, "type": kind_name("prog", int(info.type))}
    if info.name:
        out["name"] = info.name
    out["tag"] = info.tag
    out["gpl_compatible"] = info.gpl_compatible
    if info.run_time_ns:
        out.update(run_time_ns=info.run_time_ns, run_cnt=info.run_cnt)
    if info.load_time:
        out["loaded_at"] = boot_time_to_epoch(info.load_time)
        out["uid"] = info.created_by_uid
    out["bytes_xlated"] = info.xlated_prog_len
    out["jited"] = bool(info.jited_prog_len)
    if info.jited_prog_len:
        out["bytes_jited"] = info.jited_prog_len
    memlock = fdinfo(fd).get("memlock")
    if memlock is not None:
        out["bytes_memlock"] = int(memlock)
    if info.map_ids:
        out["map_ids"] = list(info.map_ids)
    if info.btf_id:
        out["btf_id"] = info.btf_id
    if info.verified_insns:
        out["verified_insns"] = info.verified_insns  # bpftool prints it from v7.2
    return out


def text(prog: dict[str, Any]) -> str:
    """bpftool's text layout: a header line, then indented details."""
    head = f"{prog['id']}: {prog['type']}  "
    if "name" in prog:
        head += f"name {prog['name']}  "
    head += f"tag {prog['tag']}{'  gpl' if prog['gpl_compatible'] else ''}"
    if "run_time_ns" in prog:
        head += f" run_time_ns {prog['run_time_ns']} run_cnt {prog['run_cnt']}"
    lines = [head]
    if "loaded_at" in prog:
        lines.append(f"\tloaded_at {format_time(prog['loaded_at'])}  uid {prog['uid']}")
    sizes = f"\txlated {prog['bytes_xlated']}B  "
    sizes += f"jited {prog['bytes_jited']}B" if prog["jited"] else "not jited"
    if "bytes_memlock" in prog:
        sizes += f"  memlock {prog['bytes_memlock']}B"
    if "map_ids" in prog:
        sizes += f"  map_ids {','.join(str(i) for i in prog['map_ids'])}"
    lines.append(sizes)
    if "btf_id" in prog:
        lines.append(f"\tbtf_id {prog['btf_id']}")
    return "\n".join(lines)


def _matching(select: tuple[str, str] | None) -> Iterator[dict[str, Any]]:
    if select is not None and select[0] == "id":
        with open_fd("prog", int(select[1])) as fd:
            yield describe(fd)
        return
    if select is not None and select[0] == "pinned":
        with open_pinned(select[1]) as fd:
            yield describe(fd)
        return
    for prog_id in program_ids():
        try:
            with open_fd("prog", prog_id) as fd:
                prog = describe(fd)
        except BpfError as exc:
            if exc.errno == errno.ENOENT:
                continue  # unloaded meanwhile
            raise
        if select is None or prog.get(select[0]) == select[1]:
            yield prog


def run(args: argparse.Namespace) -> int:
    select = parse_selector(args.select, _SELECTORS, f"prog {args.verb}")
    progs = list(_matching(select))
    if select is not None and not progs:
        raise CommandError(f"prog {args.verb}: no program with {select[0]} {select[1]!r}")
    single = select is not None and len(progs) == 1
    emit(args, progs[0] if single else progs, "\n".join(text(p) for p in progs))
    return 0
