"""pylibbpf's exceptions.

Everything the library raises for a failed kernel or libbpf call is a :class:`BpfError`, an
:class:`OSError`: ``.errno`` holds the error number and the message starts with a sentence saying
what was being done.  Missing map keys raise :class:`KeyError` and wrongly sized or typed
arguments raise :class:`ValueError`/:class:`TypeError`, as Python users expect.
"""

from __future__ import annotations

import errno as _errno
import os
import re

from .elf.errors import ElfError

_CAP_BITS = {"CAP_NET_ADMIN": 12, "CAP_SYS_ADMIN": 21, "CAP_PERFMON": 38, "CAP_BPF": 39}

ENOTSUPP = 524
"""The kernel-internal "operation not supported" number that some BPF commands return to user
space (for instance batch operations on a map type without them); ``errno`` has no name for it."""

_NOT_SUPPORTED = (_errno.EOPNOTSUPP, _errno.ENOTSUP, ENOTSUPP)


def _reason(err: int) -> str:
    if err == ENOTSUPP:
        return "Operation not supported (kernel ENOTSUPP)"
    return os.strerror(err)


class BpfError(OSError):
    """A libbpf or kernel call failed.  ``errno`` is set; ``str()`` says what was attempted."""

    def __init__(self, err: int, message: str) -> None:
        super().__init__(err, message)

    def __str__(self) -> str:
        reason = _reason(self.errno) if self.errno else "error"
        return f"{self.strerror}: {reason} (errno {self.errno})"


class BpfPermissionError(BpfError, PermissionError):
    """EPERM/EACCES; the message names the capability that is missing (or why it is not one)."""


class NotSupportedError(BpfError):
    """The running kernel or the installed libbpf lacks a feature (errno EOPNOTSUPP)."""

    def __init__(self, message: str, err: int = _errno.EOPNOTSUPP) -> None:
        super().__init__(err, message)


class ClosedError(OSError, ValueError):
    """A method was called on a closed object, program, map or link (errno EBADF).

    Like ``ValueError: I/O operation on closed file``, this is a programming error, so it is not
    a :class:`BpfError` (an ``except BpfError`` around kernel calls does not swallow it).
    """

    def __init__(self, what: str) -> None:
        super().__init__(_errno.EBADF, f"{what} is closed")


class StateError(BpfError):
    """A call that is only valid before (or only after) load (errno EBUSY or EINVAL)."""


class MalformedObjectError(BpfError, ElfError):
    """The object is not one libbpf may parse: malformed ELF, sections, symbols, relocations,
    BTF or BTF.ext (errno ENOEXEC), or a file that is not a regular file or is too big (errno
    EINVAL).

    Raised by :meth:`Object.open_file` and :meth:`Object.open_mem` before libbpf sees the
    bytes.  It is both a :class:`BpfError` (an ``OSError`` with ``errno``, as
    every failed open) and a :class:`~pylibbpf.elf.ElfError` (a ``ValueError``, what
    :mod:`pylibbpf.elf` raises for the same input).
    """


class LibbpfNotFoundError(BpfError):
    """libbpf.so.1 could not be loaded; the message says which package to install."""

    def __init__(self, message: str) -> None:
        super().__init__(_errno.ENOENT, message)


_INSN_LINE = re.compile(r"^\d+: \([0-9a-f]{2}\)")  # "1007: (79) r1 = *(u64 *)(r0 +0)"


class VerifierError(BpfError):
    """The kernel verifier rejected a program.  ``log`` holds the complete verifier log."""

    def __init__(self, err: int, message: str, program: str, log: str) -> None:
        super().__init__(err, message)
        self.program = program
        self.log = log

    TAIL_LINES = 15

    @property
    def verdict(self) -> str | None:
        """The verifier's reason: the first line after the last instruction it walked (for
        example ``R0 invalid mem access 'map_value_or_null'``), or ``None``."""
        lines = self.log.splitlines()
        last = max((i for i, line in enumerate(lines) if _INSN_LINE.match(line)), default=None)
        if last is None:
            return None
        return next((line.strip() for line in lines[last + 1:] if line.strip()), None)

    def __str__(self) -> str:
        lines = self.log.rstrip("\n").splitlines()
        tail = lines[-self.TAIL_LINES:]
        omitted = len(lines) - len(tail)
        head = super().__str__()
        if not lines:
            return f"{head} (no verifier log)"
        shown = "\n".join("  " + line for line in tail)
        more = f"  ({omitted} earlier lines omitted; see .log)\n" if omitted else ""
        verdict = self.verdict
        if verdict is not None and all(verdict != line.strip() for line in tail):
            # newer kernels follow the reason with pages of explanation: keep the reason
            more = f"  reason: {verdict}\n" + more
        return f"{head}\nverifier log for '{self.program}':\n{more}{shown}"


