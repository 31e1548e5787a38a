"""``Program``: one BPF program of an :class:`~pylibbpf.Object` (libbpf's ``bpf_program``).

Getters without arguments are read-only properties (``name``, ``fd``, ``type`` ...); libbpf's
setters keep their names (``set_autoload``) and raise :class:`~pylibbpf.errors.StateError` once
the object is loaded.  ``attach*`` methods return a :class:`~pylibbpf.Link` the caller keeps.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _args, _ffi
from ._ffi import structs
from ._ffi.structs import new_opts
from .attach import Attach
from .enums import AttachType, ProgType, enum_or_int
from .errors import BpfError, StateError, bpffs_error, error_from_errno
from .lowlevel import LOG_MAX, encode_insns

if TYPE_CHECKING:
    from ._handle import Lifetime
    from .info import ProgramInfo
    from .object import Object

_INSN_SIZE = 8
TEST_RUN_OUT_MAX = 64 << 20
"""Largest ``data_size_out``/``ctx_size_out`` :meth:`Program.test_run` allocates: 64 MiB, far
more than any test run writes (a packet of at most a few pages, a context of at most 64 KiB)."""
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


class Program(Attach):
    """A BPF program inside an :class:`~pylibbpf.Object`.  Keeps its object alive."""

    __slots__ = ("_obj", "_life", "_ptr", "_name", "_log_buf", "_insns_buf", "__weakref__")

    def __init__(self, obj: Object, life: Lifetime, ptr: Any) -> None:
        self._obj = obj    # keeps the object (and so this program's memory) alive
        self._life = life  # the object's: open? loaded?
        self._ptr = ptr
        # names are bytes in the ELF: undecodable ones round-trip instead of raising
        self._name: str = _ffi.lib().bpf_program__name(ptr).decode("utf-8", "surrogateescape")
        self._log_buf: Any = None
        self._insns_buf: Any = None

    @property
    def _p(self) -> Any:
        self._life.check()
        return self._ptr

    def _setter(self, what: str) -> Any:
        self._life.require_open(f"{what} of program {self._name!r}")
        return self._ptr

    # ----------------------------------------------------------------------------- getters

    @property
    def object(self) -> Object:
        """The object this program belongs to."""
        return self._obj

    @property
    def name(self) -> str:
        """The program's (C function's) name."""
        self._life.check()
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
            if not self._life.loaded:
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
        kind = _args.non_negative_int(prog_type, "prog_type")
        _ffi.lib().bpf_program__set_type(self._setter("type"), kind)

    def set_expected_attach_type(self, attach_type: AttachType | int) -> None:
        """Override the expected attach type inferred from the section name."""
        kind = _args.non_negative_int(attach_type, "attach_type")
        _ffi.lib().bpf_program__set_expected_attach_type(
            self._setter("expected attach type"), kind)

    def set_attach_target(self, func_name: str | None, attach_prog_fd: int = 0) -> None:
        """Set the BTF attach target (fentry/fexit/freplace/tp_btf/lsm function name)."""
        target = _args.optional_cstr(func_name, "func_name")
        prog_fd = _args.fd(attach_prog_fd, "attach_prog_fd")
        ptr = self._setter("attach target")
        try:
            _ffi.lib().bpf_program__set_attach_target(ptr, prog_fd, target)
        except BpfError as exc:
            raise error_from_errno(exc.errno, f"cannot set the attach target of program "
                                   f"{self._name!r} to {func_name!r}") from None

    def set_flags(self, flags: int) -> None:
        """Set ``prog_flags`` for the load."""
        flags = _args.u32(flags, "flags")
        _ffi.lib().bpf_program__set_flags(self._setter("flags"), flags)

    def set_log_level(self, level: int) -> None:
        """Ask the verifier for a log at ``level`` (1, 2; 4 = stats) during load."""
        level = _args.u32(level, "level")
        _ffi.lib().bpf_program__set_log_level(self._setter("log level"), level)

    def set_log_buf(self, size_or_buffer: int | bytearray) -> None:
        """Give the verifier a buffer for this program's log (a size or a ``bytearray``).

        The buffer is kept alive here until the object is closed; read it with
        :attr:`log_buf`.  The kernel takes at most ``2**30 - 1`` bytes.
        """
        if isinstance(size_or_buffer, int) and not isinstance(size_or_buffer, bool):
            size = _args.in_range(size_or_buffer, "log buffer size", 1, LOG_MAX)
            ptr = self._setter("log buffer")
            buf: Any = ctypes.create_string_buffer(size)
        elif isinstance(size_or_buffer, bytearray) and size_or_buffer:
            _args.in_range(len(size_or_buffer), "log buffer size", 1, LOG_MAX)
            ptr = self._setter("log buffer")
            buf = (ctypes.c_char * len(size_or_buffer)).from_buffer(size_or_buffer)
        else:
            raise TypeError("set_log_buf takes a positive size or a non-empty bytearray")
        _ffi.lib().bpf_program__set_log_buf(ptr, ctypes.addressof(buf), ctypes.sizeof(buf))
        self._log_buf = buf

    def set_ifindex(self, ifindex: int) -> None:
        """Offload target device (hardware offload)."""
        ifindex = _args.u32(ifindex, "ifindex")
        _ffi.lib().bpf_program__set_ifindex(self._setter("ifindex"), ifindex)

    def set_insns(self, insns: bytes) -> None:
        """Replace the program's instructions before load (8 bytes per instruction).

        ``insns`` must be a non-empty multiple of 8 bytes (or :class:`pylibbpf.elf.Instruction`
        objects) of at most 1,000,000 instructions, and no fewer instructions than the program
        has now, else ``ValueError``.  libbpf 1.1 frees the instructions on an empty list (and
        again at close), and at load it patches the object's relocations (map references,
        calls) at their instruction index in the original program: in a shorter one they
        would be written past its end.
        """
        code = encode_insns(insns)
        ptr = self._setter("instructions")
        count = len(code) // _INSN_SIZE
        current = int(_ffi.lib().bpf_program__insn_cnt(ptr))
        if count < current:
            raise ValueError(f"insns: {count} instructions for program {self._name!r}, which "
                             f"has {current}; libbpf applies the object's relocations by "
                             "instruction index at load, so a replacement may not be shorter")
        # libbpf copies the instructions; the buffer is kept with the program all the same
        buf = ctypes.create_string_buffer(code, len(code))
        _ffi.lib().bpf_program__set_insns(ptr, ctypes.addressof(buf), count)
        self._insns_buf = buf

    # ----------------------------------------------------------------------------- pinning

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin the loaded program at ``path`` in a bpffs."""
        raw = _args.cpath(path)
        self._life.require_loaded(f"pinning program {self._name!r}")
        try:
            _ffi.lib().bpf_program__pin(self._p, raw)
        except BpfError as exc:
            raise bpffs_error(exc.errno, f"failed to pin program {self._name!r} at "
                              f"{os.fsdecode(raw)}", raw, pinning=True) from None

    def unpin(self, path: str | os.PathLike[str]) -> None:
        """Remove the pin at ``path``."""
        raw = _args.cpath(path)
        try:
            _ffi.lib().bpf_program__unpin(self._p, raw)
        except BpfError as exc:
            raise error_from_errno(exc.errno, f"failed to unpin program {self._name!r} at "
                                   f"{os.fsdecode(path)}") from None

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
        data = _args.buffer(data_in, "data_in")
        _args.in_range(len(data), "len(data_in)", 0, _args.U32_MAX)
        ctx = None if ctx_in is None else _args.buffer(ctx_in, "ctx_in")
        if ctx is not None:
            _args.in_range(len(ctx), "len(ctx_in)", 0, _args.U32_MAX)
        repeat = _args.non_negative_int(repeat, "repeat")
        flags, cpu = _args.u32(flags, "flags"), _args.u32(cpu, "cpu")
        if data_size_out is not None:
            out_size = _args.in_range(data_size_out, "data_size_out", 0, TEST_RUN_OUT_MAX)
        else:
            out_size = min(len(data) + 256, TEST_RUN_OUT_MAX) if data else 0
        if ctx_size_out is not None:
            ctx_size_out = _args.in_range(ctx_size_out, "ctx_size_out", 0, TEST_RUN_OUT_MAX)
        fd = self.fd
        data_out = ctypes.create_string_buffer(out_size) if out_size else None
        if ctx_size_out is None:
            ctx_size_out = min(len(ctx), TEST_RUN_OUT_MAX) if ctx and self.type in \
                _CTX_OUT_TYPES else 0
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
        got_data = ctypes.string_at(data_out, min(opts.data_size_out, out_size)) \
            if data_out is not None else b""
        got_ctx = ctypes.string_at(ctx_out, min(opts.ctx_size_out, ctx_out_size)) \
            if ctx_out is not None else b""
        return TestRunResult(int(opts.retval), int(opts.duration), got_data, got_ctx)

    def info(self) -> ProgramInfo:
        """The kernel's view of the loaded program (``bpf_obj_get_info_by_fd``)."""
        from .info import ProgramInfo

        return ProgramInfo.from_fd(self.fd)

    def __repr__(self) -> str:
        if self._life.closed:
            return f"<Program {self._name!r} (object closed)>"
        return f"<Program {self._name!r} section={self.section_name!r} type={self.type!r}>"
