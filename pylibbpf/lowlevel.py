"""BPF system calls on file descriptors: pylibbpf's counterpart of libbpf's ``bpf.h``.

Where :class:`~pylibbpf.Map` and :class:`~pylibbpf.Object` own their resources, these functions
work on plain fds and hand new fds to the caller, who closes them (``os.close``)::

    fd = lowlevel.map_create(MapType.ARRAY, 4, 8, 16)
    lowlevel.map_update_elem(fd, (3).to_bytes(4, "little"), bytes(8))
    prog = lowlevel.prog_load(ProgType.TRACEPOINT, insns, license="GPL", name="count")

Every element call first asks the kernel for the map's key and value sizes
(``BPF_OBJ_GET_INFO_BY_FD``) and checks its arguments against them, so a wrong size can never let
the kernel read or write past a Python buffer.  That costs one extra syscall per call: for a hot
loop, wrap the fd in :meth:`pylibbpf.Map.from_fd`, which checks the sizes once.

Values of per-CPU maps are the kernel's raw layout: one 8-byte aligned slot per possible CPU.
Failures raise :class:`~pylibbpf.BpfError` (``errno`` kept), :class:`KeyError` for a missing key,
:class:`~pylibbpf.VerifierError` with the whole log when the verifier refuses a program, and
``ValueError``/``TypeError`` for arguments that are wrong before any call is made.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import platform
import re
from collections.abc import Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

from . import _args, _ffi
from ._ffi import structs
from ._ffi.structs import new_opts
from .enums import AttachType, MapType, ProgType, enum_or_int
from .errors import ENOTSUPP, BpfError, VerifierError, error_from_errno
from .maps._elements import FdElements, MapLayout, layout_of, to_bytes

if TYPE_CHECKING:
    from .elf.insn import Instruction

__all__ = [
    "MapLayout", "kernel_version_code", "link_create", "map_create", "map_delete_elem",
    "map_get_next_key", "map_layout", "map_lookup_elem", "map_update_elem", "prog_attach",
    "prog_detach", "prog_load", "TaskFdInfo", "task_fd_query", "to_bytes",
]

_INSN_SIZE = 8
_LOG_START = 64 << 10
LOG_MAX = _args.U32_MAX >> 2  # the kernel refuses larger verifier log buffers (EINVAL)
_LOG_GROWTH = 8
_TRACING_CAPS = ("CAP_BPF", "CAP_PERFMON")


def _name_of(cls: Any, value: int) -> str:
    kind = enum_or_int(cls, value)
    return str(getattr(kind, "name", kind))


# ------------------------------------------------------------------------------------- maps

def map_create(map_type: MapType | int, key_size: int, value_size: int, max_entries: int,
               *, name: str | None = None, flags: int = 0, inner_map_fd: int | None = None,
               numa_node: int | None = None, map_extra: int = 0, btf_fd: int = 0,
               btf_key_type_id: int = 0, btf_value_type_id: int = 0) -> int:
    """Create a map (``bpf_map_create``); returns its fd, which the caller owns."""
    kind = _args.non_negative_int(map_type, "map_type")
    sizes = [_args.u32(v, w) for v, w in ((key_size, "key_size"), (value_size, "value_size"),
                                           (max_entries, "max_entries"))]
    encoded_name = _args.obj_name(name, "name")
    fields: dict[str, Any] = {"map_flags": _args.u32(flags, "flags"),
                              "map_extra": _args.u64(map_extra, "map_extra")}
    if inner_map_fd is not None:
        fields["inner_map_fd"] = _args.fd(inner_map_fd, "inner_map_fd")
    if numa_node is not None:
        fields["numa_node"] = _args.u32(numa_node, "numa_node")
    btf_fd = _args.fd(btf_fd, "btf_fd")
    key_type_id = _args.u32(btf_key_type_id, "btf_key_type_id")
    value_type_id = _args.u32(btf_value_type_id, "btf_value_type_id")
    if btf_fd:
        fields.update(btf_fd=btf_fd, btf_key_type_id=key_type_id,
                      btf_value_type_id=value_type_id)
    opts = new_opts(structs.bpf_map_create_opts, **fields)
    label = name or ""
    try:
        return int(_ffi.lib().bpf_map_create(kind, encoded_name, *sizes, ctypes.byref(opts)))
    except BpfError as exc:
        raise error_from_errno(
            exc.errno, f"failed to create {_name_of(MapType, kind)} map {label!r} "
            f"(key {key_size}, value {value_size}, max_entries {max_entries})") from None


_known_maps: dict[int, tuple[int, int, int, int, int]] = {}
_KNOWN_MAPS_MAX = 4096


def _is_map_fd(fd: int) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:bpf-map"
    except OSError:
        return True  # no procfs: the kernel still refuses a non-map fd before touching memory


def map_layout(fd: int) -> MapLayout:
    """The sizes an element call on map ``fd`` needs (one ``BPF_OBJ_GET_INFO_BY_FD``).

    A fd that is not a BPF map raises :class:`~pylibbpf.BpfError` with errno EINVAL (what the
    kernel answers to a map command on it), a closed one EBADF.
    """
    fd = _args.fd(fd, "map fd")
    info = structs.bpf_map_info()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    try:
        _ffi.lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size))
    except BpfError as exc:
        # BPF_OBJ_GET_INFO_BY_FD says EBADFD for a closed fd, map commands say EBADF
        err = _errno.EBADF if exc.errno == _errno.EBADFD else exc.errno
        raise error_from_errno(err, f"fd {fd} is not a usable BPF map") from None
    kind, ks, vs = int(info.type), int(info.key_size), int(info.value_size)
    # BPF_OBJ_GET_INFO_BY_FD also answers for programs, BTF and links (with their own
    # layout), so the fd's kind is checked through procfs; the answer is remembered for an fd
    # as long as the same map (id and sizes) is behind it.
    seen = (kind, int(info.id), ks, vs, int(info.max_entries))
    if _known_maps.get(fd) != seen:
        if not _is_map_fd(fd):
            _known_maps.pop(fd, None)
            raise BpfError(_errno.EINVAL, f"fd {fd} is not a BPF map")
        if len(_known_maps) >= _KNOWN_MAPS_MAX:
            _known_maps.clear()
        _known_maps[fd] = seen
    return layout_of(kind, ks, vs)


def _elements(fd: int) -> FdElements:
    return FdElements(fd, map_layout(fd))


def map_lookup_elem(fd: int, key: Any, value_size: int | None = None, flags: int = 0) -> bytes:
    """The value at ``key`` (``bpf_map_lookup_elem``); :class:`KeyError` when absent.

    ``value_size``, when given, must be the map's value size (a check of the caller's idea of
    the map); the result has :attr:`MapLayout.value_bytes` bytes.
    """
    flags = _args.u64(flags, "flags")
    if value_size is not None:
        value_size = _args.u32(value_size, "value_size")
    layout = map_layout(fd)
    if value_size is not None and value_size != layout.value_size:
        raise ValueError(f"map fd {fd} has {layout.value_size}-byte values, not {value_size}")
    value: bytes = FdElements(fd, layout).lookup(key, flags)
    return value


def map_update_elem(fd: int, key: Any, value: Any, flags: int = 0) -> None:
    """Store ``value`` at ``key`` (``bpf_map_update_elem``); ``flags``: ANY (0), NOEXIST (1),
    EXIST (2), F_LOCK (4).  Errors keep the kernel's errno: E2BIG for a full map or an index
    past an array's end, EEXIST/ENOENT for NOEXIST/EXIST."""
    flags = _args.u64(flags, "flags")
    _elements(fd).update(key, value, flags)


