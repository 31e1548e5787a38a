"""``pylibbpf feature probe [kernel]``: what the running kernel offers to BPF, in the sections
and JSON keys of ``bpftool feature probe kernel`` (``system_config``, ``syscall_config``,
``program_types``, ``map_types``, ``helpers``), answered by :mod:`pylibbpf.probe`.

pylibbpf's helper probe reads the verifier's refusal as kernels since 6.10 word it, which
libbpf before 1.5 (and so a bpftool built on it) takes for "supported": on such a kernel
bpftool lists every helper for every program type, and this command the ones that load.
``--helpers-of TYPE`` (repeatable) limits the helper probes, the slow part, to those program
types; ``--section`` prints only the sections named."""

from __future__ import annotations

import argparse
from typing import Any

from .. import probe
from ..enums import ProgType
from ..errors import NotSupportedError
from ._output import CommandError, emit, kind_name

__all__ = ["add_parser", "probe_kernel", "run"]

_SECTIONS = ("system_config", "syscall_config", "program_types", "map_types", "helpers")
_SYSCTLS = {"unprivileged_bpf_disabled": "/proc/sys/kernel/unprivileged_bpf_disabled",
            "bpf_jit_enable": "/proc/sys/net/core/bpf_jit_enable",
            "bpf_jit_harden": "/proc/sys/net/core/bpf_jit_harden",
            "bpf_jit_kallsyms": "/proc/sys/net/core/bpf_jit_kallsyms",
            "bpf_jit_limit": "/proc/sys/net/core/bpf_jit_limit"}
# helpers whose probe writes to the kernel log: bpftool leaves them out unless asked ("full")
_NOISY = {"trace_printk", "trace_vprintk", "probe_write_user"}
_LIMIT = 256  # program and map type numbers are far below this


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               common: argparse.ArgumentParser) -> None:
    """``feature probe [kernel] [--section S]... [--helpers-of TYPE]... [--full]``."""
    group = sub.add_parser("feature", parents=[common], help="kernel features (bpftool feature)")
    verbs = group.add_subparsers(dest="verb", required=True)
    cmd = verbs.add_parser("probe", parents=[common], help="probe the running kernel")
    cmd.add_argument("target", nargs="?", default="kernel", choices=["kernel"])
    cmd.add_argument("--section", action="append", choices=_SECTIONS,
                     help="print only this section (repeatable)")
    cmd.add_argument("--helpers-of", action="append", metavar="PROG_TYPE",
                     help="probe helpers for this program type only (repeatable; libbpf's "
                     "name: kprobe, xdp, ...)")
    cmd.add_argument("--full", action="store_true",
                     help="also probe the helpers that write to the kernel log "
                     "(bpf_trace_printk, bpf_trace_vprintk, bpf_probe_write_user)")
    cmd.set_defaults(run=run)


def _names(table: str) -> dict[int, str]:
    out = {}
    for number in range(1, _LIMIT):
        name = kind_name(table, number)  # type: ignore[arg-type]
        if isinstance(name, str):
            out[number] = name
    return out


def _sysctl(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _helpers(prog_type: int, full: bool) -> list[str]:
    found = []
    for number, name in probe.helper_names().items():
        if name.removeprefix("bpf_") in _NOISY and not full:
            continue
        try:
            if probe.probe_helper(prog_type, number):
                found.append(name)
        except NotSupportedError:  # libbpf cannot probe this program type's helpers
            return []
    return found


def probe_kernel(sections: list[str] | None = None, helpers_of: list[str] | None = None,
                 full: bool = False) -> dict[str, Any]:
    """The probe results with bpftool's section and key names."""
    wanted = sections or list(_SECTIONS)
    prog_types = _names("prog")
    out: dict[str, Any] = {}
    if "system_config" in wanted:
        out["system_config"] = {key: _sysctl(path) for key, path in _SYSCTLS.items()}
    if "syscall_config" in wanted:
        out["syscall_config"] = {"have_bpf_syscall": bool(probe.probe_prog_type(
            ProgType.SOCKET_FILTER))}
    if "program_types" in wanted:
        out["program_types"] = {f"have_{name}_prog_type": bool(probe.probe_prog_type(number))
                                for number, name in prog_types.items()}
    if "map_types" in wanted:
        out["map_types"] = {f"have_{name}_map_type": bool(probe.probe_map_type(number))
                            for number, name in _names("map").items()}
    if "helpers" in wanted:
        by_name = {name: number for number, name in prog_types.items()}
        chosen = helpers_of or list(by_name)
        unknown = [name for name in chosen if name not in by_name]
        if unknown:
            raise CommandError(f"feature probe: unknown program type {unknown[0]!r} (one of "
                               f"{', '.join(by_name)})", 2)
        out["helpers"] = {f"{name}_available_helpers": _helpers(by_name[name], full)
                          for name in chosen}
    return out


def _text(result: dict[str, Any]) -> str:
    lines: list[str] = []
    for key, value in result.get("system_config", {}).items():
        lines.append(f"{key} is {'unknown' if value is None else value}")
    if "syscall_config" in result:
        have = result["syscall_config"]["have_bpf_syscall"]
        lines.append(f"bpf() syscall is {'available' if have else 'NOT available'}")
    for section, what in (("program_types", "program_type"), ("map_types", "map_type")):
        suffix = "_prog_type" if section == "program_types" else "_map_type"
        for key, have in result.get(section, {}).items():
            name = key.removeprefix("have_").removesuffix(suffix)
            lines.append(f"eBPF {what} {name} is {'available' if have else 'NOT available'}")
    for key, helpers in result.get("helpers", {}).items():
        lines.append(f"eBPF helpers supported for program type "
                     f"{key.removesuffix('_available_helpers')}:")
        lines.extend(f"\t- {h}" for h in helpers)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    result = probe_kernel(args.section, args.helpers_of, args.full)
    emit(args, result, _text(result))
    return 0
