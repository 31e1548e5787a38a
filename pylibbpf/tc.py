"""tc (``SCHED_CLS``) attachments through libbpf's ``bpf_tc_*`` API (a clsact qdisc filter)."""

from __future__ import annotations

import ctypes
import errno as _errno

from . import _args, _ffi
from ._ffi import structs
from ._ffi.structs import new_opts
from ._handle import Handle
from .enums import TcAttachPoint
from .errors import BpfError, error_from_errno

_POINTS = {"ingress": TcAttachPoint.INGRESS, "egress": TcAttachPoint.EGRESS}


def _detach(ifindex: int, point: int, handle: int, priority: int) -> None:
    hook = new_opts(structs.bpf_tc_hook, ifindex=ifindex, attach_point=point)
    opts = new_opts(structs.bpf_tc_opts, handle=handle, priority=priority)
    try:
        _ffi.lib().bpf_tc_detach(ctypes.byref(hook), ctypes.byref(opts))
    except BpfError:
        pass


class TcAttachment(Handle):
    """A tc filter running a BPF program on an interface; :meth:`detach` removes it."""

    _what = "tc attachment"

    def __init__(self, ifindex: int, point: TcAttachPoint, handle: int, priority: int,
                 prog_id: int, description: str) -> None:
        super().__init__()
        self.ifindex = ifindex
        self.attach_point = point
        self.handle = handle
        self.priority = priority
        self.prog_id = prog_id
        self._own(lambda: _detach(ifindex, point, handle, priority), description)

    @classmethod
    def attach(cls, prog_fd: int, ifindex: int, attach_point: str, handle: int, priority: int,
               name: str) -> TcAttachment:
        """Create the clsact hook if needed and attach ``prog_fd`` (``bpf_tc_attach``).

        ``handle`` is a 32-bit tc handle, ``priority`` a 16-bit tc priority (``ValueError``
        otherwise)."""
        prog_fd = _args.fd(prog_fd, "prog_fd")
        ifindex = _args.in_range(ifindex, "ifindex", 1, _args.INT_MAX)
        handle = _args.u32(handle, "handle")
        priority = _args.in_range(priority, "priority", 0, _args.U16_MAX)
        try:
            point = _POINTS[attach_point]
        except (KeyError, TypeError):
            raise ValueError(f"attach_point must be 'ingress' or 'egress', not "
                             f"{attach_point!r}") from None
        hook = new_opts(structs.bpf_tc_hook, ifindex=ifindex, attach_point=point)
        rc = _ffi.lib().bpf_tc_hook_create(ctypes.byref(hook))
        if rc < 0 and rc != -_errno.EEXIST:
            raise error_from_errno(-rc, f"failed to create the clsact qdisc on ifindex "
                                   f"{ifindex}", ("CAP_NET_ADMIN",))
        opts = new_opts(structs.bpf_tc_opts, prog_fd=prog_fd, handle=handle, priority=priority)
        try:
            _ffi.lib().bpf_tc_attach(ctypes.byref(hook), ctypes.byref(opts))
        except BpfError as exc:
            raise error_from_errno(exc.errno, f"failed to attach program {name!r} to tc "
                                   f"{attach_point} of ifindex {ifindex}",
                                   ("CAP_NET_ADMIN",)) from None
        return cls(ifindex, point, opts.handle, opts.priority, opts.prog_id,
                   f"tc {attach_point} filter of {name!r} on ifindex {ifindex}")

    def query(self) -> int:
        """The id of the program the filter runs now (``bpf_tc_query``)."""
        self._check()
        hook = new_opts(structs.bpf_tc_hook, ifindex=self.ifindex, attach_point=self.attach_point)
        opts = new_opts(structs.bpf_tc_opts, handle=self.handle, priority=self.priority)
        try:
            _ffi.lib().bpf_tc_query(ctypes.byref(hook), ctypes.byref(opts))
        except BpfError as exc:
            raise error_from_errno(exc.errno, "tc query failed", ("CAP_NET_ADMIN",)) from None
        return int(opts.prog_id)

    def detach(self) -> None:
        """Remove the filter (same as :meth:`close`)."""
        self.close()

    destroy = detach
