"""tc (``SCHED_CLS``) programs as filters of a clsact qdisc, through libbpf's ``bpf_tc_*`` API.

Two ways in, as in C:

* :meth:`pylibbpf.Program.attach_tc` (:meth:`TcAttachment.attach`): one call that creates the
  interface's clsact qdisc when it has none and adds the filter.  A qdisc that call created is
  removed again when the last filter pylibbpf attached through it goes (detach, close or the
  garbage collector), unless filters someone else added remain on it; a qdisc that was there
  before is never removed.
* :class:`TcHook`: libbpf's ``struct bpf_tc_hook`` (an interface and an attach point) with its
  explicit lifecycle: :meth:`TcHook.create` (``bpf_tc_hook_create``), :meth:`TcHook.attach`,
  :meth:`TcHook.query`, :meth:`TcHook.detach`, and :meth:`TcHook.destroy`
  (``bpf_tc_hook_destroy``: all filters of the attach point, or with ``"qdisc"`` the clsact
  qdisc itself).  The qdisc is the caller's to destroy.

tc objects belong to a network namespace.  A :class:`TcAttachment` remembers the namespace of
the thread that attached it and detaches there, from whichever namespace the thread that closes
it is in.  :class:`TcHook` calls act in the calling thread's namespace, like libbpf's.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from . import _args, _ffi
from ._attach_args import ifindex
from ._ffi import structs
from ._ffi.libc import libc
from ._ffi.structs import new_opts
from ._handle import Handle
from .enums import TcAttachPoint
from .errors import BpfError, error_from_errno

__all__ = ["TcAttachment", "TcHook"]

_POINTS = {"ingress": TcAttachPoint.INGRESS, "egress": TcAttachPoint.EGRESS}
_QDISC = TcAttachPoint.INGRESS | TcAttachPoint.EGRESS  # libbpf's BPF_TC_QDISC
_HOOK_POINTS = {**_POINTS, "qdisc": _QDISC}
_CAPS = ("CAP_NET_ADMIN",)
BPF_TC_F_REPLACE = 1 << 0
CLONE_NEWNET = 0x40000000

_T = TypeVar("_T")


def _prog_fd(prog: Any) -> int:
    if isinstance(prog, int) and not isinstance(prog, bool):
        return _args.fd(prog, "prog_fd")
    try:
        fd = prog.fd
    except AttributeError:
        raise TypeError(f"expected a Program or a program fd, not "
                        f"{type(prog).__name__}") from None
    return _args.fd(fd, "prog_fd")


def _hook(ifindex: int, point: int) -> Any:
    return new_opts(structs.bpf_tc_hook, ifindex=ifindex, attach_point=point)


# ------------------------------------------------------------------------- network namespaces

def _thread_netns() -> tuple[int, int]:
    st = os.stat("/proc/thread-self/ns/net")
    return st.st_dev, st.st_ino


class _Netns:
    """The network namespace of the thread that made it (an fd keeps it alive)."""

    def __init__(self) -> None:
        self.fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        st = os.fstat(self.fd)
        self.key = (st.st_dev, st.st_ino)

    def run(self, fn: Callable[[], _T]) -> _T:
        """``fn()`` in this namespace (the calling thread enters it for the call)."""
        if _thread_netns() == self.key:
            return fn()
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc().setns(self.fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise error_from_errno(err, "cannot enter the network namespace of a tc "
                                       "attachment", ("CAP_SYS_ADMIN",))
            try:
                return fn()
            finally:
                libc().setns(home, CLONE_NEWNET)
        finally:
            os.close(home)

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


# ------------------------------------------------------------------- qdiscs pylibbpf created

# (netns, ifindex) -> how many live TcAttachments use a clsact qdisc Program.attach_tc created.
# A live attachment holds its namespace open, so its inode cannot be reused meanwhile.
_created: dict[tuple[tuple[int, int], int], int] = {}
_created_lock = threading.RLock()  # re-entrant: a garbage-collected attachment may release


RTM_NEWTFILTER, RTM_GETTFILTER = 44, 46
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
# TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS / TC_H_MIN_EGRESS)
_CLSACT_PARENTS = (0xFFFFFFF2, 0xFFFFFFF3)


def _filters_on(ifindex: int, parent: int) -> int:
    """How many filter messages ``tc filter show dev IF <parent>`` would print (a netlink
    ``RTM_GETTFILTER`` dump)."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                       socket.NETLINK_ROUTE) as sock:
        tcmsg = struct.pack("=BxxxiIII", socket.AF_UNSPEC, ifindex, 0, parent, 0)
        header = struct.pack("=IHHII", 16 + len(tcmsg), RTM_GETTFILTER,
                             NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
        sock.sendto(header + tcmsg, (0, 0))
        found = 0
        while True:
            data = sock.recv(1 << 16)
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if kind == NLMSG_DONE:
                    return found
                if kind == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", data, offset + 16)
                    if err:
                        raise OSError(-err, os.strerror(-err))
                elif kind == RTM_NEWTFILTER:
                    found += 1
                if length < 16:
                    raise OSError(_errno.EIO, "malformed netlink message")
                offset += (length + 3) & ~3


def _others_left(ifindex: int) -> bool:
    """True when filters remain on the interface's clsact qdisc (or it cannot be told)."""
    try:
        return any(_filters_on(ifindex, parent) for parent in _CLSACT_PARENTS)
    except OSError:
        return True  # keep the qdisc: leaving one behind is the lesser harm


def _use_created(key: tuple[tuple[int, int], int]) -> None:
    _created[key] = _created.get(key, 0) + 1


def _release_created(key: tuple[tuple[int, int], int]) -> None:
    """One attachment less on a qdisc pylibbpf created: the last one removes it (in the
    caller's namespace, the attachment's)."""
    with _created_lock:
        users = _created.get(key)
        if users is None:
            return  # destroyed by a TcHook meanwhile
        if users > 1:
            _created[key] = users - 1
            return
        del _created[key]
        ifindex = key[1]
        if _others_left(ifindex):
            return
        hook = _hook(ifindex, _QDISC)
        try:
            _ffi.lib().bpf_tc_hook_destroy(ctypes.byref(hook))
        except BpfError:
            pass  # gone already (interface deleted, qdisc removed by hand)


# ----------------------------------------------------------------------------- attachments

def _detach(ifindex: int, point: int, handle: int, priority: int) -> None:
    hook = _hook(ifindex, point)
    opts = new_opts(structs.bpf_tc_opts, handle=handle, priority=priority)
    try:
        _ffi.lib().bpf_tc_detach(ctypes.byref(hook), ctypes.byref(opts))
    except BpfError:
        pass


def _attach_filter(hook: Any, prog_fd: int, handle: int, priority: int, replace: bool,
                   what: str) -> Any:
    opts = new_opts(structs.bpf_tc_opts, prog_fd=prog_fd, handle=handle, priority=priority,
                    flags=BPF_TC_F_REPLACE if replace else 0)
    try:
        _ffi.lib().bpf_tc_attach(ctypes.byref(hook), ctypes.byref(opts))
    except BpfError as exc:
        raise error_from_errno(exc.errno, f"failed to attach {what}", _CAPS) from None
    return opts


class TcAttachment(Handle):
    """A tc filter running a BPF program on an interface; :meth:`detach` removes it (and the
    clsact qdisc, when :meth:`attach` created it and this was its last pylibbpf filter)."""

    _what = "tc attachment"

    def __init__(self, ifindex: int, point: TcAttachPoint, handle: int, priority: int,
                 prog_id: int, description: str, *, netns: _Netns | None = None,
                 created_qdisc: bool = False) -> None:
        super().__init__()
        self.ifindex = ifindex
        self.attach_point = point
        self.handle = handle
        self.priority = priority
        self.prog_id = prog_id
        ns = self._netns = netns if netns is not None else _Netns()
        key = (ns.key, ifindex)

        def release() -> None:
            try:
                def detach_here() -> None:
                    _detach(ifindex, point, handle, priority)
                    if created_qdisc:
                        _release_created(key)
                ns.run(detach_here)
            except BpfError:
                pass  # cannot enter the namespace: nothing else to do from here
            finally:
                ns.close()

        self._own(release, description)

    @classmethod
    def attach(cls, prog_fd: int, ifindex: int, attach_point: str, handle: int, priority: int,
               name: str) -> TcAttachment:
        """Create the clsact qdisc if needed and attach ``prog_fd`` (``bpf_tc_attach``).

        ``handle`` is a 32-bit tc handle, ``priority`` a 16-bit tc priority (``ValueError``
        otherwise).  A qdisc created here is removed with the last filter attached through
        this method, unless other filters remain on it."""
        prog_fd = _args.fd(prog_fd, "prog_fd")
        ifindex = _args.in_range(ifindex, "ifindex", 1, _args.INT_MAX)
        handle = _args.u32(handle, "handle")
        priority = _args.in_range(priority, "priority", 0, _args.U16_MAX)
        try:
            point = _POINTS[attach_point]
        except (KeyError, TypeError):
            raise ValueError(f"attach_point must be 'ingress' or 'egress', not "
                             f"{attach_point!r}") from None
        netns = _Netns()
        key = (netns.key, ifindex)
        try:
            hook = _hook(ifindex, point)
            with _created_lock:
                rc = _ffi.lib().bpf_tc_hook_create(ctypes.byref(hook))
                if rc < 0 and rc != -_errno.EEXIST:
                    raise error_from_errno(-rc, f"failed to create the clsact qdisc on ifindex "
                                           f"{ifindex}", _CAPS)
                ours = rc == 0 or key in _created
                if ours:
                    _use_created(key)
            try:
                opts = _attach_filter(hook, prog_fd, handle, priority, False,
                                      f"program {name!r} to tc {attach_point} of ifindex "
                                      f"{ifindex}")
            except BaseException:
                if ours:
                    _release_created(key)
                raise
        except BaseException:
            netns.close()
            raise
        return cls(ifindex, point, opts.handle, opts.priority, opts.prog_id,
                   f"tc {attach_point} filter of {name!r} on ifindex {ifindex}", netns=netns,
                   created_qdisc=ours)

    def query(self) -> int:
        """The id of the program the filter runs now (``bpf_tc_query``)."""
        self._check()
        return self._netns.run(lambda: _query(self.ifindex, self.attach_point, self.handle,
                                              self.priority))

    def detach(self) -> None:
        """Remove the filter (same as :meth:`close`)."""
        self.close()

    destroy = detach

    def __repr__(self) -> str:
        if self._closed:
            return "<TcAttachment closed>"
        point = "ingress" if self.attach_point == TcAttachPoint.INGRESS else "egress"
        return (f"<TcAttachment ifindex {self.ifindex} {point} "
                f"handle {self.handle:#x} priority {self.priority}>")


def _query(ifindex: int, point: int, handle: int, priority: int) -> int:
    hook = _hook(ifindex, point)
    opts = new_opts(structs.bpf_tc_opts, handle=handle, priority=priority)
    try:
        _ffi.lib().bpf_tc_query(ctypes.byref(hook), ctypes.byref(opts))
    except BpfError as exc:
        raise error_from_errno(exc.errno, f"tc query of handle {handle:#x} priority "
                               f"{priority} on ifindex {ifindex} failed", _CAPS) from None
    return int(opts.prog_id)


# ----------------------------------------------------------------------------- the hook

class TcHook:
    """libbpf's ``struct bpf_tc_hook``: the clsact qdisc of ``interface`` (a name or an
    index) seen from ``attach_point``: ``"ingress"``, ``"egress"``, or ``"qdisc"`` (both: the
    qdisc itself, for :meth:`create`/:meth:`destroy` only).

    Nothing is created or removed without a call: :meth:`create` adds the qdisc,
    :meth:`destroy` removes it (``"qdisc"``) or every filter of the attach point.  Filters
    attached with :meth:`attach` are removed when their :class:`TcAttachment` closes; the
    qdisc stays until :meth:`destroy`.  Calls act in the calling thread's network namespace.

    ::

        hook = TcHook("eth0", "ingress")
        hook.create()
        with hook.attach(obj.programs["classify"]) as filter_:
            ...
        TcHook("eth0", "qdisc").destroy()
    """

    def __init__(self, interface: int | str, attach_point: str = "ingress") -> None:
        self.ifindex = ifindex(interface)
        try:
            self.attach_point = _HOOK_POINTS[attach_point]
        except (KeyError, TypeError):
            raise ValueError(f"attach_point must be 'ingress', 'egress' or 'qdisc', not "
                             f"{attach_point!r}") from None
        self._point_name = attach_point
        self.created: bool | None = None  # what the last create() found

    def _c(self) -> Any:
        return _hook(self.ifindex, self.attach_point)

    def _filter_point(self, what: str) -> None:
        if self.attach_point == _QDISC:
            raise ValueError(f"{what} needs an 'ingress' or 'egress' hook, not 'qdisc'")

    def create(self) -> bool:
        """Create the interface's clsact qdisc (``bpf_tc_hook_create``).  True when this call
        created it, False when it was there already (EEXIST)."""
        hook = self._c()
        with _created_lock:
            rc = _ffi.lib().bpf_tc_hook_create(ctypes.byref(hook))
        if rc < 0 and rc != -_errno.EEXIST:
            raise error_from_errno(-rc, f"failed to create the clsact qdisc on ifindex "
                                   f"{self.ifindex}", _CAPS)
        self.created = rc == 0
        return self.created

    def destroy(self) -> None:
        """``bpf_tc_hook_destroy``: with ``"qdisc"``, remove the clsact qdisc with every filter
        on it; with ``"ingress"``/``"egress"``, remove every filter of that attach point (the
        qdisc stays)."""
        hook = self._c()
        with _created_lock:
            try:
                _ffi.lib().bpf_tc_hook_destroy(ctypes.byref(hook))
            except BpfError as exc:
                raise error_from_errno(exc.errno, f"failed to destroy the tc "
                                       f"{self._point_name} hook of ifindex {self.ifindex}",
                                       _CAPS) from None
            if self.attach_point == _QDISC:  # not pylibbpf's to remove any more
                _created.pop((_thread_netns(), self.ifindex), None)

    def attach(self, prog: Any, *, handle: int = 1, priority: int = 1,
               replace: bool = False) -> TcAttachment:
        """Attach ``prog`` (a loaded SCHED_CLS :class:`~pylibbpf.Program` or its fd) as filter
        ``handle``/``priority`` (``bpf_tc_attach``; 0 lets the kernel pick, read them from
        the result).  ``replace``: take the place of the filter already there (EEXIST
        otherwise).  The qdisc must exist (:meth:`create`)."""
        self._filter_point("attach")
        prog_fd = _prog_fd(prog)
        handle = _args.u32(handle, "handle")
        priority = _args.in_range(priority, "priority", 0, _args.U16_MAX)
        netns = _Netns()
        try:
            opts = _attach_filter(self._c(), prog_fd, handle, priority, bool(replace),
                                  f"program fd {prog_fd} to tc {self._point_name} of ifindex "
                                  f"{self.ifindex}")
        except BaseException:
            netns.close()
            raise
        return TcAttachment(self.ifindex, TcAttachPoint(self.attach_point), opts.handle,
                            opts.priority, opts.prog_id,
                            f"tc {self._point_name} filter {opts.handle:#x}/{opts.priority} "
                            f"on ifindex {self.ifindex}", netns=netns)

    def query(self, *, handle: int = 1, priority: int = 1) -> int:
        """The id of the program filter ``handle``/``priority`` runs (``bpf_tc_query``;
        ENOENT or EINVAL when there is no such filter)."""
        self._filter_point("query")
        return _query(self.ifindex, self.attach_point, _args.u32(handle, "handle"),
                      _args.in_range(priority, "priority", 1, _args.U16_MAX))

    def detach(self, *, handle: int = 1, priority: int = 1) -> None:
        """Remove filter ``handle``/``priority`` (``bpf_tc_detach``), whoever attached it."""
        self._filter_point("detach")
        hook = self._c()
        opts = new_opts(structs.bpf_tc_opts, handle=_args.u32(handle, "handle"),
                        priority=_args.in_range(priority, "priority", 1, _args.U16_MAX))
        try:
            _ffi.lib().bpf_tc_detach(ctypes.byref(hook), ctypes.byref(opts))
        except BpfError as exc:
            raise error_from_errno(exc.errno, f"failed to detach tc filter {handle:#x}/"
                                   f"{priority} from ifindex {self.ifindex}", _CAPS) from None

    def __repr__(self) -> str:
        return f"<TcHook ifindex {self.ifindex} {self._point_name}>"