def map_delete_elem(fd: int, key: Any) -> None:
    """Remove ``key`` (``bpf_map_delete_elem``); :class:`KeyError` when absent (array maps
    refuse every delete with EINVAL)."""
    _elements(fd).delete(key)


def map_get_next_key(fd: int, key: Any = None, key_size: int | None = None) -> bytes | None:
    """The key after ``key`` (``bpf_map_get_next_key``), or ``None`` after the last key.

    ``key=None`` gives the first key; so does a key that is not in the map (the kernel's rule).
    ``key_size``, when given, must be the map's key size.
    """
    if key_size is not None:
        key_size = _args.u32(key_size, "key_size")
    layout = map_layout(fd)
    if key_size is not None and key_size != layout.key_size:
        raise ValueError(f"map fd {fd} has {layout.key_size}-byte keys, not {key_size}")
    return FdElements(fd, layout).get_next_key(key)


# ------------------------------------------------------------------------------------- programs

@cache
def kernel_version_code() -> int:
    """``LINUX_VERSION_CODE`` of the running kernel (what kprobe programs had to pass as
    ``kern_version`` before Linux 5.0; later kernels ignore it)."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", platform.release())
    if match is None:
        return 0
    major, minor, patch = (int(g or 0) for g in match.groups())
    return (major << 16) + (minor << 8) + min(patch, 255)


def encode_insns(insns: bytes | bytearray | memoryview | Iterable[Instruction],
                 what: str = "insns") -> bytes:
    """A program's instructions as the kernel reads them: checked to be a non-empty multiple of
    8 bytes and at most :data:`pylibbpf._args.MAX_INSNS` instructions (``ValueError``)."""
    if isinstance(insns, (bytes, bytearray, memoryview)):
        code = _args.buffer(insns, what)
    elif isinstance(insns, (str, int)) or not hasattr(insns, "__iter__"):
        raise TypeError(f"{what} must be bytes or Instructions, not {type(insns).__name__}")
    else:
        from .elf.errors import ElfError
        from .elf.insn import Instruction, encode

        items = list(insns)
        bad = next((i for i in items if not isinstance(i, Instruction)), None)
        if bad is not None:
            raise TypeError(f"{what} must be bytes or pylibbpf.elf Instructions, not "
                            f"{type(bad).__name__}")
        try:
            code = encode(items)
        except ElfError as exc:
            raise ValueError(f"cannot encode the instructions: {exc}") from None
    if not code or len(code) % _INSN_SIZE:
        raise ValueError(f"{what}: a program is a non-empty multiple of {_INSN_SIZE} bytes, "
                         f"not {len(code)} bytes")
    if len(code) > _args.MAX_INSNS * _INSN_SIZE:
        raise ValueError(f"{what}: {len(code) // _INSN_SIZE} instructions; the kernel loads at "
                         f"most {_args.MAX_INSNS}")
    return code


def prog_load(prog_type: ProgType | int,
              insns: bytes | bytearray | memoryview | Iterable[Instruction], *,
              license: str, name: str | None = None,
              expected_attach_type: AttachType | int = 0, kern_version: int | None = None,
              prog_flags: int = 0, log_level: int = 0, prog_btf_fd: int = 0,
              prog_ifindex: int = 0, attach_btf_id: int = 0, attach_btf_obj_fd: int = 0,
              attach_prog_fd: int = 0, fd_array: Sequence[int] | None = None,
              log_out: list[str] | None = None) -> int:
    """Load a program (``bpf_prog_load``); returns its fd, which the caller owns.

    ``insns`` is the encoded program (a multiple of 8 bytes) or :class:`pylibbpf.elf.Instruction`
    objects.  ``kern_version=None`` passes the running kernel's version code.  When the load
    fails, it is retried once with a verifier log (the buffer grows while the kernel says ENOSPC)
    and :class:`~pylibbpf.VerifierError` carries the whole log; a failure without a log (e.g.
    EPERM) raises the matching :class:`~pylibbpf.BpfError`.  With ``log_level > 0`` the log is
    requested from the start.  ``log_out``, if given, receives the text of the last log read.
    """
    code = encode_insns(insns)
    ptype = _args.non_negative_int(prog_type, "prog_type")
    encoded_name = _args.obj_name(name, "name")
    label = name or ""
    encoded_license = _args.cstr(license, "license")
    if not encoded_license:
        raise ValueError("license must be a non-empty string such as 'GPL'")
    fields: dict[str, Any] = {
        "expected_attach_type": _args.non_negative_int(expected_attach_type,
                                                       "expected_attach_type"),
        "kern_version": _args.u32(kernel_version_code() if kern_version is None
                                  else kern_version, "kern_version"),
        "prog_flags": _args.u32(prog_flags, "prog_flags"),
        "prog_btf_fd": _args.fd(prog_btf_fd, "prog_btf_fd"),
        "prog_ifindex": _args.u32(prog_ifindex, "prog_ifindex"),
        "attach_btf_id": _args.u32(attach_btf_id, "attach_btf_id"),
        "attach_btf_obj_fd": _args.fd(attach_btf_obj_fd, "attach_btf_obj_fd"),
        "attach_prog_fd": _args.fd(attach_prog_fd, "attach_prog_fd"),
    }
    level = _args.u32(log_level, "log_level")
    if log_out is not None and not isinstance(log_out, list):
        raise TypeError(f"log_out must be a list, not {type(log_out).__name__}")
    fds = None
    if fd_array is not None:
        if isinstance(fd_array, (str, bytes)) or not isinstance(fd_array, Sequence):
            raise TypeError(f"fd_array must be a sequence of fds, not "
                            f"{type(fd_array).__name__}")
        entries = [_args.fd(f, "fd_array entry") for f in fd_array]
        fds = (ctypes.c_int * max(len(entries), 1))(*entries)
    buffer = ctypes.create_string_buffer(code, len(code))
    what = f"{_name_of(ProgType, ptype)} program {label!r}"

    def attempt(level: int, log: ctypes.Array[ctypes.c_char] | None) -> tuple[int, int]:
        opts = new_opts(structs.bpf_prog_load_opts, log_level=level,
                        log_size=0 if log is None else len(log), **fields)
        if log is not None:
            opts.log_buf = ctypes.cast(log, ctypes.POINTER(ctypes.c_char))
        if fds is not None:
            opts.fd_array = ctypes.cast(fds, ctypes.POINTER(ctypes.c_int))
        try:
            fd = _ffi.lib().bpf_prog_load(ptype, encoded_name, encoded_license,
                                          buffer, len(code) // _INSN_SIZE, ctypes.byref(opts))
        except BpfError as exc:
            return -1, exc.errno or _errno.EINVAL
        return int(fd), 0

    if level == 0:
        fd, err = attempt(0, None)
        if fd >= 0:
            return fd
        level = 1
    size = _LOG_START
    while True:
        log = ctypes.create_string_buffer(size)
        fd, err = attempt(level, log)
        text = log.value.decode("utf-8", "replace")
        if err != _errno.ENOSPC or size >= LOG_MAX:
            break
        size = min(size * _LOG_GROWTH, LOG_MAX)
    if log_out is not None:
        log_out.append(text)
    if fd >= 0:
        return fd
    if text.strip():
        raise VerifierError(err, f"the verifier rejected {what}", label, text)
    raise error_from_errno(err, f"failed to load {what}", _TRACING_CAPS)


# ------------------------------------------------------------------------------------- attach

def link_create(prog_fd: int, target_fd: int, attach_type: AttachType | int, *,
                flags: int = 0, cookie: int = 0) -> int:
    """Create a BPF link (``bpf_link_create``) of ``prog_fd`` to ``target_fd`` (a perf event,
    cgroup, netns, ... fd); returns the link fd, which the caller owns.  ``cookie`` is the BPF
    cookie of a perf-event link (``bpf_get_attach_cookie``)."""
    prog_fd = _args.fd(prog_fd, "prog_fd")
    target_fd = _args.fd(target_fd, "target_fd")
    kind = _args.non_negative_int(attach_type, "attach_type")
    fields: dict[str, Any] = {"flags": _args.u32(flags, "flags")}
    cookie = _args.u64(cookie, "cookie")
    if cookie and kind != AttachType.PERF_EVENT:
        raise ValueError("a cookie is only supported for perf-event links here")
    opts = new_opts(structs.bpf_link_create_opts, **fields)
    opts.perf_event.bpf_cookie = cookie
    try:
        return int(_ffi.lib().bpf_link_create(prog_fd, target_fd, kind, ctypes.byref(opts)))
    except BpfError as exc:
        raise error_from_errno(exc.errno, f"failed to link program fd {prog_fd} to fd "
                               f"{target_fd} as {_name_of(AttachType, kind)}",
                               _TRACING_CAPS) from None


def prog_attach(prog_fd: int, target_fd: int, attach_type: AttachType | int,
                flags: int = 0) -> None:
    """Attach ``prog_fd`` to ``target_fd`` without a link (``bpf_prog_attach``: cgroups,
    sockmaps, ...); undone by :func:`prog_detach`."""
    prog_fd = _args.fd(prog_fd, "prog_fd")
    target_fd = _args.fd(target_fd, "target_fd")
    kind = _args.non_negative_int(attach_type, "attach_type")
    flags = _args.u32(flags, "flags")
    try:
        _ffi.lib().bpf_prog_attach(prog_fd, target_fd, kind, flags)
    except BpfError as exc:
        raise error_from_errno(exc.errno, f"failed to attach program fd {prog_fd} to fd "
                               f"{target_fd} as {_name_of(AttachType, kind)}",
                               ("CAP_BPF", "CAP_NET_ADMIN")) from None


def prog_detach(prog_fd: int, target_fd: int, attach_type: AttachType | int) -> None:
    """Undo :func:`prog_attach` (``bpf_prog_detach2``)."""
    prog_fd = _args.fd(prog_fd, "prog_fd")
    target_fd = _args.fd(target_fd, "target_fd")
    kind = _args.non_negative_int(attach_type, "attach_type")
    try:
        _ffi.lib().bpf_prog_detach2(prog_fd, target_fd, kind)
    except BpfError as exc:
        raise error_from_errno(exc.errno, f"failed to detach program fd {prog_fd} from fd "
                               f"{target_fd} ({_name_of(AttachType, kind)})",
                               ("CAP_BPF", "CAP_NET_ADMIN")) from None


# ------------------------------------------------------------------------------ attachments

_FD_TYPES = ("raw_tracepoint", "tracepoint", "kprobe", "kretprobe", "uprobe", "uretprobe")
_TASK_FD_NAME_MAX = 4096


class TaskFdInfo(NamedTuple):
    """What ``BPF_TASK_FD_QUERY`` says of a perf event or raw tracepoint fd with a program.

    ``fd_type`` is one of ``raw_tracepoint``, ``tracepoint``, ``kprobe``, ``kretprobe``,
    ``uprobe``, ``uretprobe``; ``name`` is the tracepoint, the probed symbol or the probed
    file (empty for a kprobe given by address); ``probe_offset`` and ``probe_addr`` are the
    kprobe offset and address, or the uprobe's offset in the file.
    """

    prog_id: int
    fd_type: str
    name: str
    probe_offset: int
    probe_addr: int


def task_fd_query(pid: int, fd: int) -> TaskFdInfo | None:
    """The BPF program attached through fd ``fd`` of process ``pid`` (``bpf_task_fd_query``),
    or ``None`` when that fd is no perf event or raw tracepoint with a program (what
    ``bpftool perf`` lists).  Works for attachments made before BPF links existed for perf
    events (Linux 5.15) as well as for the perf event a link holds."""
    pid = _args.non_negative_int(pid, "pid")
    fd = _args.fd(fd)
    name = ctypes.create_string_buffer(_TASK_FD_NAME_MAX)
    length, prog_id, fd_type = ctypes.c_uint32(_TASK_FD_NAME_MAX), ctypes.c_uint32(), \
        ctypes.c_uint32()
    offset, addr = ctypes.c_uint64(), ctypes.c_uint64()
    try:
        _ffi.lib().bpf_task_fd_query(pid, fd, 0, name, ctypes.byref(length),
                                     ctypes.byref(prog_id), ctypes.byref(fd_type),
                                     ctypes.byref(offset), ctypes.byref(addr))
    except BpfError as exc:
        if exc.errno in (_errno.ENOENT, ENOTSUPP, _errno.EOPNOTSUPP):
            return None  # no program behind it, or not a kind of fd that can have one
        raise error_from_errno(exc.errno, f"BPF_TASK_FD_QUERY of fd {fd} in process {pid} "
                               "failed", ("CAP_SYS_ADMIN",)) from None
    kind = fd_type.value
    return TaskFdInfo(prog_id.value, _FD_TYPES[kind] if kind < len(_FD_TYPES) else str(kind),
                      name.value.decode(errors="replace"), offset.value, addr.value)
