"""Arguments of the attach calls, checked and converted once: fds from paths, interfaces by
name, C arrays for multi-attach options, and the libbpf release a newer attach needs."""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _args, _ffi
from ._ffi.signatures import SIGNATURES
from ._ffi.structs import new_opts
from .enums import AttachType
from .errors import BpfError, NotSupportedError, error_from_errno

if TYPE_CHECKING:
    from .map import Map


def fd_of(target: int | str | os.PathLike[str], what: str,
           flags: int = os.O_RDONLY) -> tuple[int, bool]:
    """An fd for ``target``: an int is used as is, a path is opened (and must be closed)."""
    if isinstance(target, int) and not isinstance(target, bool):
        return _args.fd(target, what), False
    path = _args.cpath(target, what)
    try:
        return os.open(path, flags | os.O_CLOEXEC), True
    except OSError as exc:
        raise error_from_errno(exc.errno, f"cannot open {what} {os.fsdecode(path)}") from None


def map_fd(target: Map | int) -> int:
    from .map import Map

    if isinstance(target, Map):
        return target.fd
    return _args.fd(target, "map")


def ifindex(interface: int | str) -> int:
    if isinstance(interface, int) and not isinstance(interface, bool):
        return _args.in_range(interface, "interface index", 1, _args.INT_MAX)
    name = _args.cstr(interface, "interface").decode("utf-8", "surrogateescape")
    try:
        return socket.if_nametoindex(name)
    except OSError as exc:
        raise BpfError(_errno.ENODEV, f"no network interface {interface!r}") from exc


def need(func: str, what: str) -> None:
    """Raise :class:`NotSupportedError` unless the loaded libbpf exports ``func``, naming the
    release that added it (the signature table's ``since``)."""
    if _ffi.has(func):
        return
    major, minor = SIGNATURES[func].since
    have = ".".join(map(str, _ffi.version()))
    raise NotSupportedError(f"{what} needs libbpf >= {major}.{minor} ({func}); the loaded "
                            f"libbpf is {have}")


def need_version(version: tuple[int, int], what: str) -> None:
    if _ffi.version() < version:
        have = ".".join(map(str, _ffi.version()))
        raise NotSupportedError(f"{what} needs libbpf >= {version[0]}.{version[1]}; the loaded "
                                f"libbpf is {have}")


def array(ctype: Any, values: Any, what: str, convert: Callable[[Any, str], Any]) -> Any:
    """A C array of ``values`` (``None`` stays NULL), each checked by ``convert``."""
    if values is None:
        return None
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{what} must be a sequence, not a single {type(values).__name__}")
    items = [convert(v, what) for v in values]
    return (ctype * len(items))(*items) if items else None


def count(*arrays: Any) -> int:
    lengths = {len(a) for a in arrays if a is not None}
    if len(lengths) > 1:
        raise ValueError(f"the symbol/address/cookie lists differ in length: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def opts_arrays(cls: Any, **arrays: Any) -> dict[str, Any]:
    """Pointer fields of an opts struct for the arrays that were given."""
    fields: dict[str, Any] = {}
    for name, array in arrays.items():
        if array is not None:
            fields[name] = ctypes.cast(array, dict(cls._fields_)[name])
    return fields


def mprog_opts(cls: Any, flags: int, relative_fd: int, relative_id: int,
                expected_revision: int) -> Any:
    """Opts of the multi-program attach points (tcx, netkit): where among the others."""
    return new_opts(cls, flags=_args.u32(flags, "flags"),
                    relative_fd=_args.u32(relative_fd, "relative_fd"),
                    relative_id=_args.u32(relative_id, "relative_id"),
                    expected_revision=_args.u64(expected_revision, "expected_revision"))


# The attach types BPF_PROG_ATTACH accepts with a sockmap or sockhash as the target.
MAP_ATTACH_TYPES = frozenset({
    AttachType.SK_SKB_STREAM_PARSER, AttachType.SK_SKB_STREAM_VERDICT,
    AttachType.SK_SKB_VERDICT, AttachType.SK_MSG_VERDICT,
})


def detail(messages: list[str]) -> str:
    """libbpf's last word on a failed attach, without its prefix and the skeleton's summary."""
    for message in reversed(messages):
        line = message.strip().removeprefix("libbpf: ")
        if line and "failed to auto-attach" not in line:
            return line
    return ""