def _effective_caps() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return None


def permission_hint(needs: tuple[str, ...] = ("CAP_BPF",)) -> str:
    """Say which capability the caller lacks, or that capabilities are not the cause."""
    caps = _effective_caps()
    if caps is None:
        return f"needs {' + '.join(needs)} (or CAP_SYS_ADMIN)"
    if caps & (1 << _CAP_BITS["CAP_SYS_ADMIN"]):
        return ("the process holds CAP_SYS_ADMIN, so this is not a capability problem: "
                "the kernel's lockdown mode or an LSM policy refused it")
    missing = [cap for cap in needs if not caps & (1 << _CAP_BITS[cap])]
    if not missing:
        return ("the process holds " + " + ".join(needs) +
                "; the kernel (lockdown, unprivileged BPF policy or an LSM) refused it")
    if "CAP_SYS_ADMIN" in missing:
        return f"missing capability {' + '.join(missing)}"
    return f"missing capability {' + '.join(missing)} (or CAP_SYS_ADMIN)"


# libbpf's private error codes (enum libbpf_errno, from 4000) and the errno each maps to, so
# that ``.errno`` is always a real errno; libbpf's own wording is kept in the message.
_LIBBPF_ERRNO = {
    4000: (_errno.EINVAL, "libelf error"),
    4001: (_errno.ENOEXEC, "not a valid BPF object (bad ELF format)"),
    4002: (_errno.EINVAL, "'version' section incorrect or lost"),
    4003: (_errno.ENOEXEC, "endian mismatch"),
    4004: (_errno.EINVAL, "internal libbpf error"),
    4005: (_errno.ENOEXEC, "relocation failed"),
    4006: (_errno.EINVAL, "load failed"),
    4007: (_errno.EACCES, "kernel verifier blocked the program"),
    4008: (_errno.E2BIG, "program too big"),
    4009: (_errno.EINVAL, "incorrect kernel version"),
    4010: (_errno.EINVAL, "kernel doesn't support this program type"),
    4011: (_errno.ESRCH, "wrong pid in netlink message"),
    4012: (_errno.EINVAL, "invalid netlink sequence"),
    4013: (_errno.EINVAL, "netlink message parsing failed"),
}


def bpffs_error(err: int | None, context: str, path: bytes, *, pinning: bool) -> BpfError:
    """The error for a pin (``pinning``) or an open of a pin at ``path`` that failed with ``err``.

    The kernel answers EPERM (pin) or EACCES (open) for a path outside a BPF filesystem, which
    would read as a missing capability or a lockdown: when ``path`` (for a pin: its directory)
    is not on a bpffs, the error says so instead, keeping the kernel's errno.
    """
    if err in (_errno.EPERM, _errno.EACCES, _errno.EINVAL):
        from ._ffi.libc import BPF_FS_MAGIC, fs_type

        where = (os.path.dirname(path.rstrip(b"/")) or b".") if pinning else path
        kind = fs_type(where)
        if kind is not None and kind != BPF_FS_MAGIC:
            return BpfError(err, f"{context}: {os.fsdecode(where)} is not on a BPF filesystem "
                            f"(statfs f_type {kind:#x}, bpffs is {BPF_FS_MAGIC:#x}); pins live "
                            "in a bpffs such as /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)")
    return error_from_errno(err, context)


def error_from_errno(err: int | None, context: str,
                     needs: tuple[str, ...] = ("CAP_BPF",)) -> BpfError:
    """Build the right :class:`BpfError` subclass for ``err`` with a context sentence."""
    if not err:
        err = _errno.EINVAL
    if err in _LIBBPF_ERRNO:
        err, what = _LIBBPF_ERRNO[err]
        context = f"{context} ({what})"
    if err in (_errno.EPERM, _errno.EACCES):
        return BpfPermissionError(err, f"{context} ({permission_hint(needs)})")
    if err in _NOT_SUPPORTED:
        return NotSupportedError(context, err)
    return BpfError(err, context)
