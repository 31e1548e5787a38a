"""``Program``: one BPF program of an :class:`~pylibbpf.Object` (libbpf's ``bpf_program``).

Getters without arguments are read-only properties (``name``, ``fd``, ``type`` ...); libbpf's
setters keep their names (``set_autoload``) and raise :class:`~pylibbpf.errors.StateError` once
the object is loaded.  ``attach*`` methods return a :class:`~pylibbpf.Link` the caller keeps.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _ffi
from ._ffi import structs
from ._ffi.printcb import capture
from ._ffi.structs import new_opts
from .enums import AttachType, ProgType, enum_or_int
from .errors import BpfError, StateError, error_from_errno
from .link import Link

if TYPE_CHECKING:
    from .info import ProgramInfo
    from .map import Map
    from .object import Object
    from .tc import TcAttachment

_INSN_SIZE = 8
# Program types whose test run copies the context back out (skb- and xdp-based).
_CTX_OUT_TYPES = frozenset({
    ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.XDP,
    ProgType.CGROUP_SKB, ProgType.LWT_IN, ProgType.LWT_OUT, ProgType.LWT_XMIT,
    ProgType.LWT_SEG6LOCAL, ProgType.FLOW_DISSECTOR,
})


@dataclass(frozen=True)
class TestRunResult:
    """What ``BPF_PROG_TEST_RUN`` gave back."""

    retval: int
    duration_ns: int
    data_out: bytes
    ctx_out: bytes

    @property
    def duration(self) -> int:
        """Average run time per repetition, in nanoseconds (the kernel's ``duration``)."""
        return self.duration_ns


def _fd_of(target: int | str | os.PathLike[str], flags: int = os.O_RDONLY) -> tuple[int, bool]:
    """An fd for ``target``: an int is used as is, a path is opened (and must be closed)."""
    if isinstance(target, int):
        return target, False
    return os.open(target, flags | os.O_CLOEXEC), True


def _ifindex(interface: int | str) -> int:
    if isinstance(interface, int):
        return interface
    try:
        return socket.if_nametoindex(interface)
    except OSError as exc:
        raise BpfError(_errno.ENODEV, f"no network interface {interface!r}") from exc


class Program:
    """A BPF program inside an :class:`~pylibbpf.Object`.  Keeps its object alive."""

    __slots__ = ("_obj", "_ptr", "_name", "_log_buf", "_insns_buf", "__weakref__")

    def __init__(self, obj: Object, ptr: Any) -> None:
        self._obj = obj
        self._ptr = ptr
        # names are bytes in the ELF: undecodable ones round-trip instead of raising
        self._name: str = _ffi.lib().bpf_program__name(ptr).decode("utf-8", "surrogateescape")
        self._log_buf: Any = None
        self._insns_buf: Any = None

    @property
    def _p(self) -> Any:
        self._obj._check()
        return self._ptr

    def _setter(self, what: str) -> Any:
        self._obj._require_open(f"{what} of program {self._name!r}")
        return self._ptr

    # ----------------------------------------------------------------------------- getters

    @property
    def object(self) -> Object:
        """The object this program belongs to."""
        return self._obj

    @property
    def name(self) -> str:
        """The program's (C function's) name."""
        self._obj._check()
        return self._name

    @property
    def section_name(self) -> str:
        """The ELF section the program came from (``SEC("...")``)."""
        raw: bytes = _ffi.lib().bpf_program__section_name(self._p)
        return raw.decode("utf-8", "surrogateescape")

    @property
    def fd(self) -> int:
        """The program's fd once loaded; :class:`StateError` before load or if not loaded."""
        fd = int(_ffi.lib().bpf_program__fd(self._p))
        if fd < 0:
            if not self._obj.loaded:
                raise StateError(_errno.EINVAL, f"program {self._name!r} has no fd before "
                                 "load(); call load() on its object first")
            raise StateError(_errno.ENOENT, f"program {self._name!r} was not loaded "
                             "(autoload off, or its load failed)")
        return fd

    @property
    def type(self) -> ProgType | int:
        """The program type (:class:`~pylibbpf.ProgType`)."""
        return enum_or_int(ProgType, _ffi.lib().bpf_program__type(self._p))

    @property
    def expected_attach_type(self) -> AttachType | int:
        """The expected attach type (:class:`~pylibbpf.AttachType`)."""
        return enum_or_int(AttachType, _ffi.lib().bpf_program__expected_attach_type(self._p))

    @property
    def autoload(self) -> bool:
        """Whether :meth:`Object.load` loads this program."""
        return bool(_ffi.lib().bpf_program__autoload(self._p))

    @property
    def autoattach(self) -> bool:
        """Whether skeleton-style auto-attach would attach this program."""
        return bool(_ffi.lib().bpf_program__autoattach(self._p))

    @property
    def flags(self) -> int:
        """The ``prog_flags`` passed to the kernel at load (``BPF_F_SLEEPABLE`` ...)."""
        return int(_ffi.lib().bpf_program__flags(self._p))

    @property
    def log_level(self) -> int:
        """The verifier log level requested for this program."""
        return int(_ffi.lib().bpf_program__log_level(self._p))

    @property
    def log_buf(self) -> str:
        """What the verifier wrote into the buffer given with :meth:`set_log_buf`."""
        if self._log_buf is None:
            return ""
        raw = bytes(self._log_buf)
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")

    @property
    def insn_cnt(self) -> int:
        """The number of instructions (after libbpf's relocation, before the verifier)."""
        return int(_ffi.lib().bpf_program__insn_cnt(self._p))

    @property
    def insns(self) -> bytes:
        """The raw instructions as libbpf holds them (8 bytes each)."""
        ptr = self._p
        lib = _ffi.lib()
        count = lib.bpf_program__insn_cnt(ptr)
        addr = lib.bpf_program__insns(ptr)
        if not addr or not count:
            return b""
        return ctypes.string_at(addr, count * _INSN_SIZE)

    # ----------------------------------------------------------------------------- setters

    def set_autoload(self, autoload: bool) -> None:
        """Load (or skip) this program in :meth:`Object.load`."""
        _ffi.lib().bpf_program__set_autoload(self._setter("autoload"), bool(autoload))

    def set_autoattach(self, autoattach: bool) -> None:
        """Include (or skip) this program when attaching by section."""
        _ffi.lib().bpf_program__set_autoattach(self._p, bool(autoattach))

    def set_type(self, prog_type: ProgType | int) -> None:
        """Override the program type inferred from the section name."""
        _ffi.lib().bpf_program__set_type(self._setter("type"), int(prog_type))

    def set_expected_attach_type(self, attach_type: AttachType | int) -> None:
        """Override the expected attach type inferred from the section name."""
        _ffi.lib().bpf_program__set_expected_attach_type(
            self._setter("expected attach type"), int(attach_type))

    def set_attach_target(self, func_name: str | None, attach_prog_fd: int = 0) -> None:
        """Set the BTF attach target (fentry/fexit/freplace/tp_btf/lsm function name)."""
        target = None if func_name is None else func_name.encode()
        _ffi.lib().bpf_program__set_attach_target(self._setter("attach target"),
                                                  attach_prog_fd, target)

    def set_flags(self, flags: int) -> None:
        """Set ``prog_flags`` for the load."""
        _ffi.lib().bpf_program__set_flags(self._setter("flags"), flags)

    def set_log_level(self, level: int) -> None:
        """Ask the verifier for a log at ``level`` (1, 2; 4 = stats) during load."""
        _ffi.lib().bpf_program__set_log_level(self._setter("log level"), level)

    def set_log_buf(self, size_or_buffer: int | bytearray) -> None:
        """Give the verifier a buffer for this program's log (a size or a ``bytearray``).

        The buffer is kept alive here until the object is closed; read it with
        :attr:`log_buf`.
        """
        ptr = self._setter("log buffer")
        if isinstance(size_or_buffer, int):
            if size_or_buffer <= 0:
                raise ValueError("log buffer size must be positive")
            buf: Any = ctypes.create_string_buffer(size_or_buffer)
        elif isinstance(size_or_buffer, bytearray) and size_or_buffer:
            buf = (ctypes.c_char * len(size_or_buffer)).from_buffer(size_or_buffer)
        else:
            raise TypeError("set_log_buf takes a positive size or a non-empty bytearray")
        _ffi.lib().bpf_program__set_log_buf(ptr, ctypes.addressof(buf), ctypes.sizeof(buf))
        self._log_buf = buf

    def set_ifindex(self, ifindex: int) -> None:
        """Offload target device (hardware offload)."""
        _ffi.lib().bpf_program__set_ifindex(self._setter("ifindex"), ifindex)

    def set_insns(self, insns: bytes) -> None:
        """Replace the program's instructions before load (8 bytes per instruction)."""
        ptr = self._setter("instructions")
        if len(insns) % _INSN_SIZE:
            raise ValueError(f"instructions must be a multiple of 8 bytes, got {len(insns)}")
        # libbpf keeps the pointer: keep the buffer alive with the program.
        buf = ctypes.create_string_buffer(bytes(insns), len(insns))
        _ffi.lib().bpf_program__set_insns(ptr, ctypes.addressof(buf), len(insns) // _INSN_SIZE)
        self._insns_buf = buf

    # ----------------------------------------------------------------------------- pinning

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin the loaded program at ``path`` in a bpffs."""
        self._obj._require_loaded(f"pinning program {self._name!r}")
        try:
            _ffi.lib().bpf_program__pin(self._p, os.fsencode(path))
        except BpfError as exc:
            raise error_from_errno(exc.errno, f"failed to pin program {self._name!r} at "
                                   f"{os.fsdecode(path)}") from None

    def unpin(self, path: str | os.PathLike[str]) -> None:
        """Remove the pin at ``path``."""
        try:
            _ffi.lib().bpf_program__unpin(self._p, os.fsencode(path))
        except BpfError as exc:
            raise error_from_errno(exc.errno, f"failed to unpin program {self._name!r} at "
                                   f"{os.fsdecode(path)}") from None

    # ----------------------------------------------------------------------------- attach

    def _attach(self, what: str, call: Callable[[Any], Any], owner: Any = None) -> Link:
        ptr = self._p
        self._obj._require_loaded(f"attaching program {self._name!r}")
        with capture() as messages:
            try:
                link_ptr = call(ptr)
            except BpfError as exc:
                detail = next((m.strip() for m in reversed(messages) if m.strip()), "")
                needs = ("CAP_BPF", "CAP_PERFMON")
                raise error_from_errno(
                    exc.errno, f"failed to attach program {self._name!r} {what}"
                    + (f": {detail}" if detail else ""), needs) from None
        return Link(link_ptr, owner=owner, description=f"link of {self._name!r} {what}")

    def attach(self) -> Link:
        """Attach as the section name says (``bpf_program__attach``)."""
        lib = _ffi.lib()
        return self._attach(f"by section {self.section_name!r}", lib.bpf_program__attach)

    def attach_kprobe(self, func_name: str, *, retprobe: bool = False, offset: int = 0,
                      cookie: int = 0) -> Link:
        """Attach as a kprobe (or kretprobe) on kernel function ``func_name`` + ``offset``."""
        opts = new_opts(structs.bpf_kprobe_opts, retprobe=retprobe, offset=offset,
                        bpf_cookie=cookie)
        kind = "kretprobe" if retprobe else "kprobe"
        return self._attach(f"as {kind} on {func_name}+{offset}",
                            lambda p: _ffi.lib().bpf_program__attach_kprobe_opts(
                                p, func_name.encode(), ctypes.byref(opts)))

    def attach_ksyscall(self, syscall_name: str) -> Link:
        """Attach a kprobe on the kernel's handler of ``syscall_name`` (arch prefix handled)."""
        return self._attach(f"on syscall {syscall_name}",
                            lambda p: _ffi.lib().bpf_program__attach_ksyscall(
                                p, syscall_name.encode(), None))

    def attach_uprobe(self, binary_path: str | os.PathLike[str], func_name: str | None = None,
                      *, offset: int = 0, pid: int = -1, retprobe: bool = False,
                      cookie: int = 0, ref_ctr_offset: int = 0) -> Link:
        """Attach a uprobe (or uretprobe) to ``binary_path`` at ``func_name`` + ``offset``.

        ``pid=-1`` traces every process, ``0`` the caller, ``N`` only process N.
        """
        opts = new_opts(structs.bpf_uprobe_opts, retprobe=retprobe, bpf_cookie=cookie,
                        ref_ctr_offset=ref_ctr_offset,
                        func_name=None if func_name is None else func_name.encode())
        where = f"{func_name}+{offset}" if func_name else hex(offset)
        kind = "uretprobe" if retprobe else "uprobe"
        return self._attach(f"as {kind} on {os.fsdecode(binary_path)}:{where}",
                            lambda p: _ffi.lib().bpf_program__attach_uprobe_opts(
                                p, pid, os.fsencode(binary_path), offset, ctypes.byref(opts)))

    def attach_usdt(self, binary_path: str | os.PathLike[str], provider: str, name: str, *,
                    pid: int = -1, cookie: int = 0) -> Link:
        """Attach to the USDT probe ``provider:name`` in ``binary_path``."""
        opts = new_opts(structs.bpf_usdt_opts, usdt_cookie=cookie)
        return self._attach(
            f"to USDT {provider}:{name} in {os.fsdecode(binary_path)}",
            lambda p: _ffi.lib().bpf_program__attach_usdt(
                p, pid, os.fsencode(binary_path), provider.encode(), name.encode(),
                ctypes.byref(opts)),
            owner=self._obj)

    def attach_tracepoint(self, category: str, name: str, *, cookie: int = 0) -> Link:
        """Attach to the tracepoint ``category:name`` (e.g. ``syscalls``, ``sys_enter_getpid``)."""
        opts = new_opts(structs.bpf_tracepoint_opts, bpf_cookie=cookie)
        return self._attach(f"to tracepoint {category}:{name}",
                            lambda p: _ffi.lib().bpf_program__attach_tracepoint_opts(
                                p, category.encode(), name.encode(), ctypes.byref(opts)))

    def attach_raw_tracepoint(self, name: str) -> Link:
        """Attach to the raw tracepoint ``name`` (e.g. ``sys_enter``)."""
        return self._attach(f"to raw tracepoint {name}",
                            lambda p: _ffi.lib().bpf_program__attach_raw_tracepoint(
                                p, name.encode()))

    def attach_trace(self, *, cookie: int = 0) -> Link:
        """Attach an fentry/fexit/fmod_ret/tp_btf program to its BTF target."""
        opts = new_opts(structs.bpf_trace_opts, cookie=cookie)
        return self._attach("as a BTF tracing program",
                            lambda p: _ffi.lib().bpf_program__attach_trace_opts(
                                p, ctypes.byref(opts)))

    def attach_lsm(self) -> Link:
        """Attach an LSM program to its security hook."""
        return self._attach("as LSM", _ffi.lib().bpf_program__attach_lsm)

    def attach_perf_event(self, perf_event_fd: int, *, cookie: int = 0) -> Link:
        """Attach to an open perf event (the link owns and will close ``perf_event_fd``)."""
        opts = new_opts(structs.bpf_perf_event_opts, bpf_cookie=cookie)
        return self._attach(f"to perf event fd {perf_event_fd}",
                            lambda p: _ffi.lib().bpf_program__attach_perf_event_opts(
                                p, perf_event_fd, ctypes.byref(opts)))

    def attach_cgroup(self, cgroup: int | str | os.PathLike[str]) -> Link:
        """Attach to a cgroup, given as an open fd or a cgroup v2 directory path."""
        fd, opened = _fd_of(cgroup, os.O_RDONLY | os.O_DIRECTORY if not isinstance(
            cgroup, int) else os.O_RDONLY)
        try:
            return self._attach(f"to cgroup {cgroup}",
                                lambda p: _ffi.lib().bpf_program__attach_cgroup(p, fd))
        finally:
            if opened:
                os.close(fd)

    def attach_netns(self, netns: int | str | os.PathLike[str] = "/proc/self/ns/net") -> Link:
        """Attach to a network namespace, given as an fd or a path (default: our own)."""
        fd, opened = _fd_of(netns)
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
        return self._attach(f"as freplace of {func_name}",
                            lambda p: _ffi.lib().bpf_program__attach_freplace(
                                p, target_prog_fd, func_name.encode()))

    def attach_iter(self, *, map: Map | int | None = None, cgroup_fd: int | None = None,
                    cgroup_order: int = 0, tid: int = 0, pid: int = 0,
                    pid_fd: int = 0) -> Link:
        """Attach an iterator program; read it with :meth:`Link.open`.

        ``map`` parametrizes map-element iterators; ``tid``/``pid``/``pid_fd`` restrict task
        iterators; ``cgroup_fd``/``cgroup_order`` parametrize cgroup iterators.
        """
        info = structs.bpf_iter_link_info()
        has_info = False
        if map is not None:
            info.map.map_fd = map if isinstance(map, int) else map.fd
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

        self._obj._require_loaded(f"attaching program {self._name!r}")
        return TcAttachment.attach(self.fd, _ifindex(interface), attach_point, handle,
                                   priority, self._name)

    # ----------------------------------------------------------------------------- run, info

    def test_run(self, data_in: bytes = b"", *, ctx_in: bytes | None = None, repeat: int = 0,
                 data_size_out: int | None = None, ctx_size_out: int | None = None,
                 flags: int = 0, cpu: int = 0) -> TestRunResult:
        """Run the program on ``data_in`` (``BPF_PROG_TEST_RUN``); ``repeat`` times if given.

        ``repeat=0`` (the default) runs once; the kernel refuses a repeat count for program
        types that run only once (``SEC("syscall")``).  ``data_out`` gets room for
        ``len(data_in) + 256`` bytes unless ``data_size_out`` says otherwise.  ``ctx_out`` is
        requested with ``ctx_size_out``, or by default (as large as ``ctx_in``) for the
        packet program types that return their context (XDP, tc, socket, cgroup skb...);
        raw tracepoint and ``SEC("syscall")`` programs refuse it.
        """
        fd = self.fd
        data = bytes(data_in)
        out_size = data_size_out if data_size_out is not None else (
            len(data) + 256 if data else 0)
        data_out = ctypes.create_string_buffer(out_size) if out_size else None
        ctx = None if ctx_in is None else bytes(ctx_in)
        if ctx_size_out is None:
            ctx_size_out = len(ctx) if ctx and self.type in _CTX_OUT_TYPES else 0
        ctx_out_size = ctx_size_out
        ctx_out = ctypes.create_string_buffer(ctx_out_size) if ctx_out_size else None
        fields: dict[str, Any] = {"repeat": repeat, "flags": flags, "cpu": cpu}
        if data:
            fields.update(data_in=ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p),
                          data_size_in=len(data))
        if data_out is not None:
            fields.update(data_out=ctypes.addressof(data_out), data_size_out=out_size)
        if ctx is not None:
            fields.update(ctx_in=ctypes.cast(ctypes.c_char_p(ctx), ctypes.c_void_p),
                          ctx_size_in=len(ctx))
        if ctx_out is not None:
            fields.update(ctx_out=ctypes.addressof(ctx_out), ctx_size_out=ctx_out_size)
        opts = new_opts(structs.bpf_test_run_opts, **fields)
        try:
            _ffi.lib().bpf_prog_test_run_opts(fd, ctypes.byref(opts))
        except BpfError as exc:
            raise error_from_errno(exc.errno, f"test run of program {self._name!r} failed",
                                   ("CAP_BPF", "CAP_NET_ADMIN")) from None
        got_data = data_out.raw[:opts.data_size_out] if data_out is not None else b""
        got_ctx = ctx_out.raw[:opts.ctx_size_out] if ctx_out is not None else b""
        return TestRunResult(int(opts.retval), int(opts.duration), got_data, got_ctx)

    def info(self) -> ProgramInfo:
        """The kernel's view of the loaded program (``bpf_obj_get_info_by_fd``)."""
        from .info import ProgramInfo

        return ProgramInfo.from_fd(self.fd)

    def __repr__(self) -> str:
        if self._obj.closed:
            return f"<Program {self._name!r} (object closed)>"
        return f"<Program {self._name!r} section={self.section_name!r} type={self.type!r}>"
