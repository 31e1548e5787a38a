"""One global trampoline for libbpf's print callback, forwarding to Python ``logging``.

Messages go to the logger ``pylibbpf.libbpf`` (WARN -> WARNING, INFO -> INFO, DEBUG -> DEBUG).
While a :func:`capture` block is active on a thread, that thread's warnings are also collected, so
that a failed load can recover the complete verifier log libbpf printed.

libbpf hands us ``(level, format, va_list)``; the message is formatted with libc ``vsnprintf``.
To size the buffer exactly, the va_list is duplicated first (on x86_64 and aarch64 ``va_copy``
is a plain copy of the va_list record), so a long verifier log is never truncated.
"""

from __future__ import annotations

import ctypes
import logging
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .libc import libc
from .types import libbpf_print_fn_t

if TYPE_CHECKING:
    from .loader import LibbpfLibrary

logger = logging.getLogger("pylibbpf.libbpf")
# A library adds no output of its own: configure logging to see libbpf's messages.
logging.getLogger("pylibbpf").addHandler(logging.NullHandler())
_LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)
_VA_LIST_SIZE = {"x86_64": 24, "amd64": 24, "aarch64": 32, "arm64": 32}.get(
    platform.machine().lower())
_FALLBACK_SIZE = 1 << 20
_local = threading.local()

_vsnprintf = libc().vsnprintf


def _format(fmt: bytes, ap: int) -> str:
    if _VA_LIST_SIZE is None:
        buf = ctypes.create_string_buffer(_FALLBACK_SIZE)
        _vsnprintf(buf, _FALLBACK_SIZE, fmt, ap)
        return buf.value.decode("utf-8", "replace")
    copy = (ctypes.c_char * _VA_LIST_SIZE)()
    ctypes.memmove(copy, ap, _VA_LIST_SIZE)
    needed = _vsnprintf(None, 0, fmt, ctypes.addressof(copy))
    if needed < 0:
        return fmt.decode("utf-8", "replace")
    buf = ctypes.create_string_buffer(needed + 1)
    _vsnprintf(buf, needed + 1, fmt, ap)
    return buf.value.decode("utf-8", "replace")


def _print(level: int, fmt: bytes | None, ap: int | None) -> int:
    try:
        py_level = _LEVELS[level] if 0 <= level < len(_LEVELS) else logging.DEBUG
        sink = getattr(_local, "sink", None)
        wanted = logger.isEnabledFor(py_level)
        if not wanted and (sink is None or py_level != logging.WARNING):
            return 0
        if fmt is None or ap is None:
            return 0
        message = _format(fmt, ap)
        if sink is not None and py_level == logging.WARNING:
            sink.append(message)
        if wanted:
            logger.log(py_level, "%s", message.rstrip("\n"))
    except Exception:  # noqa: BLE001 - nothing may cross back into C
        return 0
    return 0


_callback = libbpf_print_fn_t(_print)


def install(lib: LibbpfLibrary) -> None:
    """Route libbpf's messages to logging (done once when the library is loaded)."""
    lib.libbpf_set_print(_callback)


@contextmanager
def capture() -> Iterator[list[str]]:
    """Collect this thread's libbpf warnings for the duration of the block."""
    previous = getattr(_local, "sink", None)
    sink: list[str] = []
    _local.sink = sink
    try:
        yield sink
    finally:
        _local.sink = previous
        if previous is not None:
            previous.extend(sink)  # an enclosing capture sees what a nested one collected
