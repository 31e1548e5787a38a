"""The attach family of :class:`~pylibbpf.Program` (``bpf_program__attach*``): each method turns a
loaded program into a :class:`~pylibbpf.Link` the caller keeps (or, for tc, a
:class:`~pylibbpf.TcAttachment`).

:class:`Attach` is a mixin of ``Program``: it needs the program's live pointer ``_p``, name,
section, fd and its object's :class:`~pylibbpf._handle.Lifetime`, and nothing else.
"""

from __future__ import annotations

import ctypes
import os
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import _args, _ffi, _usdt
from . import _attach_args as args
from ._ffi import structs
from ._ffi.printcb import capture
from ._ffi.structs import new_opts
from ._ffi.types import bpf_link_p, bpf_object_p, bpf_program_p
from .enums import AttachType
from .errors import BpfError, error_from_errno
from .link import Link
from .map_attachment import MapAttachment

if TYPE_CHECKING:
    from ._handle import Lifetime
    from .map import Map
    from .object import Object
    from .tc import TcAttachment


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

        @property
        def expected_attach_type(self) -> AttachType | int: ...


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
                detail = args.detail(messages)
                needs = ("CAP_BPF", "CAP_PERFMON")
                raise error_from_errno(
                    exc.errno, f"failed to attach program {self._name!r} {what}"
                    + (f": {detail}" if detail else ""), needs) from None
        return Link(link_ptr, owner=self._obj if usdt else None,
                    owner_life=self._life if usdt else None,
                    description=f"link of {self._name!r} {what}")

    def _auto_attach(self) -> Link | None:
        """Attach as ``bpf_object__attach_skeleton`` does, for this program alone: ``None``
        when libbpf skips it (autoload or autoattach off, a section type without auto-attach,
        or a section that names no target, such as a bare ``SEC("uprobe")``).  The link is
        destroyed by the object's close (:meth:`Object.attach` keeps it)."""
        ptr = self._p
        self._life.require_loaded(f"attaching program {self._name!r}")
        section = self.section_name
        if section.startswith("usdt"):
            specs = self._obj.maps.get(_usdt.SPECS_MAP)
            _usdt.check(self._obj.name, None if specs is None else specs.value_size,
                        _ffi.version())
        # the skeleton's slots: libbpf reads the program and writes the link through them
        prog_slot = bpf_program_p(ptr.contents)
        link_slot = bpf_link_p()
        obj_slot = bpf_object_p(self._obj._p.contents)
        prog_skel = structs.bpf_prog_skeleton(name=self._name.encode("utf-8", "surrogateescape"),
                                              prog=ctypes.pointer(prog_slot),
                                              link=ctypes.pointer(link_slot))
        skel = structs.bpf_object_skeleton(
            sz=ctypes.sizeof(structs.bpf_object_skeleton), obj=ctypes.pointer(obj_slot),
            map_skel_sz=ctypes.sizeof(structs.bpf_map_skeleton), prog_cnt=1,
            prog_skel_sz=ctypes.sizeof(structs.bpf_prog_skeleton),
            progs=ctypes.pointer(prog_skel))
        what = f"by section {section!r}"
        with capture() as messages:
            try:
                _ffi.lib().bpf_object__attach_skeleton(ctypes.byref(skel))
            except BpfError as exc:
                detail = args.detail(messages)
                raise error_from_errno(
                    exc.errno, f"failed to attach program {self._name!r} {what}"
                    + (f": {detail}" if detail else ""), ("CAP_BPF", "CAP_PERFMON")) from None
        if not link_slot:
            return None
        return Link(link_slot, owner_life=self._life,
                    description=f"link of {self._name!r} {what}")

    def attach_kprobe_multi(self, pattern: str | None = None, *,
                            syms: Sequence[str] | None = None,
                            addrs: Sequence[int] | None = None,
                            cookies: Sequence[int] | None = None, retprobe: bool = False,
                            session: bool = False, unique_match: bool = False) -> Link:
        """Attach to many kernel functions with one kprobe-multi link (Linux 5.18, fprobe).

        Give a glob ``pattern`` (``"tcp_*"``, matched against ``available_filter_functions``)
        or the list ``syms`` (or ``addrs``), with one cookie per function if wanted.
        ``session`` (libbpf >= 1.5, Linux 6.10; for ``kprobe.session`` programs) runs the
        program on entry and return; ``unique_match`` (libbpf >= 1.6) refuses a pattern that
        matches more than one function.
        """
        self._life.check()
        raw_pattern = _args.optional_cstr(pattern, "pattern")
        if (raw_pattern is None) == (syms is None and addrs is None):
            raise ValueError("give either pattern or syms/addrs")
        if session:
            args.need_version((1, 5), "a kprobe session")
        if unique_match:
            args.need_version((1, 6), "unique_match")
        c_syms = args.array(ctypes.c_char_p, syms, "syms", _args.cstr)
        c_addrs = args.array(ctypes.c_ulong, addrs, "addrs", _args.u64)
        c_cookies = args.array(ctypes.c_uint64, cookies, "cookies", _args.u64)
        cnt = args.count(c_syms, c_addrs, c_cookies)
        cls = structs.bpf_kprobe_multi_opts__1_6
        opts = new_opts(cls, cnt=cnt, retprobe=bool(retprobe), session=bool(session),
                        unique_match=bool(unique_match),
                        **args.opts_arrays(cls, syms=c_syms, addrs=c_addrs, cookies=c_cookies))
        kind = "session" if session else "kretprobe" if retprobe else "kprobe"
        where = pattern if pattern is not None else f"{cnt} functions"
        return self._attach(f"as multi-{kind} on {where}",
                            lambda p: _ffi.lib().bpf_program__attach_kprobe_multi_opts(
                                p, raw_pattern, ctypes.byref(opts)))

    def attach_uprobe_multi(self, binary_path: str | os.PathLike[str],
                            func_pattern: str | None = None, *, pid: int = -1,
                            syms: Sequence[str] | None = None,
                            offsets: Sequence[int] | None = None,
                            ref_ctr_offsets: Sequence[int] | None = None,
                            cookies: Sequence[int] | None = None, retprobe: bool = False,
                            session: bool = False) -> Link:
        """Attach to many functions of ``binary_path`` with one uprobe-multi link (libbpf >=
        1.3, Linux 6.6): a glob ``func_pattern``, or the lists ``syms`` / ``offsets``.

        ``pid=-1`` traces every process.  ``session`` (libbpf >= 1.6, Linux 6.13; for
        ``uprobe.session`` programs) runs the program on entry and return.
        """
        self._life.check()
        args.need("bpf_program__attach_uprobe_multi", "attach_uprobe_multi")
        if session:
            args.need_version((1, 6), "a uprobe session")
        path = _args.cpath(binary_path, "binary_path")
        raw_pattern = _args.optional_cstr(func_pattern, "func_pattern")
        if (raw_pattern is None) == (syms is None and offsets is None):
            raise ValueError("give either func_pattern or syms/offsets")
        pid = _args.in_range(pid, "pid", -1, _args.INT_MAX)
        c_syms = args.array(ctypes.c_char_p, syms, "syms", _args.cstr)
        c_offsets = args.array(ctypes.c_ulong, offsets, "offsets", _args.u64)
        c_refs = args.array(ctypes.c_ulong, ref_ctr_offsets, "ref_ctr_offsets", _args.u64)
        c_cookies = args.array(ctypes.c_uint64, cookies, "cookies", _args.u64)
        cnt = args.count(c_syms, c_offsets, c_refs, c_cookies)
        cls = structs.bpf_uprobe_multi_opts
        opts = new_opts(cls, cnt=cnt, retprobe=bool(retprobe), session=bool(session),
                        **args.opts_arrays(cls, syms=c_syms, offsets=c_offsets,
                                       ref_ctr_offsets=c_refs, cookies=c_cookies))
        kind = "session" if session else "uretprobe" if retprobe else "uprobe"
        where = func_pattern if func_pattern is not None else f"{cnt} functions"
        return self._attach(f"as multi-{kind} on {os.fsdecode(path)}:{where}",
                            lambda p: _ffi.lib().bpf_program__attach_uprobe_multi(
                                p, pid, path, raw_pattern, ctypes.byref(opts)))

    def attach_tcx(self, interface: int | str, *, flags: int = 0, relative_fd: int = 0,
                   relative_id: int = 0, expected_revision: int = 0) -> Link:
        """Attach a ``tcx/ingress`` or ``tcx/egress`` program to an interface with a tcx link
        (libbpf >= 1.3, Linux 6.6): no qdisc, and the link detaches when destroyed.

        ``flags`` (``BPF_F_BEFORE``, ``BPF_F_AFTER``, ``BPF_F_ID``, ``BPF_F_LINK``) with
        ``relative_fd``/``relative_id`` place it among the interface's other programs.
        """
        return self._attach_mprog("tcx", structs.bpf_tcx_opts, interface, flags, relative_fd,
                                  relative_id, expected_revision)

    def attach_netkit(self, interface: int | str, *, flags: int = 0, relative_fd: int = 0,
                      relative_id: int = 0, expected_revision: int = 0) -> Link:
        """Attach a ``netkit/primary`` or ``netkit/peer`` program to a netkit device (libbpf
        >= 1.3, Linux 6.7); the options are :meth:`attach_tcx`'s."""
        return self._attach_mprog("netkit", structs.bpf_netkit_opts, interface, flags,
                                  relative_fd, relative_id, expected_revision)

    def _attach_mprog(self, kind: str, opts_type: Any, interface: int | str, flags: int,
                      relative_fd: int, relative_id: int, expected_revision: int) -> Link:
        """The multi-program attach points (tcx, netkit): ``bpf_program__attach_<kind>``."""
        self._life.check()
        func = f"bpf_program__attach_{kind}"
        args.need(func, f"attach_{kind}")
        ifindex = args.ifindex(interface)
        opts = args.mprog_opts(opts_type, flags, relative_fd, relative_id, expected_revision)
        return self._attach(f"as {kind} on ifindex {ifindex}",
                            lambda p: getattr(_ffi.lib(), func)(p, ifindex, ctypes.byref(opts)))

    def attach_netfilter(self, pf: int, hooknum: int, priority: int, *,
                         flags: int = 0) -> Link:
        """Attach a ``netfilter`` program to a netfilter hook (libbpf >= 1.3, Linux 6.4).

        ``pf`` is the protocol family (``NFPROTO_IPV4`` = 2, ``NFPROTO_IPV6`` = 10),
        ``hooknum`` the hook (``NF_INET_PRE_ROUTING`` = 0, ``LOCAL_IN`` = 1, ``FORWARD`` = 2,
        ``LOCAL_OUT`` = 3, ``POST_ROUTING`` = 4), ``priority`` its place among the hook's
        functions (not ``INT_MIN``/``INT_MAX``); ``flags``: ``BPF_F_NETFILTER_IP_DEFRAG``.
        """
        self._life.check()
        args.need("bpf_program__attach_netfilter", "attach_netfilter")
        opts = new_opts(structs.bpf_netfilter_opts, pf=_args.u32(pf, "pf"),
                        hooknum=_args.u32(hooknum, "hooknum"),
                        priority=_args.in_range(priority, "priority", -_args.INT_MAX - 1,
                                                _args.INT_MAX),
                        flags=_args.u32(flags, "flags"))
        return self._attach(f"to netfilter pf {pf} hook {hooknum} priority {priority}",
                            lambda p: _ffi.lib().bpf_program__attach_netfilter(
                                p, ctypes.byref(opts)))

    def attach_sockmap(self, map: Map | int) -> Link:
        """Attach a sockmap/sockhash parser or verdict program to ``map`` with a BPF link
        (libbpf >= 1.5, Linux 6.10).  Without those, :meth:`attach_to_map` attaches the same
        programs with ``BPF_PROG_ATTACH``."""
        self._life.check()
        args.need("bpf_program__attach_sockmap", "attach_sockmap")
        map_fd = args.map_fd(map)
        return self._attach(f"to sockmap fd {map_fd}",
                            lambda p: _ffi.lib().bpf_program__attach_sockmap(p, map_fd))

    def attach_to_map(self, map: Map | int,
                      attach_type: AttachType | int | None = None) -> MapAttachment:
        """Attach to a sockmap or sockhash with ``BPF_PROG_ATTACH`` (``bpf_prog_attach``), as
        ``sk_skb`` stream parsers/verdicts and ``sk_msg`` verdicts attach on any kernel.

        ``attach_type`` defaults to the program's expected attach type (what its section says:
        ``sk_skb/stream_verdict``, ``sk_msg`` ...).  Returns a :class:`MapAttachment`;
        :meth:`MapAttachment.detach` detaches it.
        """
        self._life.check()
        kind = self.expected_attach_type if attach_type is None else attach_type
        kind = _args.non_negative_int(kind, "attach_type")
        if kind not in args.MAP_ATTACH_TYPES:
            raise ValueError(f"program {self._name!r} (section {self.section_name!r}) attaches "
                             f"to a map as one of {sorted(t.name for t in args.MAP_ATTACH_TYPES)};"
                             f" pass attach_type (it has {kind})")
        map_fd = args.map_fd(map)
        prog_fd = self.fd
        name = AttachType(kind).name
        try:
            _ffi.lib().bpf_prog_attach(prog_fd, map_fd, kind, 0)
        except BpfError as exc:
            raise error_from_errno(exc.errno, f"failed to attach program {self._name!r} to "
                                   f"map fd {map_fd} as {name}",
                                   ("CAP_BPF", "CAP_NET_ADMIN")) from None
        dups: list[int] = []
        try:
            dups.append(os.dup(prog_fd))
            dups.append(os.dup(map_fd))
        except OSError:
            _ffi.lib().bpf_prog_detach2(prog_fd, map_fd, kind)
            for fd in dups:
                os.close(fd)
            raise
        return MapAttachment(dups[0], dups[1], kind,
                             f"program {self._name!r} on map fd {map_fd} as {name}")

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
        fd, opened = args.fd_of(cgroup, "cgroup", os.O_RDONLY | os.O_DIRECTORY)
        try:
            return self._attach(f"to cgroup {cgroup}",
                                lambda p: _ffi.lib().bpf_program__attach_cgroup(p, fd))
        finally:
            if opened:
                os.close(fd)

    def attach_netns(self, netns: int | str | os.PathLike[str] = "/proc/self/ns/net") -> Link:
        """Attach to a network namespace, given as an fd or a path (default: our own)."""
        fd, opened = args.fd_of(netns, "netns")
        try:
            return self._attach(f"to netns {netns}",
                                lambda p: _ffi.lib().bpf_program__attach_netns(p, fd))
        finally:
            if opened:
                os.close(fd)

    def attach_xdp(self, interface: int | str) -> Link:
        """Attach an XDP program to a network interface (index or name) as a BPF link."""
        ifindex = args.ifindex(interface)
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

    def attach_socket(self, sock: socket.socket | int) -> None:
        """Attach a ``SOCKET_FILTER`` program to a socket (``SO_ATTACH_BPF``); the kernel keeps
        it with the socket until :func:`pylibbpf.socket_filter.detach` or the socket's close.
        See :mod:`pylibbpf.socket_filter`."""
        from .socket_filter import attach

        self._life.require_loaded(f"attaching program {self._name!r}")
        attach(sock, self.fd)

    def attach_tc(self, interface: int | str, *, attach_point: str = "ingress",
                  handle: int = 1, priority: int = 1) -> TcAttachment:
        """Attach a ``tc`` (SCHED_CLS) program with libbpf's ``bpf_tc_*`` API.

        Creates the clsact qdisc if needed.  Returns a :class:`~pylibbpf.TcAttachment`; its
        :meth:`~pylibbpf.TcAttachment.detach` removes the filter.
        """
        from .tc import TcAttachment

        ifindex = args.ifindex(interface)
        self._life.require_loaded(f"attaching program {self._name!r}")
        return TcAttachment.attach(self.fd, ifindex, attach_point, handle, priority, self._name)
