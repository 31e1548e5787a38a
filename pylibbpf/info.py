"""What the kernel reports about programs, maps and links (``BPF_OBJ_GET_INFO_BY_FD``),
and iteration over everything loaded in the system (``BPF_*_GET_NEXT_ID``)."""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from . import _args, _ffi
from ._ffi import structs
from .enums import AttachType, LinkType, MapType, ProgType, enum_or_int
from .errors import BpfError, error_from_errno

_S = TypeVar("_S", bound=ctypes.Structure)


def _get_info(fd: int, info: _S, what: str) -> _S:
    fd = _args.fd(fd)
    size = ctypes.c_uint32(ctypes.sizeof(info))
    try:
        _ffi.lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size))
    except BpfError as exc:
        raise error_from_errno(exc.errno, f"failed to get {what} info of fd {fd}") from None
    return info


@dataclass(frozen=True)
class ProgramInfo:
    """A loaded program as the kernel describes it."""

    id: int
    name: str
    type: ProgType | int
    tag: str
    map_ids: tuple[int, ...]
    xlated_prog_len: int
    jited_prog_len: int
    load_time: int
    created_by_uid: int
    btf_id: int
    gpl_compatible: bool
    run_time_ns: int
    run_cnt: int
    verified_insns: int
    xlated_insns: bytes = field(repr=False)
    jited_insns: bytes = field(repr=False)

    @classmethod
    def from_fd(cls, fd: int) -> ProgramInfo:
        """Query the program behind ``fd``, with its translated and jited instructions."""
        first = _get_info(fd, structs.bpf_prog_info(), "program")
        nmaps = first.nr_map_ids
        xlated = ctypes.create_string_buffer(first.xlated_prog_len)
        jited = ctypes.create_string_buffer(first.jited_prog_len)
        map_ids = (ctypes.c_uint32 * max(nmaps, 1))()
        second = structs.bpf_prog_info()
        second.xlated_prog_len = first.xlated_prog_len
        second.xlated_prog_insns = ctypes.addressof(xlated) if first.xlated_prog_len else 0
        second.jited_prog_len = first.jited_prog_len
        second.jited_prog_insns = ctypes.addressof(jited) if first.jited_prog_len else 0
        second.nr_map_ids = nmaps
        second.map_ids = ctypes.addressof(map_ids) if nmaps else 0
        info = _get_info(fd, second, "program")
        return cls(
            id=info.id, name=info.name.decode(errors="replace"),
            type=enum_or_int(ProgType, info.type), tag=bytes(info.tag).hex(),
            map_ids=tuple(map_ids[: min(nmaps, info.nr_map_ids)]),
            xlated_prog_len=first.xlated_prog_len, jited_prog_len=first.jited_prog_len,
            load_time=info.load_time, created_by_uid=info.created_by_uid, btf_id=info.btf_id,
            gpl_compatible=bool(info.gpl_compatible), run_time_ns=info.run_time_ns,
            run_cnt=info.run_cnt, verified_insns=info.verified_insns,
            xlated_insns=xlated.raw[: min(first.xlated_prog_len, info.xlated_prog_len)],
            jited_insns=jited.raw[: min(first.jited_prog_len, info.jited_prog_len)],
        )


    def disassemble(self) -> str:
        """The translated (post-verifier) instructions as text, one per line, numbered by slot
        like ``bpftool prog dump xlated`` (operands in ``llvm-objdump`` syntax)."""
        from .elf import decode, format_instruction

        lines = []
        slot = 0
        for insn in decode(self.xlated_insns):
            lines.append(f"{slot:>5}: {format_instruction(insn)}")
            slot += insn.slots
        return "\n".join(lines)


