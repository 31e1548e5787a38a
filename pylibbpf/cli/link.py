"""``pylibbpf link list|show [id N | pinned PATH]``: links as ``bpftool link show`` describes
them, with what each is attached to."""

from __future__ import annotations

import argparse
import errno
from collections.abc import Iterator
from typing import Any

from ..enums import LinkType
from ..errors import BpfError
from ..info import LinkInfo, ProgramInfo, link_ids
from ._output import CommandError, emit, kind_name, open_fd, open_pinned, parse_selector

__all__ = ["add_parser", "describe", "run"]

_SELECTORS = ("id", "pinned")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               common: argparse.ArgumentParser) -> None:
    """``link {list,show} [id N | pinned PATH]``."""
    group = sub.add_parser("link", parents=[common], help="links (bpftool link)")
    verbs = group.add_subparsers(dest="verb", required=True)
    for verb in ("show", "list"):
        cmd = verbs.add_parser(verb, parents=[common], help="describe links")
        cmd.add_argument("select", nargs="*", metavar="id N | pinned PATH")
        cmd.set_defaults(run=run)


def describe(fd: int) -> dict[str, Any]:
    """The link behind ``fd`` with bpftool's JSON field names (``link show -j``)."""
    info = LinkInfo.from_fd(fd)
    out: dict[str, Any] = {"id": info.id, "type": kind_name("link", int(info.type)),
                           "prog_id": info.prog_id}
    d = info.details
    if info.type == LinkType.RAW_TRACEPOINT:
        out["tp_name"] = d["tp_name"]
    elif info.type == LinkType.TRACING:
        try:
            with open_fd("prog", info.prog_id) as prog_fd:
                out["prog_type"] = kind_name("prog", int(ProgramInfo.from_fd(prog_fd).type))
        except BpfError as exc:
            if exc.errno != errno.ENOENT:
                raise
        out["attach_type"] = kind_name("attach", int(d["attach_type"]))
        # newer bpftool (7.3) prints these as well
        out.update(target_obj_id=d["target_obj_id"], target_btf_id=d["target_btf_id"])
    elif info.type in (LinkType.CGROUP, LinkType.NETNS):
        key = "cgroup_id" if info.type == LinkType.CGROUP else "netns_ino"
        out[key] = d[key]
        out["attach_type"] = kind_name("attach", int(d["attach_type"]))
    elif info.type == LinkType.ITER:
        out["target_name"] = d["target_name"]
        if d["target_name"].startswith(("bpf_map_elem", "bpf_sk_storage_map")):
            out["map_id"] = d["map_id"]
    elif info.type == LinkType.XDP:
        out["ifindex"] = d["ifindex"]  # newer bpftool (7.3) prints it as well
    return out


_TEXT_KEYS = {"tp_name": "tp", "attach_type": "attach_type", "prog_type": "prog_type",
              "target_obj_id": "target_obj_id", "target_btf_id": "target_btf_id",
              "cgroup_id": "cgroup", "netns_ino": "netns_ino", "target_name": "target_name",
              "map_id": "map_id", "ifindex": "ifindex"}


def text(link: dict[str, Any]) -> str:
    head = f"{link['id']}: {link['type']}  prog {link['prog_id']}"
    details = [f"{_TEXT_KEYS[k]} {link[k]!r}" if k in ("tp_name", "target_name")
               else f"{_TEXT_KEYS[k]} {link[k]}" for k in _TEXT_KEYS if k in link]
    return head + ("\n\t" + "  ".join(details) if details else "")


def _matching(select: tuple[str, str] | None) -> Iterator[dict[str, Any]]:
    if select is not None:
        opener = open_fd("link", int(select[1])) if select[0] == "id" else open_pinned(select[1])
        with opener as fd:
            yield describe(fd)
        return
    for link_id in link_ids():
        try:
            with open_fd("link", link_id) as fd:
                yield describe(fd)
        except BpfError as exc:
            if exc.errno != errno.ENOENT:  # ENOENT: detached meanwhile
                raise


def run(args: argparse.Namespace) -> int:
    select = parse_selector(args.select, _SELECTORS, f"link {args.verb}")
    links = list(_matching(select))
    if select is not None and not links:
        raise CommandError(f"link {args.verb}: no link with {select[0]} {select[1]}")
    emit(args, links[0] if select is not None else links, "\n".join(text(x) for x in links))
    return 0
