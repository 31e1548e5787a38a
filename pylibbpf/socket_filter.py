"""Socket filters: a ``SOCKET_FILTER`` program on a socket's incoming packets.

``SO_ATTACH_BPF`` gives a socket a loaded program (its fd); the socket keeps the program until
``SO_DETACH_BPF``, another attach (which replaces it) or its own close.  For every packet the
socket would receive, the program's return value is how many bytes of it to keep: 0 drops the
packet, a smaller length truncates it.  The length counts from where the socket's protocol
reads: for UDP and TCP sockets the transport header comes first (8 bytes for UDP), for packet
sockets the link-layer header.

Python's :mod:`socket` has no ``SO_ATTACH_BPF``; its value depends on the architecture, as the
kernel's ``asm/socket.h`` says (50 on most, ``0x402B`` on parisc, ``0x34`` on sparc), and
:data:`SO_ATTACH_BPF`/:data:`SO_DETACH_BPF` are this machine's::

    prog = obj.programs["drop_small"]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    socket_filter.attach(sock, prog)      # or prog.fd
    ...
    socket_filter.detach(sock)
"""

from __future__ import annotations

import ctypes
import errno as _errno
import platform
import socket
from typing import Any, Protocol

from . import _args
from ._ffi.libc import libc
from .errors import BpfError, error_from_errno

__all__ = ["SO_ATTACH_BPF", "SO_DETACH_BPF", "attach", "constants", "detach"]

# (SO_ATTACH_BPF, SO_DETACH_BPF) where they differ from asm-generic's (50, SO_DETACH_FILTER =
# 27): arch/parisc/include/uapi/asm/socket.h and arch/sparc/include/uapi/asm/socket.h.  Alpha,
# MIPS and PowerPC renumber other options but keep these.
_GENERIC = (50, 27)
_BY_MACHINE = {
    "parisc": (0x402B, 0x401B),
    "parisc64": (0x402B, 0x401B),
    "sparc": (0x34, 0x1B),
    "sparc64": (0x34, 0x1B),
}


def constants(machine: str | None = None) -> tuple[int, int]:
    """(``SO_ATTACH_BPF``, ``SO_DETACH_BPF``) on ``machine`` (``platform.machine()``'s name;
    default: this one)."""
    return _BY_MACHINE.get(platform.machine() if machine is None else machine, _GENERIC)


SO_ATTACH_BPF, SO_DETACH_BPF = constants()


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


class _HasFd(Protocol):
    @property
    def fd(self) -> int: ...


def _socket_fd(sock: _HasFileno | int) -> int:
    if isinstance(sock, int) and not isinstance(sock, bool):
        return _args.fd(sock, "socket fd")
    fileno = getattr(sock, "fileno", None)
    if fileno is None:
        raise TypeError(f"expected a socket or a socket fd, not {type(sock).__name__}")
    return _args.fd(fileno(), "socket fd")  # -1 for a closed socket: ValueError


def _setsockopt(fd: int, option: int, value: int, what: str) -> None:
    arg = ctypes.c_int(value)
    if libc().setsockopt(fd, socket.SOL_SOCKET, option, ctypes.byref(arg),
                         ctypes.sizeof(arg)) != 0:
        err = ctypes.get_errno() or _errno.EINVAL
        if err == _errno.ENOTSOCK:
            raise BpfError(err, f"{what}: fd {fd} is not a socket")
        raise error_from_errno(err, what)


def attach(sock: _HasFileno | int, prog: _HasFd | int) -> None:
    """Run program ``prog`` (a loaded ``SOCKET_FILTER`` :class:`~pylibbpf.Program` or its fd)
    on the packets ``sock`` (a socket or its fd) receives, replacing any filter it had.

    The socket holds its own reference: closing ``prog``'s object afterwards does not detach
    it.  A program of another type is refused (EINVAL)."""
    fd = _socket_fd(sock)
    prog_fd = prog if isinstance(prog, int) and not isinstance(prog, bool) else _fd_of(prog)
    prog_fd = _args.fd(prog_fd, "prog_fd")
    _setsockopt(fd, SO_ATTACH_BPF, prog_fd,
                f"cannot attach program fd {prog_fd} to socket fd {fd} (SO_ATTACH_BPF)")


def detach(sock: _HasFileno | int) -> None:
    """Remove ``sock``'s filter (``SO_DETACH_BPF``); ENOENT when it has none."""
    fd = _socket_fd(sock)
    _setsockopt(fd, SO_DETACH_BPF, 0, f"cannot detach the filter of socket fd {fd} "
                "(SO_DETACH_BPF)")


def _fd_of(prog: Any) -> int:
    try:
        return int(prog.fd)
    except AttributeError:
        raise TypeError(f"expected a Program or a program fd, not "
                        f"{type(prog).__name__}") from None