@dataclass(frozen=True)
class MapInfo:
    """A map as the kernel describes it."""

    id: int
    name: str
    type: MapType | int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    btf_id: int
    btf_key_type_id: int
    btf_value_type_id: int
    map_extra: int

    @classmethod
    def from_fd(cls, fd: int) -> MapInfo:
        """Query the map behind ``fd``."""
        info = _get_info(fd, structs.bpf_map_info(), "map")
        return cls(id=info.id, name=info.name.decode(errors="replace"),
                   type=enum_or_int(MapType, info.type), key_size=info.key_size,
                   value_size=info.value_size, max_entries=info.max_entries,
                   map_flags=info.map_flags, btf_id=info.btf_id,
                   btf_key_type_id=info.btf_key_type_id,
                   btf_value_type_id=info.btf_value_type_id, map_extra=info.map_extra)


@dataclass(frozen=True)
class LinkInfo:
    """A link as the kernel describes it; ``details`` holds the per-type fields."""

    id: int
    type: LinkType | int
    prog_id: int
    details: dict[str, Any]

    @classmethod
    def from_fd(cls, fd: int) -> LinkInfo:
        """Query the link behind ``fd``."""
        name_buf = ctypes.create_string_buffer(256)
        info = structs.bpf_link_info()
        kind = _get_info(fd, structs.bpf_link_info(), "link").type
        if kind == LinkType.RAW_TRACEPOINT:
            info.raw_tracepoint.tp_name = ctypes.addressof(name_buf)
            info.raw_tracepoint.tp_name_len = 256
        elif kind == LinkType.ITER:
            info.iter.target_name = ctypes.addressof(name_buf)
            info.iter.target_name_len = 256
        info = _get_info(fd, info, "link")
        details: dict[str, Any] = {}
        if kind == LinkType.RAW_TRACEPOINT:
            details["tp_name"] = name_buf.value.decode()
        elif kind == LinkType.TRACING:
            details.update(attach_type=enum_or_int(AttachType, info.tracing.attach_type),
                           target_obj_id=info.tracing.target_obj_id,
                           target_btf_id=info.tracing.target_btf_id)
        elif kind == LinkType.CGROUP:
            details.update(cgroup_id=info.cgroup.cgroup_id,
                           attach_type=enum_or_int(AttachType, info.cgroup.attach_type))
        elif kind == LinkType.ITER:
            details.update(target_name=name_buf.value.decode(), map_id=info.iter.map.map_id)
        elif kind == LinkType.NETNS:
            details.update(netns_ino=info.netns.netns_ino,
                           attach_type=enum_or_int(AttachType, info.netns.attach_type))
        elif kind == LinkType.XDP:
            details["ifindex"] = info.xdp.ifindex
        return cls(id=info.id, type=enum_or_int(LinkType, info.type), prog_id=info.prog_id,
                   details=details)


@dataclass(frozen=True)
class BtfInfo:
    """A BTF object the kernel holds: an object's BTF loaded with its programs and maps, or
    the kernel's own (``kernel_btf``: vmlinux or a module, ``name`` says which)."""

    id: int
    name: str
    size: int
    kernel_btf: bool

    @classmethod
    def from_fd(cls, fd: int) -> BtfInfo:
        """Query the BTF object behind ``fd``."""
        name = ctypes.create_string_buffer(64)
        info = structs.bpf_btf_info(name=ctypes.addressof(name), name_len=len(name))
        try:
            info = _get_info(fd, info, "BTF")
        except BpfError as exc:
            if exc.errno != _errno.E2BIG:
                raise
            # before Linux 5.11 the kernel's bpf_btf_info ends before name, name_len and
            # kernel_btf, and a non-zero byte past its end is E2BIG: ask without them
            info = _get_info(fd, structs.bpf_btf_info(), "BTF")
        return cls(id=info.id, name=name.value.decode(errors="replace"), size=info.btf_size,
                   kernel_btf=bool(info.kernel_btf))


def btf_raw_data(fd: int) -> bytes:
    """The bytes of the BTF object behind ``fd`` (for a module's BTF, its split part)."""
    size = _get_info(fd, structs.bpf_btf_info(), "BTF").btf_size
    data = ctypes.create_string_buffer(max(size, 1))
    info = structs.bpf_btf_info(btf=ctypes.addressof(data), btf_size=size)
    info = _get_info(fd, info, "BTF")
    return data.raw[:min(size, info.btf_size)]


