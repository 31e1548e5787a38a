"""Label decoders: what a key's field holds, turned into the text of a label.

A decoder takes a decoded field (an int, a str, a list of ints, bytes) and returns the next
value, or ``None`` to drop the sample (a ``static_map`` with ``drop_unknown``).  A label runs its
decoders in order and the last value becomes text.  Tables (kallsyms, the cgroup tree) are read
on first use and read again, at most every :data:`REFRESH_SECONDS`, when a value is not in them.
"""

from __future__ import annotations

import errno as _errno
import ipaddress
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from .._ffi import syscall_names
from ..errors import BpfError
from ..ksyms import Ksyms

__all__ = ["DECODERS", "Decoder", "make_decoder"]

REFRESH_SECONDS = 10.0
MINORBITS = 20  # the kernel's dev_t: major in the high 12 bits, minor in the low 20

Decoder = Callable[[Any], Any]


def _as_bytes(value: Any, size: int = 0) -> bytes:
    """A field as the bytes it was in the map: an int in the host's order, an array of ints
    element by element, each ``size // len`` bytes wide (an ``in6_addr`` read as 16 ``u8``,
    8 ``u16`` or 4 ``u32``; one byte each without a size)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, int):
        return value.to_bytes(size or max(1, (value.bit_length() + 7) // 8), sys.byteorder)
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        width = max(1, size // len(value)) if size else 1
        return b"".join(v.to_bytes(width, sys.byteorder) for v in value)
    raise TypeError(f"cannot take the bytes of {value!r}")


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer field, not {value!r}")
    return value


def cstring(value: Any) -> str:
    """A ``char[N]`` (already a str from BTF, or bytes/ints) up to its first NUL."""
    if isinstance(value, str):
        return value.split("\0", 1)[0]
    return _as_bytes(value).split(b"\0", 1)[0].decode("utf-8", "replace")


def ipv4(value: Any) -> str:
    """A ``__be32`` (as the kernel stores ``saddr``) or 4 bytes: dotted quad."""
    return str(ipaddress.IPv4Address(_as_bytes(value, 4)[:4]))


def ipv6(value: Any) -> str:
    """An ``in6_addr`` (16 ``u8``, 8 ``u16`` or 4 ``u32`` in memory order), or 16 bytes."""
    return str(ipaddress.IPv6Address(_as_bytes(value, 16)[:16]))


def inet(value: Any) -> str:
    """IPv4 or IPv6 by size: an int up to 32 bits or 4 bytes is IPv4; 16 bytes IPv6.  An
    IPv4-mapped IPv6 address prints as IPv4."""
    if isinstance(value, int) and value < 1 << 32 or (
            isinstance(value, (list, bytes, bytearray)) and len(value) == 4
            and (not isinstance(value, list) or max(value) < 256)):
        return ipv4(value)
    raw = _as_bytes(value, 16)
    addr = ipaddress.IPv6Address(raw[:16])
    return str(addr.ipv4_mapped or addr)


def port(value: Any) -> int:
    """A ``__be16`` port (``skc_dport``, ``sin_port``) as a number."""
    return int.from_bytes(_int(value).to_bytes(2, sys.byteorder), "big")


def errno_name(value: Any) -> str:
    """``-2`` or ``2`` -> ``ENOENT``; unknown numbers as they are."""
    number = abs(_int(value))
    return _errno.errorcode.get(number, str(number))


def syscall(value: Any) -> str:
    """A system-call number -> its name on this machine (the number when unknown)."""
    number = _int(value)
    return syscall_names.name(number) or str(number)


def majorminor(value: Any) -> str:
    """A kernel ``dev_t`` (``bd_dev``, ``disk_devt``) -> ``"major:minor"``."""
    dev = _int(value)
    return f"{dev >> MINORBITS}:{dev & ((1 << MINORBITS) - 1)}"


class _Refreshing:
    """A table read from the system, read again on a miss at most every REFRESH_SECONDS."""

    def __init__(self) -> None:
        self._loaded_at = float("-inf")

    def _stale(self) -> bool:
        return time.monotonic() - self._loaded_at >= REFRESH_SECONDS

    def _reload(self) -> None:
        self._loaded_at = time.monotonic()
        self.load()

    def load(self) -> None:
        raise NotImplementedError


class Kallsyms(_Refreshing):
    """Kernel addresses -> the symbol whose code holds them (:class:`pylibbpf.Ksyms` over
    ``/proc/kallsyms``; addresses read as 0 without CAP_SYSLOG, then every address prints in
    hex)."""

    def __init__(self, path: str = "/proc/kallsyms") -> None:
        super().__init__()
        self.path = path
        self._ksyms: Ksyms | None = None

    def load(self) -> None:
        try:
            self._ksyms = Ksyms.load(self.path)
        except BpfError:  # unreadable, or every address hidden from this process
            self._ksyms = None

    def __call__(self, value: Any) -> str:
        addr = _int(value)
        found = self._ksyms.map_addr(addr) if self._ksyms is not None else None
        if found is None and self._stale():
            self._reload()
            found = self._ksyms.map_addr(addr) if self._ksyms is not None else None
        return found[0].name if found is not None else f"{addr:#x}"


def _cgroup2_root() -> str | None:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                pre, _, post = line.partition(" - ")
                if post.split(" ", 1)[0] == "cgroup2":
                    return pre.split()[4]
    except OSError:
        pass
    return None


class Cgroups(_Refreshing):
    """A cgroup id (``bpf_get_current_cgroup_id()``, a cgroup v2 directory's inode number) ->
    its path under the cgroup v2 mount (``/system.slice/ssh.service``)."""

    def __init__(self, root: str | None = None) -> None:
        super().__init__()
        self.root = root
        self._paths: dict[int, str] = {}

    def load(self) -> None:
        root = self.root or _cgroup2_root()
        paths: dict[int, str] = {}
        if root:
            for folder, _dirs, _files in os.walk(root):
                try:
                    ino = os.stat(folder).st_ino
                except OSError:
                    continue  # removed while walking
                paths[ino] = "/" + os.path.relpath(folder, root).removeprefix(".")
        self._paths = paths

    def __call__(self, value: Any) -> str:
        ident = _int(value)
        found = self._paths.get(ident)
        if found is None and self._stale():
            self._reload()
            found = self._paths.get(ident)
        return found if found is not None else str(ident)


class StaticMap:
    """A mapping from the config: ``{1: read, 2: write}``; others as they are, or dropped."""

    def __init__(self, table: Mapping[Any, Any], default: Any = None,
                 drop_unknown: bool = False) -> None:
        self.table = {str(k): str(v) for k, v in table.items()}
        self.default = default
        self.drop_unknown = drop_unknown

    def __call__(self, value: Any) -> Any:
        found = self.table.get(str(value))
        if found is not None:
            return found
        if self.drop_unknown:
            return None
        return value if self.default is None else self.default


def _div(by: int) -> Decoder:
    return lambda value: _int(value) // by


def _mod(by: int) -> Decoder:
    return lambda value: _int(value) % by


DECODERS: dict[str, Callable[..., Decoder]] = {
    "uint": lambda: _int, "int": lambda: _int,
    "hex": lambda: lambda v: f"{_int(v):#x}",
    "string": lambda: cstring, "cstring": lambda: cstring,
    "ksym": Kallsyms, "syscall": lambda: syscall, "errno": lambda: errno_name,
    "ipv4": lambda: ipv4, "ipv6": lambda: ipv6, "inet": lambda: inet, "port": lambda: port,
    "cgroup": Cgroups, "majorminor": lambda: majorminor,
    "static_map": StaticMap, "div": _div, "mod": _mod,
}
"""Decoder name -> a factory taking the decoder's parameters from the config."""

_NEEDS_ARG = {"div", "mod", "static_map"}


def make_decoder(spec: Any, where: str, error: type[Exception] = ValueError) -> Decoder:
    """A decoder from its config entry: a name (``"ksym"``), a one-key mapping
    (``{div: 20}``, ``{static_map: {...}}``), or ``{name: static_map, static_map: {...},
    drop_unknown: true}``."""
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, Mapping) and "name" in spec:
        params = dict(spec)
        name = params.pop("name")
    elif isinstance(spec, Mapping) and len(spec) == 1:
        ((name, arg),) = spec.items()
        params = {str(name): arg}
    else:
        raise error(f"{where}: a decoder is a name or a mapping, not {spec!r}")
    if name not in DECODERS:
        raise error(f"{where}: unknown decoder {name!r}; known: {', '.join(sorted(DECODERS))}")
    if name in _NEEDS_ARG:
        arg = params.pop(name, None)
        if name == "static_map":
            if not isinstance(arg, Mapping):
                raise error(f"{where}: static_map needs a mapping")
            extra = set(params) - {"default", "drop_unknown"}
            if extra:
                raise error(f"{where}: unknown key(s) {sorted(extra)}")
            return StaticMap(arg, params.get("default"), bool(params.get("drop_unknown")))
        if isinstance(arg, bool) or not isinstance(arg, int) or arg <= 0 or params:
            raise error(f"{where}: {name} needs a positive integer ({{{name}: 20}})")
        return DECODERS[name](arg)
    if params:
        raise error(f"{where}: decoder {name!r} takes no parameters, got {sorted(params)}")
    return DECODERS[name]()
