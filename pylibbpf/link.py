"""``Link``: an attachment of a program (libbpf's ``bpf_link``).

A link detaches when destroyed (or garbage-collected, with a ``ResourceWarning``), so keep the
:class:`Link` an ``attach*`` call returns for as long as the program should stay attached.  A
link can outlive its :class:`~pylibbpf.Object`; :meth:`disconnect` plus :meth:`pin` keeps the
attachment after the process exits.
"""

from __future__ import annotations

import errno as _errno
import io
import os
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from . import _args, _ffi
from ._handle import Handle
from .errors import BpfError, NotSupportedError, bpffs_error, error_from_errno
from .info import LinkInfo

if TYPE_CHECKING:
    from ._handle import Lifetime
    from .maps.of_object import ObjectMap
    from .program import Program

_T = TypeVar("_T")
_R = TypeVar("_R")


class _class_or_instance(Generic[_T, _R]):  # noqa: N801 - behaves like a decorator
    """``Link.open(path)`` opens a pinned link; on an instance, ``open`` is the deprecated
    spelling of :meth:`Link.open_iter`.

    Until the deprecated spelling is removed, the attribute dispatches on whether it is reached
    from the class or an instance; then ``open`` becomes a plain classmethod.
    """

    def __init__(self, on_class: Callable[..., _R], on_instance: Callable[..., Any]) -> None:
        self._on_class = on_class
        self._on_instance = on_instance
        self.__doc__ = on_class.__doc__

    @overload
    def __get__(self, instance: None, owner: type[_T]) -> Callable[..., _R]: ...

    @overload
    def __get__(self, instance: _T, owner: type[_T]) -> Callable[..., Any]: ...

    def __get__(self, instance: Any, owner: Any) -> Callable[..., Any]:
        if instance is None:
            return self._on_class.__get__(owner, owner)  # type: ignore[no-any-return]
        return self._on_instance.__get__(instance, owner)  # type: ignore[no-any-return]


def _destroy(ptr: Any, state: dict[str, bool]) -> None:
    # libbpf 1.1 skips the detach of a disconnected link, and the detach is what closes its
    # fd: close that fd here so a disconnected (pinned) link leaves no reference behind.
    fd = _ffi.lib().bpf_link__fd(ptr) if state["disconnected"] else -1
    try:
        _ffi.lib().bpf_link__destroy(ptr)
    except BpfError:
        pass
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


