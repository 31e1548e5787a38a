"""One global trampoline for libbpf's print callback, forwarding to Python ``logging``.

Messages go to the logger ``pylibbpf.libbpf`` (WARN -> WARNING, INFO -> INFO, DEBUG -> DEBUG).
While a :func:`capture` block is active on a thread, that thread's warnings are also collected, so
that a failed load can recover the complete verifier log libbpf printed.

libbpf hands us ``(level, format, va_list)``; the message is formatted with libc ``vsnprintf``.
To size the buffer exactly, the va_list is duplicated first (on x86_64 and aarch64 ``va_copy``
is a plain copy of the va_list record), so a long verifier log is never truncated.

Where it can, libbpf is given a level gate (:mod:`pylibbpf._ffi.printgate`) in front of the
callback rather than the callback itself: while a :func:`capture` block runs (every open, load,
pin and attach), the debug and info lines no logger would take are dropped before they enter
Python.  Outside such blocks, and without a gate, every message reaches the callback, which
makes the same decision in Python.
"""

from __future__ import annotations

import ctypes
import logging
import platform
import threading
from typing import TYPE_CHECKING, Any

from . import printgate
from .libc import libc
from .types import libbpf_print_fn_t

if TYPE_CHECKING:
    from .loader import LibbpfLibrary

logger = logging.getLogger("pylibbpf.libbpf")
# A library adds no output of its own: configure logging to see libbpf's messages.
logging.getLogger("pylibbpf").addHandler(logging.NullHandler())
_VA_LIST_SIZE = {"x86_64": 24, "amd64": 24, "aarch64": 32, "arm64": 32}.get(
    platform.machine().lower())
_FALLBACK_SIZE = 1 << 20


class _Local(threading.local):
    # A class default: a thread that never captured reads None without an AttributeError
    # being raised (and formatted) inside getattr on every open and load.
    sink: list[str] | None = None


_local = _Local()

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
    # Runs for every libbpf message (about 20 debug lines per load): the common case, a debug
    # or info line no logger listens to, returns after one level check.
    try:
        if level != 0:  # libbpf's LIBBPF_INFO is 1, LIBBPF_DEBUG 2 (anything else: debug)
            py_level = logging.INFO if level == 1 else logging.DEBUG
            if not logger.isEnabledFor(py_level):
                return 0
            sink = None
        else:
            py_level = logging.WARNING
            sink = _local.sink
            if sink is None and not logger.isEnabledFor(py_level):
                return 0
        if fmt is None or ap is None:
            return 0
        message = _format(fmt, ap)
        if sink is not None:
            sink.append(message)
        if logger.isEnabledFor(py_level):
            logger.log(py_level, "%s", message.rstrip("\n"))
    except Exception:  # noqa: BLE001 - nothing may cross back into C
        return 0
    return 0


_callback = libbpf_print_fn_t(_print)
_gate: printgate.Gate | None = None
_installed: Any = None  # what libbpf was given (kept alive for it)
_INFO = 1  # libbpf's LIBBPF_INFO: the gate's threshold when INFO is the lowest level logged
_WARN = 0  # LIBBPF_WARN: warnings always pass, for capture() and the logger to decide on


def install(lib: LibbpfLibrary) -> None:
    """Route libbpf's messages to logging (done once when the library is loaded), through a
    level gate where one can be built."""
    global _gate, _installed
    _gate = printgate.build(ctypes.cast(_callback, ctypes.c_void_p).value or 0)
    _installed = _callback if _gate is None else libbpf_print_fn_t(_gate.address)
    lib.libbpf_set_print(_installed)


def gated() -> bool:
    """Whether libbpf's messages pass a level gate before entering Python (see
    :mod:`pylibbpf._ffi.printgate`); ``False`` until libbpf is loaded (``_ffi.lib()``)."""
    return _gate is not None


class capture:  # noqa: N801 - used as a function: ``with capture() as messages``
    """Collect this thread's libbpf warnings for the duration of the block (a list of the
    formatted messages); a nested block's messages reach the enclosing one too."""

    __slots__ = ("_previous", "_sink")

    def __enter__(self) -> list[str]:
        self._previous = _local.sink
        sink: list[str] = []
        self._sink = sink
        _local.sink = sink
        gate = _gate
        if gate is not None:
            # Narrowed from the logger's levels as they are now; a change to them takes effect
            # at the next block (or at once outside blocks, where the gate is open).
            gate.threshold.value = (printgate.OPEN if logger.isEnabledFor(logging.DEBUG)
                                    else _INFO if logger.isEnabledFor(logging.INFO)
                                    else _WARN)
        return sink

    def __exit__(self, *exc: object) -> None:
        gate = _gate
        if gate is not None:
            # Open again (another thread's block may still run: its messages then reach
            # Python, which drops them as the gate would have).
            gate.threshold.value = printgate.OPEN
        previous = self._previous
        _local.sink = previous
        if previous is not None:
            previous.extend(self._sink)  # an enclosing capture sees what a nested one collected
