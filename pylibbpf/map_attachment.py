"""``MapAttachment``: a program attached to a map with ``BPF_PROG_ATTACH`` (sockmap and sockhash
parsers and verdicts), detached by ``close()``."""

from __future__ import annotations

import os

from . import _ffi
from ._handle import Handle
from .enums import AttachType, enum_or_int
from .errors import BpfError


class MapAttachment(Handle):
    """A program attached to a map with ``BPF_PROG_ATTACH`` (``bpf_prog_attach``), for the
    program types that attach that way and have no BPF link before Linux 6.10: sockmap and
    sockhash stream parsers and verdict programs (``sk_skb``, ``sk_msg``).

    :meth:`detach` (= :meth:`close`) runs ``BPF_PROG_DETACH``.  The attachment holds its own
    duplicates of the program and map fds, so it may outlive the :class:`~pylibbpf.Object`.
    """

    _what = "map attachment"

    def __init__(self, prog_fd: int, map_fd: int, attach_type: int, description: str) -> None:
        super().__init__()
        self._prog_fd = prog_fd
        self._map_fd = map_fd
        self._attach_type = attach_type
        self._description = description

        def release() -> None:
            try:
                _ffi.lib().bpf_prog_detach2(prog_fd, map_fd, attach_type)
            except BpfError:
                pass  # the map is gone, or someone else detached it
            finally:
                os.close(prog_fd)
                os.close(map_fd)

        self._own(release, description)

    @property
    def attach_type(self) -> AttachType | int:
        """How the program is attached (``SK_SKB_STREAM_VERDICT``, ``SK_MSG_VERDICT`` ...)."""
        self._check()
        return enum_or_int(AttachType, self._attach_type)

    def detach(self) -> None:
        """Detach the program from the map (``bpf_prog_detach2``); idempotent."""
        self.close()

    def __repr__(self) -> str:
        return f"<MapAttachment {self._description}{' (detached)' if self.closed else ''}>"