_Kind = Literal["prog", "map", "link", "btf"]
_WHAT = {"prog": "program", "map": "map", "link": "link", "btf": "BTF object"}


def fd_by_id(kind: _Kind, object_id: int) -> int:
    """A new fd of the program, map, link or BTF object with kernel id ``object_id`` (the
    caller closes it).  An id nothing has raises :class:`~pylibbpf.BpfError` with ENOENT."""
    object_id = _args.u32(object_id, f"{kind} id")
    try:
        return int(getattr(_ffi.lib(), f"bpf_{kind}_get_fd_by_id")(object_id))
    except BpfError as exc:
        what = _WHAT[kind]
        if exc.errno == _errno.ENOENT:
            raise BpfError(_errno.ENOENT, f"there is no {what} with id {object_id}") from None
        raise error_from_errno(exc.errno, f"failed to open {what} id {object_id}",
                               ("CAP_SYS_ADMIN",)) from None


def fd_by_pin(path: str | os.PathLike[str]) -> int:
    """A new fd of the object pinned at ``path`` in bpffs (the caller closes it)."""
    raw = os.fsencode(path)
    try:
        return int(_ffi.lib().bpf_obj_get(raw))
    except BpfError as exc:
        raise error_from_errno(exc.errno, f"failed to open the object pinned at "
                               f"{os.fsdecode(raw)}") from None


def _ids(func: str) -> Iterator[int]:
    lib = _ffi.lib()
    getter = getattr(lib, func)
    current = 0
    next_id = ctypes.c_uint32()
    while True:
        rc = getter(current, ctypes.byref(next_id))
        if rc < 0:
            err = -rc
            if err == _errno.ENOENT:
                return
            raise error_from_errno(err, f"{func} failed", ("CAP_SYS_ADMIN",))
        current = next_id.value
        yield current


def _each(id_func: str, fd_func: str, make: Callable[[int], Any]) -> Iterator[Any]:
    for object_id in _ids(id_func):
        try:
            fd = getattr(_ffi.lib(), fd_func)(object_id)
        except BpfError as exc:
            if exc.errno == _errno.ENOENT:
                continue  # unloaded between the two calls
            raise error_from_errno(exc.errno, f"{fd_func}({object_id}) failed",
                                   ("CAP_SYS_ADMIN",)) from None
        try:
            yield make(fd)
        finally:
            os.close(fd)


def program_run_stats(fd: int) -> tuple[int, int]:
    """``(run_cnt, run_time_ns)`` of the program behind ``fd`` (counted while
    ``kernel.bpf_stats_enabled`` is 1): one ``BPF_OBJ_GET_INFO_BY_FD`` that copies no
    instructions, cheap enough for every scrape of an exporter."""
    info = _get_info(fd, structs.bpf_prog_info(), "program")
    return int(info.run_cnt), int(info.run_time_ns)


def program_ids() -> Iterator[int]:
    """Ids of every program loaded in the system."""
    return _ids("bpf_prog_get_next_id")


def map_ids() -> Iterator[int]:
    """Ids of every map in the system."""
    return _ids("bpf_map_get_next_id")


def link_ids() -> Iterator[int]:
    """Ids of every link in the system."""
    return _ids("bpf_link_get_next_id")


def btf_ids() -> Iterator[int]:
    """Ids of every BTF object the kernel holds."""
    return _ids("bpf_btf_get_next_id")


def loaded_programs() -> Iterator[ProgramInfo]:
    """Info on every program loaded in the system (like ``bpftool prog show``)."""
    return _each("bpf_prog_get_next_id", "bpf_prog_get_fd_by_id", ProgramInfo.from_fd)


def loaded_maps() -> Iterator[MapInfo]:
    """Info on every map in the system (like ``bpftool map show``)."""
    return _each("bpf_map_get_next_id", "bpf_map_get_fd_by_id", MapInfo.from_fd)


def loaded_links() -> Iterator[LinkInfo]:
    """Info on every link in the system (like ``bpftool link show``)."""
    return _each("bpf_link_get_next_id", "bpf_link_get_fd_by_id", LinkInfo.from_fd)
