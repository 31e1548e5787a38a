"""compat: run code written for the legacy rCore/zCore ("latte-c") eBPF interface on Linux.

The names mirror the legacy user library::

    import compat
    map_fd = compat.bpf_create_map(compat.BPF_MAP_TYPE_ARRAY, 4, 8, 1)
    prog_fd = compat.bpf_prog_load_ex(open("map.o", "rb").read(), [("map_fd", map_fd)])
    compat.bpf_prog_attach("kprobe:<rcore::syscall::Syscall>::sys_fork", prog_fd)

``sys_bpf`` is the raw legacy system call; :mod:`compat.attr` has its ctypes layouts.  See
``docs/migrating-from-latte-c.md`` for what each call becomes in plain pylibbpf code.
"""

from __future__ import annotations

from .api import (
    bpf_prog_attach,
    bpf_prog_attach_zcore,
    bpf_prog_detach,
    bpf_prog_load_ex,
    release_program,
    sys_bpf,
)
from .attr import (
    BpfCmd,
    BpfMapFdEntryStruct,
    Dialect,
    LegacyBpfAttr,
    MapCreateAttr,
    MapElemAttr,
    ProgLoadExAttr,
    RcoreAttachAttr,
    ZcoreAttachAttr,
)
from .backends import Attachment, attachments, detach_all
from .context import Backend
from .errors import LegacyError, LegacyVerifierError, RewriteError
from .loader import BpfMapFdEntry, loaded_programs
from .maps import (
    BPF_ANY,
    BPF_EXIST,
    BPF_MAP_TYPE_ARRAY,
    BPF_MAP_TYPE_HASH,
    BPF_NOEXIST,
    MissingKeyError,
    bpf_create_map,
    bpf_delete_elem,
    bpf_get_next_key,
    bpf_lookup_elem,
    bpf_update_elem,
)
from .targets import AttachPoint, Phase, Target, demangle, parse_target, register_symbol

__all__ = [
    "BPF_ANY", "BPF_EXIST", "BPF_MAP_TYPE_ARRAY", "BPF_MAP_TYPE_HASH", "BPF_NOEXIST",
    "AttachPoint", "Attachment", "Backend", "BpfCmd", "BpfMapFdEntry", "BpfMapFdEntryStruct",
    "Dialect", "LegacyBpfAttr", "LegacyError", "LegacyVerifierError", "MapCreateAttr",
    "MapElemAttr", "MissingKeyError", "Phase", "ProgLoadExAttr", "RcoreAttachAttr",
    "RewriteError", "Target", "ZcoreAttachAttr", "attachments", "bpf_create_map",
    "bpf_delete_elem", "bpf_get_next_key", "bpf_lookup_elem", "bpf_prog_attach",
    "bpf_prog_attach_zcore", "bpf_prog_detach", "bpf_prog_load_ex", "bpf_update_elem",
    "demangle", "detach_all", "loaded_programs", "parse_target", "register_symbol",
    "release_program", "sys_bpf",
]
