"""Opening an object: libbpf's open options from Python arguments, the checks made before libbpf
sees a file or a buffer, and the open call whose failure says libbpf's reason."""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import stat
from collections.abc import Callable
from typing import Any

from . import _ffi
from ._args import cpath, cstr, in_range, u32
from ._ffi.printcb import capture
from ._ffi.structs import bpf_object_open_opts, new_opts
from ._verdicts import Verdict
from ._verdicts import check as check_verdict
from .elf.errors import ElfError
from .errors import BpfError, MalformedObjectError
from .load_errors import open_error

_LOG_BUF_MAX = 0xFFFF_FFFF >> 2  # the kernel refuses a larger verifier log buffer (UINT_MAX >> 2)
_OBJ_NAME_LEN = 16  # libbpf's BPF_OBJ_NAME_LEN: the name keeps at most 15 bytes
_OPTS_SIZE = ctypes.sizeof(bpf_object_open_opts)
_NAMED_OPTS_MAX = 64
# Options with at most an object name, by name: libbpf only reads them during the open call, and
# nothing writes them after they are made, so one serves every open (and thread) of that name.
_named_opts: dict[bytes | None, bpf_object_open_opts] = {}


def open_opts(object_name: str | bytes | None,
              btf_custom_path: str | os.PathLike[str] | None,
              kconfig: str | None, pin_root_path: str | os.PathLike[str] | None,
              kernel_log_level: int, kernel_log_buf: int | bytearray | None,
              ) -> tuple[bpf_object_open_opts, Any]:
    if (btf_custom_path is None and kconfig is None and pin_root_path is None
            and kernel_log_buf is None and type(kernel_log_level) is int
            and kernel_log_level == 0 and (object_name is None or type(object_name) is bytes)):
        # The common case (at most the name derived from the path): nothing to check or convert.
        opts = _named_opts.get(object_name)
        if opts is None:
            if len(_named_opts) >= _NAMED_OPTS_MAX:
                _named_opts.clear()
            opts = _named_opts[object_name] = bpf_object_open_opts(_OPTS_SIZE, object_name)
        return opts, None
    fields: dict[str, Any] = {
        "object_name": object_name if object_name is None or isinstance(object_name, bytes)
        else cstr(object_name, "object_name"),
        "btf_custom_path": None if btf_custom_path is None
        else cpath(btf_custom_path, "btf_custom_path"),
        "kconfig": None if kconfig is None else cstr(kconfig, "kconfig"),
        "pin_root_path": None if pin_root_path is None
        else cpath(pin_root_path, "pin_root_path"),
        "kernel_log_level": u32(kernel_log_level, "kernel_log_level"),
    }
    log_buf: Any = None
    if kernel_log_buf is not None:
        if isinstance(kernel_log_buf, bytearray):
            size = len(kernel_log_buf)
        elif isinstance(kernel_log_buf, int) and not isinstance(kernel_log_buf, bool):
            size = kernel_log_buf
        else:
            raise TypeError("kernel_log_buf must be a size (int) or a bytearray, not "
                            f"{type(kernel_log_buf).__name__}")
        # libbpf hands the buffer to the kernel, which takes a u32 size and refuses more
        # than UINT_MAX >> 2 (BPF_LOG_MAX_SIZE on 5.x; later kernels allow more, but a
        # verifier log of a GiB is a mistake, not a need).
        in_range(size, "kernel_log_buf size", 1, _LOG_BUF_MAX)
        if isinstance(kernel_log_buf, bytearray):
            log_buf = (ctypes.c_char * size).from_buffer(kernel_log_buf)
        else:
            log_buf = ctypes.create_string_buffer(size)
        fields["kernel_log_buf"] = ctypes.cast(log_buf, ctypes.POINTER(ctypes.c_char))
        fields["kernel_log_size"] = ctypes.sizeof(log_buf)
    return new_opts(bpf_object_open_opts, **fields), log_buf

def validate_blob(blob: bytes, name: str | bytes, context: Callable[[], str]) -> Verdict:
    """Refuse, before libbpf parses it, an object its parser would trust into a crash; the
    verdict on one that passes (remembered by content: the same bytes are parsed once).
    ``context()`` says what failed (made only on failure)."""
    try:
        return check_verdict(blob, name)
    except ElfError as exc:
        raise MalformedObjectError(_errno.ENOEXEC, f"{context()}: not a valid eBPF object "
                                   f"file: {exc}") from None

def check_regular(fspath: bytes, context: str) -> None:
    try:
        mode = os.stat(fspath).st_mode
    except OSError:
        return  # libbpf reports the missing file itself
    if not stat.S_ISREG(mode):
        raise MalformedObjectError(_errno.EINVAL, f"{context}: not a regular file")

def call_open(context: Callable[[], str], func: str, *args: Any) -> Any:
    """libbpf's ``func`` (an open function) called with ``args``; a failure raises with
    ``context()`` and libbpf's reason."""
    with capture() as messages:
        try:
            return getattr(_ffi.lib(), func)(*args)
        except BpfError as exc:
            raise open_error(exc, context(), messages) from None


def name_from_path(path: bytes) -> bytes:
    """libbpf's default object name for ``path``: the base name, cut to 15 bytes, then at its
    first dot (``bpf_object__new``)."""
    return path.rsplit(b"/", 1)[-1][:_OBJ_NAME_LEN - 1].split(b".", 1)[0]
