"""What every probe shares: the :class:`Support` answer, memoizing, and how a refusal
by the kernel becomes an answer or an error."""

from __future__ import annotations

import errno as _errno
import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .. import _ffi
from ..enums import MapType, ProgType
from ..errors import (
    _CAP_BITS,
    BpfError,
    NotSupportedError,
    _effective_caps,
    error_from_errno,
)

TRACEFS_MOUNTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
"""Where tracefs is looked for: its own mount point, then the one inside debugfs."""
KPROBE_PMU = "/sys/bus/event_source/devices/kprobe/type"
KPROBE_BLACKLIST = "/sys/kernel/debug/kprobes/blacklist"
KALLSYMS = "/proc/kallsyms"
LOCKDOWN = "/sys/kernel/security/lockdown"

_RET0 = bytes.fromhex("b700000000000000" "9500000000000000")  # r0 = 0; exit
_TRACING_CAPS = ("CAP_BPF", "CAP_PERFMON")
_NET_CAPS = ("CAP_BPF", "CAP_NET_ADMIN")
_NET_TYPES = frozenset({
    ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.XDP,
    ProgType.CGROUP_SKB, ProgType.CGROUP_SOCK, ProgType.LWT_IN, ProgType.LWT_OUT,
    ProgType.LWT_XMIT, ProgType.SOCK_OPS, ProgType.SK_SKB, ProgType.SK_MSG,
    ProgType.CGROUP_SOCK_ADDR, ProgType.LWT_SEG6LOCAL, ProgType.SK_REUSEPORT,
    ProgType.FLOW_DISSECTOR, ProgType.CGROUP_SOCKOPT, ProgType.SK_LOOKUP, ProgType.NETFILTER,
})


@dataclass(frozen=True)
class Support:
    """A probe's answer: true (in ``if``, ``bool()``) exactly when the kernel supports
    ``what``.  Compare with ``bool(answer)``, not ``is True``."""

    supported: bool
    what: str
    """What was asked: ``"program type TRACING"``, ``"fentry on vfs_read"``."""
    reason: str | None = None
    """Why not, as a sentence; None when supported."""
    errno: int = 0
    """The kernel's errno behind a "no", when it gave one (0 otherwise)."""

    def __bool__(self) -> bool:
        return self.supported

    @property
    def refused_by_policy(self) -> bool:
        """The kernel has the feature but its security policy (lockdown, an LSM) refused it
        to this privileged process (EPERM)."""
        return not self.supported and self.errno == _errno.EPERM

    def require(self) -> None:
        """Raise :class:`~pylibbpf.NotSupportedError` (``errno`` the kernel's, else
        EOPNOTSUPP) naming ``what`` and ``reason`` unless supported."""
        if not self.supported:
            raise NotSupportedError(f"{self.what} is not supported: {self.reason}",
                                    self.errno or _errno.EOPNOTSUPP)

    def __str__(self) -> str:
        return f"{self.what}: supported" if self.supported else \
            f"{self.what}: not supported: {self.reason}"


def _yes(what: str) -> Support:
    return Support(True, what)


def _no(what: str, reason: str, err: int = 0) -> Support:
    return Support(False, what, reason, err)


# ------------------------------------------------------------------------------- memoizing

_F = TypeVar("_F", bound=Callable[..., Support])
_clears: list[Callable[[], None]] = []


def _keep(func: _F) -> _F:
    """Memoize a probe whose answer cannot change while the process runs (an exception, such
    as a permission error, is not kept)."""
    cached = functools.cache(func)
    _clears.append(cached.cache_clear)
    return functools.wraps(func)(cached)  # type: ignore[return-value]


def on_cache_clear(clear: Callable[[], None]) -> None:
    """Register how to forget another kept table (one that is not a :func:`_keep` probe)."""
    _clears.append(clear)


def cache_clear() -> None:
    """Forget every kept answer (the next call asks the kernel again)."""
    for clear in _clears:
        clear()


def _module_arg(module: str, what: str = "module") -> str:
    if not isinstance(module, str):
        raise TypeError(f"{what} must be a str, not {type(module).__name__}")
    if not module or "/" in module or "\0" in module or module in (".", ".."):
        raise ValueError(f"{what} {module!r} is not a kernel module name")
    return module


# ------------------------------------------------------------------------- kernel's refusals

def _lockdown() -> str | None:
    try:
        text = Path(LOCKDOWN).read_text()
    except OSError:
        return None
    found = re.search(r"\[(\w+)\]", text)
    return found.group(1) if found else None


def _privileged(needs: tuple[str, ...]) -> bool:
    caps = _effective_caps()
    if caps is None:
        return os.geteuid() == 0
    if caps & (1 << _CAP_BITS["CAP_SYS_ADMIN"]):
        return True
    return all(caps & (1 << _CAP_BITS[cap]) for cap in needs)


def _refused(what: str, err: int, needs: tuple[str, ...], detail: str = "") -> Support:
    """The answer for a kernel that said ``err`` to the probe of ``what``.

    EPERM to a process without the capabilities is no answer (raise); to a privileged one it
    is the kernel's security policy saying no, which is the answer."""
    if err == _errno.EPERM:
        if not _privileged(needs):
            raise error_from_errno(err, f"cannot probe {what}", needs)
        mode = _lockdown()
        locked = f" (lockdown: {mode})" if mode not in (None, "none") else ""
        return _no(what, f"the kernel's security policy refused it{locked}", err)
    reason = f"the kernel refused it: {os.strerror(err)}" if err else "the kernel refused it"
    return _no(what, f"{reason}{': ' + detail if detail else ''}", err)


def _needs(prog_type: int) -> tuple[str, ...]:
    return _NET_CAPS if prog_type in _NET_TYPES else _TRACING_CAPS


def _type_name(enum: type[ProgType] | type[MapType], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return str(value)


def _enum_arg(enum: type[ProgType] | type[MapType], value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be a {enum.__name__} or an int, not "
                        f"{type(value).__name__}")
    if value < 0:
        raise ValueError(f"{what} {value} is negative")
    return int(value)


def _libbpf_cannot(ret: int, what: str) -> BpfError:
    major, minor = _ffi.version()
    return error_from_errno(-ret, f"libbpf {major}.{minor} cannot probe {what}")
