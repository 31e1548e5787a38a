"""The attach family of :class:`~pylibbpf.Program` (``bpf_program__attach*``): each method turns a
loaded program into a :class:`~pylibbpf.Link` the caller keeps (or, for tc, a
:class:`~pylibbpf.TcAttachment`).

:class:`Attach` is a mixin of ``Program``: it needs the program's live pointer ``_p``, name,
section, fd and its object's :class:`~pylibbpf._handle.Lifetime`, and nothing else.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _args, _ffi, _usdt
from ._ffi import structs
from ._ffi.printcb import capture
from ._ffi.structs import new_opts
from .errors import BpfError, error_from_errno
from .link import Link

if TYPE_CHECKING:
    from ._handle import Lifetime
    from .map import Map
    from .object import Object
    from .tc import TcAttachment


def _fd_of(target: int | str | os.PathLike[str], what: str,
           flags: int = os.O_RDONLY) -> tuple[int, bool]:
    """An fd for ``target``: an int is used as is, a path is opened (and must be closed)."""
    if isinstance(target, int) and not isinstance(target, bool):
        return _args.fd(target, what), False
    path = _args.cpath(target, what)
    try:
        return os.open(path, flags | os.O_CLOEXEC), True
    except OSError as exc:
        raise error_from_errno(exc.errno, f"cannot open {what} {os.fsdecode(path)}") from None


def _ifindex(interface: int | str) -> int:
    if isinstance(interface, int) and not isinstance(interface, bool):
        return _args.in_range(interface, "interface index", 1, _args.INT_MAX)
    name = _args.cstr(interface, "interface").decode("utf-8", "surrogateescape")
    try:
        return socket.if_nametoindex(name)
    except OSError as exc:
        raise BpfError(_errno.ENODEV, f"no network interface {interface!r}") from exc


class Attach:
    """``Program.attach*``: attach a loaded program; each returns what detaches it."""

    __slots__ = ()

    if TYPE_CHECKING:  # what Program provides
        _obj: Object
        _life: Lifetime
        _name: str

        @property
        def _p(self) -> Any: ...

        @property
        def section_name(self) -> str: ...

        @property
        def fd(self) -> int: ...


    def _attach(self, what: str, call: Callable[[Any], Any], *, usdt: bool = False) -> Link:
        """Attach with ``call(prog)``; ``usdt``: it attaches to USDT probes, whose argument-spec
        layout must match the loaded libbpf's (see :mod:`pylibbpf._usdt`), and whose links use
        the object's USDT manager: they keep the object alive and are destroyed before it."""
        ptr = self._p
        self._life.require_loaded(f"attaching program {self._name!r}")
        if usdt:
            specs = self._obj.maps.get(_usdt.SPECS_MAP)
            _usdt.check(self._obj.name, None if specs is None else specs.value_size,
                        _ffi.version())
        with capture() as messages:
            try:
                link_ptr = call(ptr)
            except BpfError as exc:
                detail = next((m.strip() for m in reversed(messages) if m.strip()), "")
                needs = ("CAP_BPF", "CAP_PERFMON")
                raise error_from_errno(
                    exc.errno, f"failed to attach program {self._name!r} {what}"
                    + (f": {detail}" if detail else ""), needs) from None
        return Link(link_ptr, owner=self._obj if usdt else None,
                    owner_life=self._life if usdt else None,
                    description=f"link of {self._name!r} {what}")

    def attach(self) -> Link:
        """Attach as the section name says (``bpf_program__attach``)."""
        lib = _ffi.lib()
        section = self.section_name
        return self._attach(f"by section {section!r}", lib.bpf_program__attach,
                            usdt=section.startswith("usdt"))

    def attach_kprobe(self, func_name: str, *, retprobe: bool = False, offset: int = 0,
                      cookie: int = 0) -> Link:
        """Attach as a kprobe (or kretprobe) on kernel function ``func_name`` + ``offset``."""
        name = _args.cstr(func_name, "func_name")
        opts = new_opts(structs.bpf_kprobe_opts, retprobe=bool(retprobe),
                        offset=_args.u64(offset, "offset"), bpf_cookie=_args.u64(cookie, "cookie"))
        kind = "kretprobe" if retprobe else "kprobe"
        return self._attach(f"as {kind} on {func_name}+{offset}",
                            lambda p: _ffi.lib().bpf_program__attach_kprobe_opts(
                                p, name, ctypes.byref(opts)))

    def attach_ksyscall(self, syscall_name: str) -> Link:
        """Attach a kprobe on the kernel's handler of ``syscall_name`` (arch prefix handled)."""
        name = _args.cstr(syscall_name, "syscall_name")
        return self._attach(f"on syscall {syscall_name}",
                            lambda p: _ffi.lib().bpf_program__attach_ksyscall(p, name, None))

    def attach_uprobe(self, binary_path: str | os.PathLike[str], func_name: str | None = None,
                      *, offset: int = 0, pid: int = -1, retprobe: bool = False,
                      cookie: int = 0, ref_ctr_offset: int = 0) -> Link:
        """Attach a uprobe (or uretprobe) to ``binary_path`` at ``func_name`` + ``offset``.

        ``pid=-1`` traces every process, ``0`` the caller, ``N`` only process N.
        """
        path = _args.cpath(binary_path, "binary_path")
        offset = _args.u64(offset, "offset")
        pid = _args.in_range(pid, "pid", -1, _args.INT_MAX)
        opts = new_opts(structs.bpf_uprobe_opts, retprobe=bool(retprobe),
                        bpf_cookie=_args.u64(cookie, "cookie"),
                        ref_ctr_offset=_args.u64(ref_ctr_offset, "ref_ctr_offset"),
                        func_name=_args.optional_cstr(func_name, "func_name"))
        where = f"{func_name}+{offset}" if func_name else hex(offset)
        kind = "uretprobe" if retprobe else "uprobe"
        return self._attach(f"as {kind} on {os.fsdecode(path)}:{where}",
                            lambda p: _ffi.lib().bpf_program__attach_uprobe_opts(
                                p, pid, path, offset, ctypes.byref(opts)))

    def attach_usdt(self, binary_path: str | os.PathLike[str], provider: str, name: str, *,
                    pid: int = -1, cookie: int = 0) -> Link:
        """Attach to the USDT probe ``provider:name`` in ``binary_path``.

        Raises :class:`BpfError` (EINVAL) when the object was built with a ``usdt.bpf.h`` whose
        argument-spec layout differs from the loaded libbpf's (libbpf 1.7 changed it), where
        libbpf itself would attach and the program would read wrong arguments.
        """
        path = _args.cpath(binary_path, "binary_path")
        raw_provider, raw_name = _args.cstr(provider, "provider"), _args.cstr(name, "name")
        pid = _args.in_range(pid, "pid", -1, _args.INT_MAX)
        opts = new_opts(structs.bpf_usdt_opts, usdt_cookie=_args.u64(cookie, "cookie"))
        return self._attach(
            f"to USDT {provider}:{name} in {os.fsdecode(path)}",
            lambda p: _ffi.lib().bpf_program__attach_usdt(
                p, pid, path, raw_provider, raw_name, ctypes.byref(opts)),
            usdt=True)

    def attach_tracepoint(self, category: str, name: str, *, cookie: int = 0) -> Link:
        """Attach to the tracepoint ``category:name`` (e.g. ``syscalls``, ``sys_enter_getpid``)."""
        raw_category, raw_name = _args.cstr(category, "category"), _args.cstr(name, "name")
        opts = new_opts(structs.bpf_tracepoint_opts, bpf_cookie=_args.u64(cookie, "cookie"))
        return self._attach(f"to tracepoint {category}:{name}",
                            lambda p: _ffi.lib().bpf_program__attach_tracepoint_opts(
                                p, raw_category, raw_name, ctypes.byref(opts)))

    def attach_raw_tracepoint(self, name: str) -> Link:
        """Attach to the raw tracepoint ``name`` (e.g. ``sys_enter``)."""
        raw = _args.cstr(name, "name")
        return self._attach(f"to raw tracepoint {name}",
                            lambda p: _ffi.lib().bpf_program__attach_raw_tracepoint(p, raw))

    def attach_trace(self, *, cookie: int = 0) -> Link:
        """Attach an fentry/fexit/fmod_ret/tp_btf program to its BTF target."""
        opts = new_opts(structs.bpf_trace_opts, cookie=_args.u64(cookie, "cookie"))
        return self._attach("as a BTF tracing program",
                            lambda p: _ffi.lib().bpf_program__attach_trace_opts(
                                p, ctypes.byref(opts)))

    def attach_lsm(self) -> Link:
        """Attach an LSM program to its security hook."""
        return self._attach("as LSM", _ffi.lib().bpf_program__attach_lsm)

    def attach_perf_event(self, perf_event_fd: int, *, cookie: int = 0) -> Link:
        """Attach to an open perf event (the link owns and will close ``perf_event_fd``)."""
        perf_event_fd = _args.fd(perf_event_fd, "perf_event_fd")
        opts = new_opts(structs.bpf_perf_event_opts, bpf_cookie=_args.u64(cookie, "cookie"))
        return self._attach(f"to perf event fd {perf_event_fd}",
                            lambda p: _ffi.lib().bpf_program__attach_perf_event_opts(
                                p, perf_event_fd, ctypes.byref(opts)))

    def attach_cgroup(self, cgroup: int | str | os.PathLike[str]) -> Link:
        """Attach to a cgroup, given as an open fd or a cgroup v2 directory path."""
        fd, opened = _fd_of(cgroup, "cgroup", os.O_RDONLY | os.O_DIRECTORY)
        try:
            return self._attach(f"to cgroup {cgroup}",
                                lambda p: _ffi.lib().bpf_program__attach_cgroup(p, fd))
        finally:
            if opened:
                os.close(fd)

    def attach_netns(self, netns: int | str | os.PathLike[str] = "/proc/self/ns/net") -> Link:
        """Attach to a network namespace, given as an fd or a path (default: our own)."""
        fd, opened = _fd_of(netns, "netns")
        try:
            return self._attach(f"to netns {netns}",
                                lambda p: _ffi.lib().bpf_program__attach_netns(p, fd))
        finally:
            if opened:
                os.close(fd)

    def attach_xdp(self, interface: int | str) -> Link:
        """Attach an XDP program to a network interface (index or name) as a BPF link."""
        ifindex = _ifindex(interface)
        return self._attach(f"as XDP on ifindex {ifindex}",
                            lambda p: _ffi.lib().bpf_program__attach_xdp(p, ifindex))

    def attach_freplace(self, target_prog_fd: int, func_name: str) -> Link:
        """Attach an ``freplace`` program in place of ``func_name`` of another program."""
        target = _args.fd(target_prog_fd, "target_prog_fd")
        name = _args.cstr(func_name, "func_name")
        return self._attach(f"as freplace of {func_name}",
                            lambda p: _ffi.lib().bpf_program__attach_freplace(p, target, name))

    def attach_iter(self, *, map: Map | int | None = None, cgroup_fd: int | None = None,
                    cgroup_order: int = 0, tid: int = 0, pid: int = 0,
                    pid_fd: int = 0) -> Link:
        """Attach an iterator program; read it with :meth:`Link.read` or :meth:`Link.open_iter`.

        ``map`` parametrizes map-element iterators; ``tid``/``pid``/``pid_fd`` restrict task
        iterators; ``cgroup_fd``/``cgroup_order`` parametrize cgroup iterators.
        """
        from .map import Map

        if map is not None and not isinstance(map, Map):
            map = _args.fd(map, "map")
        cgroup_fd = None if cgroup_fd is None else _args.fd(cgroup_fd, "cgroup_fd")
        cgroup_order = _args.u32(cgroup_order, "cgroup_order")
        tid, pid = _args.u32(tid, "tid"), _args.u32(pid, "pid")
        pid_fd = _args.fd(pid_fd, "pid_fd")
        info = structs.bpf_iter_link_info()
        has_info = False
        if map is not None:
            info.map.map_fd = map.fd if isinstance(map, Map) else map
            has_info = True
        if cgroup_fd is not None:
            info.cgroup.cgroup_fd = cgroup_fd
            info.cgroup.order = cgroup_order
            has_info = True
        if tid or pid or pid_fd:
            info.task.tid, info.task.pid, info.task.pid_fd = tid, pid, pid_fd
            has_info = True
        fields: dict[str, Any] = {}
        if has_info:
            fields = {"link_info": ctypes.pointer(info), "link_info_len": ctypes.sizeof(info)}
        opts = new_opts(structs.bpf_iter_attach_opts, **fields)
        return self._attach("as an iterator",
                            lambda p: _ffi.lib().bpf_program__attach_iter(
                                p, ctypes.byref(opts)))

    def attach_tc(self, interface: int | str, *, attach_point: str = "ingress",
                  handle: int = 1, priority: int = 1) -> TcAttachment:
        """Attach a ``tc`` (SCHED_CLS) program with libbpf's ``bpf_tc_*`` API.

        Creates the clsact qdisc if needed.  Returns a :class:`~pylibbpf.TcAttachment`; its
        :meth:`~pylibbpf.TcAttachment.detach` removes the filter.
        """
        from .tc import TcAttachment

        ifindex = _ifindex(interface)
        self._life.require_loaded(f"attaching program {self._name!r}")
        return TcAttachment.attach(self.fd, ifindex, attach_point, handle, priority, self._name)
