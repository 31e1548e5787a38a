"""ctypes codecs for the legacy 32-byte ``union bpf_attr`` and ``struct bpf_map_fd_entry``.

The layouts follow the legacy user header (spec §2): every variant lives in one 32-byte,
8-byte-aligned union, pointers are 64-bit.  The two ``BPF_PROG_ATTACH`` layouts cannot be told
apart from the bytes, so each has its own type and the caller picks the dialect.
"""

from __future__ import annotations

import ctypes
import enum

__all__ = [
    "ATTR_SIZE", "BpfCmd", "Dialect", "MapCreateAttr", "MapElemAttr", "ProgLoadExAttr",
    "RcoreAttachAttr", "ZcoreAttachAttr", "LegacyBpfAttr", "BpfMapFdEntryStruct", "attr_bytes",
]

ATTR_SIZE = 32


class BpfCmd(enum.IntEnum):
    """The legacy ``bpf()`` command numbers (spec §1)."""

    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    MAP_GET_NEXT_KEY = 4
    PROG_LOAD = 5
    PROG_ATTACH = 8
    PROG_DETACH = 9
    PROG_LOAD_EX = 1000


class Dialect(str, enum.Enum):
    """Which legacy kernel's conventions apply: ``rcore`` (``:``, NUL-terminated target,
    ``-errno``) or ``zcore`` (``$``, ``str_len``, every failure ``-ENOEXEC``)."""

    RCORE = "rcore"
    ZCORE = "zcore"


class MapCreateAttr(ctypes.Structure):
    """``BPF_MAP_CREATE``: ``map_type, key_size, value_size, max_entries``."""

    _fields_ = [
        ("map_type", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
    ]


class MapElemAttr(ctypes.Structure):
    """Element commands: ``map_fd``, ``key`` pointer, ``value``/``next_key`` pointer, ``flags``."""

    _fields_ = [
        ("map_fd", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("value", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    ]

    @property
    def next_key(self) -> int:
        """``BPF_MAP_GET_NEXT_KEY`` names the second pointer ``next_key``."""
        return int(self.value)

    @next_key.setter
    def next_key(self, pointer: int) -> None:
        self.value = pointer


class ProgLoadExAttr(ctypes.Structure):
    """``BPF_PROG_LOAD_EX``: ELF pointer and size, then the ``bpf_map_fd_entry`` array."""

    _fields_ = [
        ("prog", ctypes.c_uint64),
        ("prog_size", ctypes.c_uint32),
        ("map_array_len", ctypes.c_uint32),
        ("map_array", ctypes.c_uint64),
    ]


class RcoreAttachAttr(ctypes.Structure):
    """``BPF_PROG_ATTACH``, rcore dialect: NUL-terminated ``target`` pointer, ``prog_fd``."""

    _fields_ = [
        ("target", ctypes.c_uint64),
        ("prog_fd", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
    ]


class ZcoreAttachAttr(ctypes.Structure):
    """``BPF_PROG_ATTACH``, zcore dialect: ``target`` pointer (not NUL-terminated),
    ``str_len``, ``prog_fd``."""

    _fields_ = [
        ("target", ctypes.c_uint64),
        ("str_len", ctypes.c_uint32),
        ("prog_fd", ctypes.c_uint32),
    ]


class LegacyBpfAttr(ctypes.Union):
    """The whole legacy ``union bpf_attr`` (32 bytes, 8-byte aligned)."""

    _fields_ = [
        ("map_create", MapCreateAttr),
        ("map_elem", MapElemAttr),
        ("prog_load_ex", ProgLoadExAttr),
        ("rcore_attach", RcoreAttachAttr),
        ("zcore_attach", ZcoreAttachAttr),
        ("_raw", ctypes.c_uint8 * ATTR_SIZE),
        ("_align", ctypes.c_uint64),
    ]


class BpfMapFdEntryStruct(ctypes.Structure):
    """``struct bpf_map_fd_entry { const char *name; uint32_t fd; }`` (16 bytes)."""

    _fields_ = [
        ("name", ctypes.c_uint64),
        ("fd", ctypes.c_uint32),
    ]


def attr_bytes(attr: object) -> bytes:
    """The raw bytes of ``attr``: a bytes-like object or any ctypes attr variant.

    Raises ``TypeError`` for anything else.  The length is not checked here (see ``sys_bpf``).
    """
    if isinstance(attr, (bytes, bytearray, memoryview)):
        data = bytes(attr)
    elif isinstance(attr, (ctypes.Structure, ctypes.Union, ctypes.Array)):
        data = ctypes.string_at(ctypes.addressof(attr), ctypes.sizeof(attr))
    else:
        raise TypeError(f"attr must be bytes or a ctypes attr object, not {type(attr).__name__}")
    return data
