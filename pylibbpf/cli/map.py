"""``pylibbpf map list|show [id N | name NAME | pinned PATH]`` and ``pylibbpf map dump
{id N | name NAME | pinned PATH}``: maps as ``bpftool map show`` describes them, and their
entries as ``bpftool map dump`` prints them (keys and values decoded with the map's BTF where
it has one, raw bytes otherwise, per-CPU values per CPU)."""

from __future__ import annotations

import argparse
import errno
import json
from collections.abc import Iterator
from typing import Any

from ..errors import BpfError
from ..info import MapInfo, map_ids
from ..map import Map
from ._btfvalue import formatted
from ._output import (
    CommandError,
    emit,
    fdinfo,
    hex_json,
    hex_text,
    kind_name,
    open_fd,
    open_pinned,
    parse_selector,
)

__all__ = ["add_parser", "describe", "dump_entries", "run_dump", "run_show"]

_SELECTORS = ("id", "name", "pinned")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               common: argparse.ArgumentParser) -> None:
    """``map {list,show} [SELECTOR]`` and ``map dump SELECTOR``."""
    group = sub.add_parser("map", parents=[common], help="maps (bpftool map)")
    verbs = group.add_subparsers(dest="verb", required=True)
    for verb in ("show", "list"):
        cmd = verbs.add_parser(verb, parents=[common], help="describe maps")
        cmd.add_argument("select", nargs="*", metavar="id N | name NAME | pinned PATH")
        cmd.set_defaults(run=run_show)
    cmd = verbs.add_parser("dump", parents=[common],
                           help="print every entry (decoded with the map's BTF)")
    cmd.add_argument("select", nargs="*", metavar="id N | name NAME | pinned PATH")
    cmd.set_defaults(run=run_dump)


def describe(fd: int) -> dict[str, Any]:
    """The map behind ``fd`` with bpftool's JSON field names (``map show -j``)."""
    info = MapInfo.from_fd(fd)
    extra = fdinfo(fd)
    out: dict[str, Any] = {"id": info.id, "type": kind_name("map", int(info.type))}
    if info.name:
        out["name"] = info.name
    out.update(flags=info.map_flags, bytes_key=info.key_size, bytes_value=info.value_size,
               max_entries=info.max_entries)
    if "memlock" in extra:
        out["bytes_memlock"] = int(extra["memlock"])
    out["frozen"] = int(extra.get("frozen", "0") or 0)
    if info.btf_id:
        out["btf_id"] = info.btf_id
    return out


def text(m: dict[str, Any]) -> str:
    head = f"{m['id']}: {m['type']}  " + (f"name {m['name']}  " if "name" in m else "")
    head += f"flags {m['flags']:#x}"
    body = f"\tkey {m['bytes_key']}B  value {m['bytes_value']}B  max_entries {m['max_entries']}"
    if "bytes_memlock" in m:
        body += f"  memlock {m['bytes_memlock']}B"
    lines = [head, body]
    if m["frozen"]:
        lines.append("\tfrozen")
    if "btf_id" in m:
        lines.append(f"\tbtf_id {m['btf_id']}")
    return "\n".join(lines)


def _by_name(name: str) -> Iterator[int]:
    for map_id in map_ids():
        try:
            with open_fd("map", map_id) as fd:
                if MapInfo.from_fd(fd).name == name:
                    yield map_id
        except BpfError as exc:
            if exc.errno != errno.ENOENT:  # ENOENT: freed meanwhile
                raise


def _fds(select: tuple[str, str] | None, what: str) -> Iterator[int]:
    """An fd (closed after each step) of each map the selector names."""
    if select is not None and select[0] == "pinned":
        with open_pinned(select[1]) as fd:
            yield fd
        return
    if select is not None and select[0] == "id":
        with open_fd("map", int(select[1])) as fd:
            yield fd
        return
    ids = list(map_ids()) if select is None else list(_by_name(select[1]))
    if select is not None and not ids:
        raise CommandError(f"{what}: no map named {select[1]!r}")
    for map_id in ids:
        try:
            with open_fd("map", map_id) as fd:
                yield fd
        except BpfError as exc:
            if exc.errno != errno.ENOENT:
                raise


def run_show(args: argparse.Namespace) -> int:
    select = parse_selector(args.select, _SELECTORS, f"map {args.verb}")
    maps = [describe(fd) for fd in _fds(select, f"map {args.verb}")]
    single = select is not None and len(maps) == 1
    emit(args, maps[0] if single else maps, "\n".join(text(m) for m in maps))
    return 0


def dump_entries(fd: int) -> list[dict[str, Any]]:
    """Every entry of the map behind ``fd``, shaped as ``bpftool map dump -j`` prints it:
    ``key``/``value`` (or per-CPU ``values``) as hex bytes, and ``formatted`` with the values
    decoded by the map's BTF when it has a value type."""
    info = MapInfo.from_fd(fd)
    entries = []
    with Map.from_fd(fd) as m:
        btf = m.btf if info.btf_value_type_id else None
        try:
            items = m.items()
        except TypeError as exc:  # queues, stacks, ring buffers: no keys to walk
            raise CommandError(f"map dump: map id {info.id}: {exc}") from None
        for key, value in items:
            entry: dict[str, Any] = {"key": hex_json(key)}
            per_cpu = isinstance(value, list)
            if per_cpu:
                entry["values"] = [{"cpu": cpu, "value": hex_json(v)}
                                   for cpu, v in enumerate(value)]
            else:
                entry["value"] = hex_json(value)
            if btf is not None:
                decoded: dict[str, Any] = {}
                if info.btf_key_type_id:
                    decoded["key"] = formatted(btf, info.btf_key_type_id, key)
                vid = info.btf_value_type_id
                if per_cpu:
                    decoded["values"] = [{"cpu": cpu, "value": formatted(btf, vid, v)}
                                         for cpu, v in enumerate(value)]
                else:
                    decoded["value"] = formatted(btf, vid, value)
                entry["formatted"] = decoded
            entries.append(entry)
    return entries


def _entry_text(entry: dict[str, Any]) -> str:
    if "formatted" in entry:
        return json.dumps(entry["formatted"], indent=4)
    key = bytes(int(b, 16) for b in entry["key"])
    if "value" in entry:
        value = bytes(int(b, 16) for b in entry["value"])
        return f"key: {hex_text(key)}  value: {hex_text(value)}"
    lines = [f"key:\n{hex_text(key)}"]
    for v in entry["values"]:
        raw = bytes(int(b, 16) for b in v["value"])
        lines.append(f"value (CPU {v['cpu']:02d}): {hex_text(raw)}")
    return "\n".join(lines)


def run_dump(args: argparse.Namespace) -> int:
    select = parse_selector(args.select, _SELECTORS, "map dump", required=True)
    dumps = [dump_entries(fd) for fd in _fds(select, "map dump")]
    if len(dumps) != 1:
        # several maps of that name: one list per map
        emit(args, dumps, "\n\n".join("\n".join(_entry_text(e) for e in d) for d in dumps))
        return 0
    entries = dumps[0]
    lines = [_entry_text(e) for e in entries]
    lines.append(f"Found {len(entries)} element{'' if len(entries) == 1 else 's'}")
    emit(args, entries, "\n".join(lines))
    return 0
