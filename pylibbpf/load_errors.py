"""What a failed open or load says: libbpf's own reason, from the lines it printed.

libbpf prints why a load failed (the map it could not create, the CO-RE relocation or kfunc it
could not resolve, the verifier's log) through its print callback; C programs see those lines on
stderr.  pylibbpf captures them per call (:func:`pylibbpf._ffi.printcb.capture`) and puts the
relevant few into the exception, so the message names what failed without logging set up.
"""

from __future__ import annotations

import errno as _errno
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .enums import MapType, ProgType
from .errors import BpfError, VerifierError, error_from_errno

if TYPE_CHECKING:
    from .maps.of_object import ObjectMap
    from .program import Program

__all__ = ["last_warning", "load_error", "open_error"]

_LOG_RE = re.compile(
    r"prog '(?P<name>[^']*)': -- BEGIN PROG LOAD LOG --\n(?P<log>.*?)-- END PROG LOAD LOG --",
    re.S,
)
_NETWORK_TYPES = frozenset({
    ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.XDP,
    ProgType.CGROUP_SKB, ProgType.CGROUP_SOCK, ProgType.LWT_IN, ProgType.LWT_OUT,
    ProgType.LWT_XMIT, ProgType.SOCK_OPS, ProgType.SK_SKB, ProgType.SK_MSG,
    ProgType.CGROUP_SOCK_ADDR, ProgType.FLOW_DISSECTOR, ProgType.SK_REUSEPORT,
    ProgType.SK_LOOKUP,
})


# libbpf's lines that only repeat that the load failed (the reason is on the lines before), or
# that it retries a map without BTF (the retry's outcome follows)
_NOISE_RE = re.compile(r"failed to load object '|: failed to load: |failed to prepare load "
                       r"attributes|BPF program load failed|load bpf program failed|"
                       r"Retrying without BTF")
# libbpf rewrites the instruction of a failed CO-RE relocation into this line of the log
_CORE_RE = re.compile(r"failed to resolve CO-RE relocation [^\n]*")
# map types whose max_entries 0 libbpf replaces (the number of CPUs) or the kernel ignores
_SIZED_BY_LIBBPF = frozenset({MapType.PERF_EVENT_ARRAY, MapType.STRUCT_OPS, MapType.CGROUP_STORAGE,
                              MapType.PERCPU_CGROUP_STORAGE,
                              MapType.TASK_STORAGE, MapType.INODE_STORAGE,
                              MapType.SK_STORAGE, MapType.CGRP_STORAGE})
_REASONS_MAX = 3


def load_error(err: int, messages: list[str], *, object_name: str, kernel_log: str,
               maps: Mapping[str, ObjectMap], programs: Mapping[str, Program]) -> BpfError:
    """The exception for a failed ``bpf_object__load`` of ``object_name``: a
    :class:`~pylibbpf.VerifierError` carrying the verifier log when a program was rejected
    (``kernel_log``: the object's own log buffer, if it has one), else a
    :class:`~pylibbpf.BpfError` with libbpf's last few reasons and the capabilities a load of
    these programs needs."""
    text = "".join(messages)
    match = _LOG_RE.search(text)
    if match is not None or kernel_log:
        name = match.group("name") if match else _failed_program(text)
        log = match.group("log") if match else kernel_log
        core = _CORE_RE.search(log)
        reason = f": {core.group(0)[:300]}" if core else ""
        return VerifierError(err, f"the verifier rejected program {name!r} of object "
                             f"{object_name!r}{reason}", name, log)
    reasons = [_hint(line, maps) for line in _libbpf_reasons(text)]
    context = f"failed to load BPF object {object_name!r}" + \
        (f": {'; '.join(reasons)}" if reasons else "")
    return error_from_errno(err, context, _capabilities_needed(programs))


def _hint(line: str, maps: Mapping[str, ObjectMap]) -> str:
    """libbpf's line, with what pylibbpf knows that it does not say."""
    match = re.match(r"map '([^']*)': failed to create", line)
    if match is not None:
        found = maps.get(match.group(1))
        if found is not None and found.max_entries == 0 and found.type not in \
                _SIZED_BY_LIBBPF:
            line += (" (its max_entries is 0: declare __uint(max_entries, N) or call "
                     "set_max_entries() before load)")
    return line


def _capabilities_needed(programs: Mapping[str, Program]) -> tuple[str, ...]:
    needs = ["CAP_BPF"]
    types = {p.type for p in programs.values() if p.autoload}
    if types - _NETWORK_TYPES:
        needs.append("CAP_PERFMON")
    if types & _NETWORK_TYPES:
        needs.append("CAP_NET_ADMIN")
    return tuple(needs)


def last_warning(messages: list[str]) -> str:
    for message in reversed(messages):
        line = message.strip()
        if line and not line.startswith("--"):
            return line.splitlines()[-1][:300]
    return ""


def _libbpf_reasons(text: str) -> list[str]:
    """The last few lines libbpf warned with before a load failed (its reason, naming the map
    or program), without the verifier log and the lines that only say that loading failed."""
    reasons: list[str] = []
    for raw in _LOG_RE.sub("", text).splitlines():
        line = raw.strip().removeprefix("libbpf:").strip()
        if not line or line.startswith("--") or _NOISE_RE.search(line) or line in reasons:
            continue
        reasons.append(line[:300])
    return reasons[-_REASONS_MAX:]


def _failed_program(text: str) -> str:
    match = re.search(r"prog '([^']*)': (?:BPF program load failed|failed to load)", text)
    return match.group(1) if match else "?"


def open_error(exc: BpfError, context: str, messages: list[str]) -> BpfError:
    detail = last_warning(messages)
    if exc.errno == _errno.ENOENT and "No such file" in detail:
        detail = ""
    return error_from_errno(exc.errno, context + (f": {detail}" if detail else ""))