def _fd_kind(fd: int) -> str:
    """What an fd refers to, as /proc shows it (``anon_inode:bpf-link``, ``...:bpf-map``)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


class Link(Handle):
    """A program's attachment.  ``destroy()`` (= ``close()``) detaches it and frees it."""

    _what = "BPF link"

    def __init__(self, ptr: Any, *, owner: object = None, owner_life: Lifetime | None = None,
                 description: str = "BPF link") -> None:
        super().__init__()
        self._ptr = ptr
        # USDT links use their object's USDT manager: keep the object (owner) alive, and be
        # destroyed by its close() first (owner_life: its lifetime; the object does not keep
        # the link alive).
        self._owner = owner
        if owner_life is not None:
            owner_life.on_close(self.destroy, weak=True)
        self._description = description
        self._state = {"disconnected": False}
        state = self._state
        self._own(lambda: _destroy(ptr, state), description)

    @property
    def _p(self) -> Any:
        self._check()
        return self._ptr

    def close(self) -> None:
        """Detach and free the link (same as :meth:`destroy`)."""
        if self._closed:
            return
        super().close()
        self._ptr = None
        self._owner = None

    def destroy(self) -> None:
        """``bpf_link__destroy``: detach (unless disconnected) and free.  Idempotent."""
        self.close()

    @property
    def fd(self) -> int:
        """The link's fd (-1 for the rare link kinds that have none)."""
        return int(_ffi.lib().bpf_link__fd(self._p))

    @property
    def pin_path(self) -> str | None:
        """Where the link is pinned, or ``None``."""
        raw = _ffi.lib().bpf_link__pin_path(self._p)
        return raw.decode() if raw else None

    def _call(self, what: str, func: str, *args: Any) -> int:
        try:
            return int(getattr(_ffi.lib(), func)(self._p, *args))
        except BpfError as exc:
            raise error_from_errno(exc.errno, f"failed to {what} {self._description}") from None

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin the link at ``path`` in a bpffs; it then outlives this process."""
        raw = _args.cpath(path)
        ptr = self._p
        try:
            _ffi.lib().bpf_link__pin(ptr, raw)
        except BpfError as exc:
            raise bpffs_error(exc.errno, f"failed to pin {self._description} at "
                              f"{os.fsdecode(raw)}", raw, pinning=True) from None

    def unpin(self) -> None:
        """Remove the link's pin."""
        self._call("unpin", "bpf_link__unpin")

    def detach(self) -> None:
        """Detach the program in the kernel now (``BPF_LINK_DETACH``); the fd stays open.

        Not every link kind supports it (perf-event based links: EOPNOTSUPP).
        """
        self._call("detach", "bpf_link__detach")

    def disconnect(self) -> None:
        """Keep the attachment when this link is destroyed (pair it with :meth:`pin`).

        Destroying a disconnected link closes this process's fd without detaching; for
        perf-event based links (kprobe, uprobe, tracepoint) libbpf 1.1 keeps the perf event's
        own fd open until the process exits.
        """
        _ffi.lib().bpf_link__disconnect(self._p)
        self._state["disconnected"] = True

    def update_program(self, program: Program) -> None:
        """Replace the attached program atomically (``BPF_LINK_UPDATE``).

        What ``bpf_link__update_program`` does: ``bpf_link_update`` of this link's fd with the
        loaded program's fd.
        """
        # a Program (the one public class with attach() and fd); link.py sits below program.py
        if not callable(getattr(program, "attach", None)) or not hasattr(type(program), "fd"):
            raise TypeError(f"program must be a pylibbpf.Program, not {type(program).__name__}")
        prog_fd, name = program.fd, program.name
        link_fd = self.fd
        try:
            _ffi.lib().bpf_link_update(link_fd, prog_fd, None)
        except BpfError as exc:
            raise error_from_errno(exc.errno, f"failed to update the program of "
                                   f"{self._description} to {name!r}") from None

    def update_map(self, bpf_map: ObjectMap) -> None:
        """Replace the struct_ops map of a struct_ops link (``bpf_link__update_map``): only
        the :class:`StructOpsLink` of a ``SEC(".struct_ops.link")`` map has one."""
        self._check()
        raise BpfError(_errno.EINVAL, f"cannot update the map of {self._description}: only "
                       "the link of a struct_ops map (ObjectMap.attach_struct_ops) has one")

    def info(self) -> LinkInfo:
        """The kernel's view of the link (``bpf_obj_get_info_by_fd``)."""
        return LinkInfo.from_fd(self.fd)

    @classmethod
    def _open_pinned(cls, path: str | os.PathLike[str]) -> Link:
        """Open a link pinned at ``path`` (``bpf_link__open``)."""
        raw = _args.cpath(path)
        try:
            ptr = _ffi.lib().bpf_link__open(raw)
        except BpfError as exc:
            raise bpffs_error(exc.errno, f"failed to open pinned link {os.fsdecode(raw)}", raw,
                              pinning=False) from None
        # libbpf 1.1's bpf_link__open accepts any pinned BPF object: refuse what is not a link
        kind = _fd_kind(_ffi.lib().bpf_link__fd(ptr))
        if kind != "anon_inode:bpf-link":
            _destroy(ptr, {"disconnected": True})
            raise BpfError(_errno.EINVAL, f"{os.fsdecode(raw)} is not a BPF link "
                           f"(it is {kind.removeprefix('anon_inode:')})")
        return Link(ptr, description=f"pinned link {os.fsdecode(raw)}")  # a subclass too

    def open_iter(self) -> io.BufferedReader:
        """For an iterator link: a new read-only file of the iterator's output
        (``bpf_iter_create``).  Each file is a full run of the iterator."""
        try:
            fd = _ffi.lib().bpf_iter_create(self.fd)
        except BpfError as exc:
            raise error_from_errno(exc.errno, f"failed to open iterator of "
                                   f"{self._description}") from None
        return open(fd, "rb", closefd=True)

    def _open_iter_deprecated(self) -> io.BufferedReader:
        warnings.warn("link.open() of an iterator link is deprecated; use link.open_iter() "
                      "(Link.open(path) still opens a pinned link)", DeprecationWarning,
                      stacklevel=2)
        return self.open_iter()

    open: _class_or_instance[Link, Link] = _class_or_instance(_open_pinned,
                                                              _open_iter_deprecated)

    def read(self) -> bytes:
        """For an iterator link: run the iterator once and return all it wrote."""
        with self.open_iter() as stream:
            return stream.read()

    def __repr__(self) -> str:
        if self._closed:
            return "<Link closed>"
        return f"<Link fd={self.fd} {self._description}>"



