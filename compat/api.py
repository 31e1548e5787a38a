"""The legacy user library's calls (``bpf.h``/``bpf.c`` of latte-c) and the raw ``sys_bpf``.

This layer sits above :mod:`compat.loader` (programs) and :mod:`compat.backends`
(attachments, which use programs): what needs both, such as releasing a program that is still
attached, happens here, so that the loader never reaches up to the backends.

The high-level functions raise :class:`~compat.errors.LegacyError` (an ``OSError``) carrying the
legacy kernel's errno; :func:`sys_bpf` returns what the legacy kernel returned instead: an fd or
0, or ``-errno`` (rcore) / ``-ENOEXEC`` for every failure (zcore).
"""

from __future__ import annotations

import errno as _errno
import struct
from typing import Any

from . import _kernel
from .attr import ATTR_SIZE, BpfCmd, Dialect, attr_bytes
from .backends import Attachment, attach, detach, detach_all
from .context import Backend
from .errors import LegacyError
from .loader import load_legacy, program_for_fd, unregister_program
from .maps import legacy_map_create, legacy_map_elem_op
from .targets import parse_target

__all__ = ["bpf_prog_load_ex", "bpf_prog_attach", "bpf_prog_attach_zcore", "bpf_prog_detach",
           "release_program", "sys_bpf"]

_MAX_ELF = 64 << 20
_MAX_MAP_ARRAY = 4096
_MAX_NAME = 256


def bpf_prog_load_ex(elf_bytes: bytes | bytearray | memoryview, map_array: Any = ()) -> int:
    """Load a legacy (or libbpf-openable) object; returns the program fd.

    ``map_array``: ``(name, fd)`` pairs, :class:`~compat.BpfMapFdEntry` objects, or a mapping
    name -> fd; every name must match exactly one symbol of the ELF (else ENOENT).
    """
    if not isinstance(elf_bytes, (bytes, bytearray, memoryview)):
        raise TypeError(f"elf_bytes must be bytes, not {type(elf_bytes).__name__}")
    return load_legacy(bytes(elf_bytes), map_array)


def _check_prog_fd(prog_fd: int) -> None:
    if program_for_fd(prog_fd) is None:
        raise LegacyError(_errno.ENOENT, f"fd {prog_fd} is not a program bpf_prog_load_ex "
                          "returned")


def bpf_prog_attach(target: str | bytes, prog_fd: int, *,
                    backend: Backend | str | None = None) -> Attachment:
    """Attach (rcore dialect): ``target`` is ``"kprobe:<symbol>"``,
    ``"kretprobe@entry:<symbol>"`` or ``"kretprobe@exit:<symbol>"``.

    Checks in the legacy order: prog fd (ENOENT), grammar (EINVAL), symbol (ENOENT); a second
    attach of the same program at the same point is EAGAIN.  ``backend`` overrides the choice
    (``"tracepoint"``, ``"kprobe"``, ``"fentry"``).  The attachment lives until
    :func:`bpf_prog_detach`.
    """
    _check_prog_fd(prog_fd)
    return attach(prog_fd, parse_target(target, Dialect.RCORE), backend)


def bpf_prog_attach_zcore(target: str | bytes, str_len: int, prog_fd: int, *,
                          backend: Backend | str | None = None) -> Attachment:
    """Attach (zcore dialect): ``$`` separates type and symbol; only the first ``str_len``
    bytes of ``target`` count (it need not be NUL-terminated)."""
    _check_prog_fd(prog_fd)
    raw = target.encode() if isinstance(target, str) else bytes(target)
    if not 0 <= str_len <= len(raw):
        raise LegacyError(_errno.EINVAL, f"str_len {str_len} exceeds the {len(raw)}-byte target")
    return attach(prog_fd, parse_target(raw[:str_len], Dialect.ZCORE), backend)


def bpf_prog_detach(prog_fd: int, target: str | bytes | None = None,
                    dialect: Dialect | str = Dialect.RCORE) -> None:
    """Detach ``prog_fd`` from ``target`` (or from every target).

    The rcore kernel answered EINVAL to every detach; compat detaches by prog fd as the later
    descendants did.  ENOENT when the program is not attached there.
    """
    _check_prog_fd(prog_fd)
    if target is None:
        detach(prog_fd)
        return
    detach(prog_fd, parse_target(target, dialect))


def release_program(fd: int) -> None:
    """Detach everything ``fd`` is attached to and free the program (legacy kernels never
    did; Linux code should)."""
    _check_prog_fd(fd)
    detach_all(fd)
    unregister_program(fd).close()


