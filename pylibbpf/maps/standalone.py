"""``StandaloneMap``: a map with an fd of its own, from :meth:`Map.create <pylibbpf.Map.create>`,
``Map.from_pinned``, ``Map.from_id`` or ``Map.from_fd``.

It can outlive any object (the kernel keeps the map while an fd, a pin or a program refers to
it); its description is the kernel's, read once when it is opened.
"""

from __future__ import annotations

import os
import weakref

from .. import _ffi
from ..errors import error_from_errno
from .base import Map

# The placeholder closed standalone maps' fd numbers point at until they are collected: opened
# once, at import, so that the first close() does not look like an fd leak to fd-counting code.
_devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)


class _FdSlot:
    """A standalone map's fd: ``retire`` releases the map but keeps the number taken (a dup of
    /dev/null), ``close`` frees the number.  Either order is safe; each runs once."""

    __slots__ = ("fd", "retired", "closed")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.retired = False
        self.closed = False

    def retire(self) -> None:
        if self.retired or self.closed:
            return
        self.retired = True
        try:
            os.dup2(_devnull, self.fd, inheritable=False)
        except OSError:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            os.close(self.fd)
        except OSError:
            pass


class StandaloneMap(Map, owns_fd=True):
    """A map that owns its fd: ``close()`` it, or use it as a context manager."""

    def __init__(self, fd: int, description: str) -> None:
        """Take ownership of the map ``fd`` (closed again if it is no map)."""
        super().__init__("")
        self._fd = fd
        slot = _FdSlot(fd)
        self._own(slot.retire, description)   # close(): release the map, keep the number
        weakref.finalize(self, slot.close)     # the number is freed with the Map object
        try:
            info = self.info()
        except BaseException:
            self.close()
            raise
        self._name = info.name
        self._numbers = {field: int(getattr(info, field)) for field in (
            "type", "key_size", "value_size", "max_entries", "map_flags", "map_extra",
            "btf_key_type_id", "btf_value_type_id")}

    def close(self) -> None:
        """Close the map's fd.

        The map is released at once, but its fd *number* stays reserved (pointing at
        ``/dev/null``) until this ``Map`` object is garbage-collected: another thread that read
        the fd just before ``close()`` then gets :class:`~pylibbpf.ClosedError` instead of
        reaching whatever new map or file would have reused the number.
        """
        self._bound = None
        super().close()

    @property
    def fd(self) -> int:
        """The map's fd (owned by this object: closed by :meth:`close`)."""
        self._check()
        return self._fd

    def _describe(self, field: str) -> int:
        self._check()
        return self._numbers[field]

    @property
    def object(self) -> None:
        """``None``: a standalone map belongs to no object."""
        return None

    @property
    def is_internal(self) -> bool:
        """False: only maps of an object hold its global data."""
        return False

    def _pin(self, raw: bytes) -> None:
        _ffi.lib().bpf_obj_pin(self.fd, raw)

    def _unpin(self, raw: bytes | None) -> None:
        if raw is None:
            raise ValueError("unpin of a standalone map needs the pin path")
        try:
            os.unlink(raw)
        except OSError as exc:
            raise error_from_errno(exc.errno, f"failed to unpin map {self._name!r} at "
                                   f"{os.fsdecode(raw)}") from None