class StructOpsLink(Link):
    """What :meth:`ObjectMap.attach_struct_ops <pylibbpf.ObjectMap.attach_struct_ops>`
    returns: a struct_ops map registered with the kernel, unregistered when destroyed.

    For a map in ``SEC(".struct_ops.link")`` (libbpf >= 1.2, Linux 6.4) this is a BPF link like
    any other, whose map :meth:`update_map` replaces.  For a map in ``SEC(".struct_ops")`` the
    registration is the map's value itself and there is no link in the kernel: what needs a
    link fd (``fd``, ``pin``, ``info``, ``detach``, ``disconnect``, ``update_map``) raises
    :class:`~pylibbpf.NotSupportedError`.  Either way the link is destroyed, at the latest,
    before its object closes (a registration uses the object's map fd), and it keeps the object
    alive until then.
    """

    def __init__(self, ptr: Any, bpf_map: ObjectMap, owner: object, owner_life: Lifetime) -> None:
        self._map = bpf_map
        self._is_link = bpf_map.has_link
        kind = "link" if self._is_link else "registration"
        super().__init__(ptr, owner=owner, owner_life=owner_life,
                         description=f"struct_ops {kind} of map {bpf_map.name!r}")

    @property
    def map(self) -> ObjectMap:
        """The struct_ops map the link has attached (the last one :meth:`update_map` gave)."""
        self._check()
        return self._map

    @property
    def is_bpf_link(self) -> bool:
        """True for a ``SEC(".struct_ops.link")`` map's link; False for a ``SEC(".struct_ops")``
        map's registration, which has no link in the kernel."""
        self._check()
        return self._is_link

    def _need_link(self, what: str) -> None:
        self._check()
        if not self._is_link:
            raise NotSupportedError(
                f"{what} needs a BPF link, and map {self._map.name!r} is registered without one "
                f"(SEC(\".struct_ops\")); declare it in SEC(\".struct_ops.link\") (libbpf "
                f">= 1.2, Linux 6.4) to get a link")

    @property
    def fd(self) -> int:
        """The link's fd (a ``SEC(".struct_ops")`` registration has none: it raises)."""
        self._need_link("the link fd")
        return super().fd

    def pin(self, path: str | os.PathLike[str]) -> None:
        self._need_link("pinning")
        super().pin(path)

    def detach(self) -> None:
        self._need_link("detach()")
        super().detach()

    def disconnect(self) -> None:
        self._need_link("disconnect()")
        super().disconnect()

    def update_program(self, program: Program) -> None:
        self._check()
        raise BpfError(_errno.EINVAL, f"{self._description} attaches a map, not a program: "
                       "use update_map()")

    def update_map(self, bpf_map: ObjectMap) -> None:
        """Atomically replace the attached struct_ops map by ``bpf_map``, another loaded
        ``SEC(".struct_ops.link")`` map of the same struct type (``bpf_link__update_map``,
        libbpf >= 1.2).  For a TCP congestion control the new struct must keep the name.
        """
        self._need_link("update_map()")
        if not _ffi.has("bpf_link__update_map"):
            raise NotSupportedError(f"update_map needs libbpf >= 1.2 (bpf_link__update_map); "
                                    f"the loaded libbpf is {'.'.join(map(str, _ffi.version()))}")
        if not getattr(bpf_map, "has_link", False):
            raise TypeError(f"update_map needs a struct_ops map of SEC(\".struct_ops.link\"), "
                            f"not {bpf_map!r}")
        bpf_map.object._life.require_loaded(f"update_map() with map {bpf_map.name!r}")
        try:
            _ffi.lib().bpf_link__update_map(self._p, bpf_map._ptr)
        except BpfError as exc:
            raise error_from_errno(exc.errno, f"failed to update {self._description} to map "
                                   f"{bpf_map.name!r}") from None
        self._map = bpf_map

    def __repr__(self) -> str:
        if self._closed:
            return "<StructOpsLink closed>"
        return f"<StructOpsLink {self._description}>"
