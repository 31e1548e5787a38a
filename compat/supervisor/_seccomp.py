"""seccomp user notification: the filter, the notification structs and the listener's ioctls.

Layouts and numbers follow ``<linux/seccomp.h>`` and ``<linux/filter.h>``.  The structs can grow
in later kernels: buffers are sized with ``SECCOMP_GET_NOTIF_SIZES`` and never smaller than ours.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import platform
import struct
from dataclasses import dataclass
from functools import cache

from pylibbpf._ffi import ioctl
from pylibbpf._ffi.libc import libc
from pylibbpf._ffi.syscalls import NUMBERS, SAME_EVERYWHERE, syscall

__all__ = [
    "SECCOMP_RET_ALLOW", "SECCOMP_RET_USER_NOTIF", "Arch", "ARCHES", "native_arch",
    "build_filter", "Notification", "Listener", "notif_sizes",
]

SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_USER_NOTIF = 0x7FC00000
SECCOMP_GET_NOTIF_SIZES = 3
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1
SECCOMP_ADDFD_FLAG_SETFD = 1
SECCOMP_ADDFD_FLAG_SEND = 2

# classic BPF opcodes (linux/filter.h)
_BPF_LD_W_ABS = 0x20
_BPF_JEQ_K = 0x15
_BPF_RET_K = 0x06
# offsets in struct seccomp_data
_DATA_NR, _DATA_ARCH = 0, 4


@dataclass(frozen=True)
class Arch:
    """One architecture's ``AUDIT_ARCH_*`` value and syscall numbers."""

    name: str
    audit_arch: int
    nr_bpf: int
    nr_seccomp: int
    nr_pidfd_getfd: int = SAME_EVERYWHERE["pidfd_getfd"]


_AUDIT_ARCHES = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7, "riscv64": 0xC00000F3}
ARCHES = {name: Arch(name, audit_arch, NUMBERS[name]["bpf"], NUMBERS[name]["seccomp"],
                     NUMBERS[name]["pidfd_getfd"])
          for name, audit_arch in _AUDIT_ARCHES.items()}


def native_arch() -> Arch:
    """The running machine's :class:`Arch`; ``OSError(ENOSYS)`` on an unknown one."""
    try:
        return ARCHES[platform.machine()]
    except KeyError:
        raise OSError(_errno.ENOSYS, f"compat run does not support {platform.machine()}: "
                      "add its AUDIT_ARCH and syscall numbers to compat.supervisor") from None