# ------------------------------------------------------------------------------ sys_bpf

def _read_map_array(address: int, count: int) -> list[tuple[str, int]]:
    if count > _MAX_MAP_ARRAY:
        raise LegacyError(_errno.E2BIG, f"map_array_len {count} is too large")
    if count and not address:
        raise LegacyError(_errno.EFAULT, "map_array is NULL but map_array_len is not 0")
    raw = _kernel.read_user(address, 16 * count) if count else b""
    out: list[tuple[str, int]] = []
    for k in range(count):
        name_ptr, fd = struct.unpack_from("=QI", raw, 16 * k)
        name = _kernel.read_user_cstring(name_ptr, _MAX_NAME)
        out.append((name.decode("utf-8", "replace"), fd))
    return out


def _dispatch(cmd: int, data: bytes, dialect: Dialect, strict: bool) -> int:
    if cmd == BpfCmd.MAP_CREATE:
        map_type, key_size, value_size, max_entries = struct.unpack_from("=IIII", data)
        return legacy_map_create(map_type, key_size, value_size, max_entries)
    if cmd in (BpfCmd.MAP_LOOKUP_ELEM, BpfCmd.MAP_UPDATE_ELEM, BpfCmd.MAP_DELETE_ELEM,
               BpfCmd.MAP_GET_NEXT_KEY):
        map_fd, _pad, key, value, flags = struct.unpack_from("=IIQQQ", data)
        return legacy_map_elem_op(cmd, map_fd, key, value, flags, strict)
    if cmd == BpfCmd.PROG_LOAD_EX:
        prog, size, count, array = struct.unpack_from("=QIIQ", data)
        if size > _MAX_ELF:
            return -_errno.E2BIG
        if not prog:
            return -_errno.EFAULT
        elf = _kernel.read_user(prog, size) if size else b""
        return load_legacy(elf, _read_map_array(array, count))
    if cmd == BpfCmd.PROG_ATTACH:
        if dialect is Dialect.RCORE:
            target_ptr, prog_fd, _pad = struct.unpack_from("=QII", data)
            _check_prog_fd(prog_fd)
            target = _kernel.read_user_cstring(target_ptr, _MAX_NAME * 4)
        else:
            target_ptr, str_len, prog_fd = struct.unpack_from("=QII", data)
            _check_prog_fd(prog_fd)
            if str_len > _MAX_NAME * 4:
                return -_errno.EINVAL
            target = _kernel.read_user(target_ptr, str_len)
        attach(prog_fd, parse_target(target, dialect))
        return 0
    if cmd == BpfCmd.PROG_DETACH and dialect is Dialect.ZCORE:
        # descendants of the legacy kernels detach by prog_fd (attr offset 12)
        _target, _len, prog_fd = struct.unpack_from("=QII", data)
        _check_prog_fd(prog_fd)
        detach(prog_fd)
        return 0
    return -_errno.EINVAL  # PROG_LOAD (5), rcore's PROG_DETACH, unknown commands


def sys_bpf(cmd: int, attr: Any, dialect: Dialect | str = Dialect.RCORE, *,
            strict_legacy_errors: bool = False) -> int:
    """The raw legacy ``bpf(cmd, attr, 32)``: returns an fd or 0, or ``-errno``.

    ``attr`` is the legacy 32-byte ``union bpf_attr`` as bytes or a ctypes object, holding real
    user pointers (``ctypes.addressof`` of buffers that stay alive during the call).  Pointers
    compat reads itself are read through ``process_vm_readv``, so a bad one gives ``-EFAULT``.
    A shorter attr is zero-extended; a longer one must be zero past 32 bytes (else ``-E2BIG``).
    zcore dialect: every failure is ``-ENOEXEC``, as on zCore.
    """
    which = Dialect(dialect)
    try:
        data = attr_bytes(attr)
    except TypeError:
        rc = -_errno.EINVAL
    else:
        if len(data) > ATTR_SIZE and any(data[ATTR_SIZE:]):
            rc = -_errno.E2BIG
        else:
            data = data[:ATTR_SIZE].ljust(ATTR_SIZE, b"\0")
            try:
                rc = _dispatch(int(cmd), data, which, strict_legacy_errors)
            except OSError as exc:
                rc = -(exc.errno or _errno.EINVAL)
            except (TypeError, ValueError):
                rc = -_errno.EINVAL
    if rc < 0 and which is Dialect.ZCORE:
        return -_errno.ENOEXEC
    return rc

