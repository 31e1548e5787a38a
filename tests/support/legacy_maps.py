"""Legacy maps for the compat tests: created with compat's legacy calls, closed after the test."""

from __future__ import annotations

import os
import struct

import compat


class Maps:
    """Legacy maps created with compat, closed at the end of the test (the ``maps`` fixture)."""

    def __init__(self) -> None:
        self.fds: list[int] = []

    def array(self, value_size: int, entries: int) -> int:
        fd = compat.bpf_create_map(compat.BPF_MAP_TYPE_ARRAY, 4, value_size, entries)
        self.fds.append(fd)
        return fd

    def config(self) -> int:
        """The one-slot config map the legacy test programs read our pid from."""
        fd = self.array(4, 1)
        compat.bpf_update_elem(fd, 0, os.getpid())
        return fd

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


def u64(fd: int, key: int) -> int:
    """The u64 a legacy map holds at ``key``."""
    return int(struct.unpack("<Q", compat.bpf_lookup_elem(fd, key))[0])