def build_filter(arch: Arch) -> bytes:
    """The classic BPF program (``struct sock_filter[]``) sending ``bpf()`` to the listener.

    Any other syscall, and any syscall made under another ABI (``arch`` differs, e.g. 32-bit
    code), is allowed without involving the supervisor.
    """
    insns = [
        (_BPF_LD_W_ABS, 0, 0, _DATA_ARCH),
        (_BPF_JEQ_K, 0, 3, arch.audit_arch),      # other ABI -> allow
        (_BPF_LD_W_ABS, 0, 0, _DATA_NR),
        (_BPF_JEQ_K, 0, 1, arch.nr_bpf),          # not bpf() -> allow
        (_BPF_RET_K, 0, 0, SECCOMP_RET_USER_NOTIF),
        (_BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
    return b"".join(struct.pack("=HBBI", *insn) for insn in insns)


class _SeccompData(ctypes.Structure):
    _fields_ = [("nr", ctypes.c_int), ("arch", ctypes.c_uint32),
                ("instruction_pointer", ctypes.c_uint64), ("args", ctypes.c_uint64 * 6)]


class _Notif(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("pid", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("data", _SeccompData)]


class _NotifResp(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("val", ctypes.c_int64), ("error", ctypes.c_int32),
                ("flags", ctypes.c_uint32)]


class _NotifAddfd(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("flags", ctypes.c_uint32), ("srcfd", ctypes.c_uint32),
                ("newfd", ctypes.c_uint32), ("newfd_flags", ctypes.c_uint32)]


class _NotifSizes(ctypes.Structure):
    _fields_ = [("seccomp_notif", ctypes.c_uint16), ("seccomp_notif_resp", ctypes.c_uint16),
                ("seccomp_data", ctypes.c_uint16)]


_RECV = ioctl.iowr("!", 0, ctypes.sizeof(_Notif))
_SEND = ioctl.iowr("!", 1, ctypes.sizeof(_NotifResp))
_ID_VALID = ioctl.iow("!", 2, 8)  # __u64
_ADDFD = ioctl.iow("!", 3, ctypes.sizeof(_NotifAddfd))


@cache
def notif_sizes() -> tuple[int, int, int]:
    """``SECCOMP_GET_NOTIF_SIZES``: the kernel's sizes of ``seccomp_notif``,
    ``seccomp_notif_resp`` and ``seccomp_data``."""
    sizes = _NotifSizes()
    rc = syscall(native_arch().nr_seccomp, ctypes.c_uint(SECCOMP_GET_NOTIF_SIZES),
                 ctypes.c_uint(0), ctypes.byref(sizes))
    if rc < 0:
        raise OSError(-rc, "seccomp(SECCOMP_GET_NOTIF_SIZES) failed: the kernel lacks seccomp "
                      "user notification (Linux >= 5.0)")
    return sizes.seccomp_notif, sizes.seccomp_notif_resp, sizes.seccomp_data


@dataclass(frozen=True)
class Notification:
    """One trapped ``bpf()`` call: the notification id, the calling thread and its arguments."""

    id: int
    pid: int
    nr: int
    arch: int
    args: tuple[int, int, int, int, int, int]

    @property
    def cmd(self) -> int:
        """``bpf()``'s first argument (the command), as the kernel reads it: an int."""
        return ctypes.c_int(self.args[0] & 0xFFFFFFFF).value

    @property
    def attr(self) -> int:
        """The ``attr`` pointer, in the caller's address space."""
        return self.args[1]

    @property
    def size(self) -> int:
        """The ``size`` argument (an unsigned int)."""
        return self.args[2] & 0xFFFFFFFF


def _ioctl(fd: int, request: int, arg: ctypes._CData | None) -> int:
    rc = libc().ioctl(fd, request, None if arg is None else ctypes.addressof(arg))
    if rc < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return int(rc)


class Listener:
    """The seccomp listener fd (owned: :meth:`close` it) and its ioctls.

    Every ioctl raises ``OSError``; ``ENOENT`` means the notification is no longer valid (the
    caller died, or a signal interrupted its call).
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        notif, resp, _data = notif_sizes()
        self._recv_size = max(notif, ctypes.sizeof(_Notif))
        self._resp_size = max(resp, ctypes.sizeof(_NotifResp))
        self.addfd_send = True  # SECCOMP_ADDFD_FLAG_SEND (5.14); cleared on EINVAL

    def fileno(self) -> int:
        """The listener fd."""
        return self.fd

    def close(self) -> None:
        """Close the listener: pending and future ``bpf()`` calls of the program get ENOSYS."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def receive(self) -> Notification:
        """``SECCOMP_IOCTL_NOTIF_RECV`` (the buffer must be zeroed, as the kernel checks)."""
        buf = ctypes.create_string_buffer(self._recv_size)
        _ioctl(self.fd, _RECV, buf)
        raw = _Notif.from_buffer_copy(buf.raw[:ctypes.sizeof(_Notif)])
        return Notification(raw.id, raw.pid, raw.data.nr, raw.data.arch,
                            tuple(raw.data.args))

    def id_valid(self, notif_id: int) -> bool:
        """``SECCOMP_IOCTL_NOTIF_ID_VALID``: is the caller still waiting for this answer?"""
        value = ctypes.c_uint64(notif_id)
        try:
            _ioctl(self.fd, _ID_VALID, value)
        except OSError as exc:
            if exc.errno == _errno.ENOENT:
                return False
            raise
        return True

    def _send(self, notif_id: int, val: int, error: int, flags: int) -> None:
        buf = ctypes.create_string_buffer(self._resp_size)
        ctypes.memmove(buf, ctypes.byref(_NotifResp(notif_id, val, error, flags)),
                       ctypes.sizeof(_NotifResp))
        _ioctl(self.fd, _SEND, buf)

    def reply(self, notif_id: int, result: int) -> None:
        """Answer the call: ``result >= 0`` is the return value, ``< 0`` is ``-errno``."""
        if result < 0:
            self._send(notif_id, 0, result, 0)
        else:
            self._send(notif_id, result, 0, 0)

    def let_kernel_run(self, notif_id: int) -> None:
        """``SECCOMP_USER_NOTIF_FLAG_CONTINUE``: the kernel runs the call as if not trapped."""
        self._send(notif_id, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE)

    def install_fd(self, notif_id: int, local_fd: int, fd_flags: int = os.O_CLOEXEC) -> int:
        """Install a copy of ``local_fd`` into the caller and make its number the call's return
        value (``SECCOMP_IOCTL_NOTIF_ADDFD``, atomically with ``SECCOMP_ADDFD_FLAG_SEND`` where
        the kernel has it).  ``fd_flags``: ``O_CLOEXEC`` by default, as Linux's own ``bpf()``
        fds.  Returns the fd number in the caller."""
        if self.addfd_send:
            try:
                return _ioctl(self.fd, _ADDFD,
                              _NotifAddfd(notif_id, SECCOMP_ADDFD_FLAG_SEND, local_fd, 0,
                                          fd_flags))
            except OSError as exc:
                if exc.errno != _errno.EINVAL:
                    raise
                self.addfd_send = False  # before 5.14: install, then reply separately
        remote = _ioctl(self.fd, _ADDFD, _NotifAddfd(notif_id, 0, local_fd, 0, fd_flags))
        self.reply(notif_id, remote)
        return remote
