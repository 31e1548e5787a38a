"""What the kernel says about a BPF fd the supervisor holds: its kind, its program id, its map
sizes (``/proc/self/fdinfo``), with the errnos Linux gives for an fd of the wrong kind."""

from __future__ import annotations

import errno as _errno
import os

__all__ = ["bpf_fd_info", "map_sizes", "prog_id"]


def bpf_fd_info(fd: int, kind: str) -> dict[str, str] | None:
    """The ``/proc/self/fdinfo`` fields of ``fd`` when it is a BPF ``kind`` (``"prog"`` or
    ``"map"``), else ``None``.  The kind comes from the fd's inode (``anon_inode:bpf-prog``):
    ``BPF_OBJ_GET_INFO_BY_FD`` would answer a map's info for a program fd and vice versa, and a
    map id can equal a program id."""
    try:
        if os.readlink(f"/proc/self/fd/{fd}") != f"anon_inode:bpf-{kind}":
            return None
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii", errors="replace") as handle:
            return dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)
    except OSError:
        return None


def prog_id(fd: int) -> int:
    """The kernel id of BPF program ``fd``; ``OSError(ENOENT)`` when it is not a program."""
    info = bpf_fd_info(fd, "prog")
    if info is None or "prog_id" not in info:
        raise OSError(_errno.ENOENT, f"fd {fd} is not a BPF program")
    return int(info["prog_id"])


def map_sizes(fd: int) -> tuple[int, int, int]:
    """``(key_size, value_size, map id)`` of BPF map ``fd``; ``OSError(EINVAL)`` (Linux's
    answer) when it is not a map."""
    info = bpf_fd_info(fd, "map")
    if info is None:
        raise OSError(_errno.EINVAL, f"fd {fd} is not a BPF map")
    return int(info["key_size"]), int(info["value_size"]), int(info.get("map_id", "0"))
