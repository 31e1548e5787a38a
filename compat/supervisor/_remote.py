"""Another process's memory and fds: ``process_vm_readv``, ``pidfd_open`` + ``pidfd_getfd``.

Every read is bounds-checked by the kernel: an unmapped or partly mapped range gives EFAULT,
as the legacy kernel answered for bad user pointers.  Copying an fd out of the program
(``pidfd_getfd``) needs ptrace-attach permission over it: the supervisor is its parent and, in
practice, root.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os

from pylibbpf._ffi.syscalls import syscall

from .._kernel import process_vm
from ._privileges import Credentials, read_credentials
from ._seccomp import native_arch

__all__ = ["RemoteProcess", "PAGE_SIZE"]

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_ADDRESS_LIMIT = 1 << 64


def _tgid_of(tid: int) -> int:
    try:
        with open(f"/proc/{tid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    raise OSError(_errno.ESRCH, f"thread {tid} is gone")


class RemoteProcess:
    """The thread that made a trapped call, its process (``tgid``) and a pidfd on it.

    Open it, check the notification id is still valid (so the pid was not reused), then use
    it; :meth:`close` releases the pidfd.
    """

    def __init__(self, tid: int) -> None:
        if tid <= 0:
            raise OSError(_errno.ESRCH, "the caller is not visible in this pid namespace")
        self.tid = tid
        self.tgid = _tgid_of(tid)
        self.pidfd = os.pidfd_open(self.tgid)

    def close(self) -> None:
        """Release the pidfd."""
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1

    def __enter__(self) -> RemoteProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def credentials(self) -> Credentials:
        """The calling thread's credentials now (``OSError(ESRCH)`` when it is gone): read them
        while its call is pending, then confirm it still is before relying on them."""
        return read_credentials(self.tgid, self.tid)

    def read(self, address: int, size: int) -> bytes:
        """``size`` bytes at ``address`` in the process; ``OSError(EFAULT)`` when any byte is
        unreadable, ``ESRCH`` when the process is gone."""
        if size == 0:
            return b""
        if size < 0 or address <= 0 or address + size > _ADDRESS_LIMIT:
            raise OSError(_errno.EFAULT, f"bad pointer {address:#x} (+{size})")
        out = ctypes.create_string_buffer(size)
        rc = process_vm(self.tid, False, address, out, size)
        if rc < 0:
            raise OSError(-rc, f"cannot read {size} bytes at {address:#x} in process "
                          f"{self.tgid}")
        if rc != size:
            raise OSError(_errno.EFAULT, f"only {rc} of {size} bytes readable at {address:#x}")
        return out.raw

    def write(self, address: int, data: bytes) -> None:
        """Write ``data`` at ``address`` in the process (``process_vm_writev``); EFAULT when any
        byte is not writable."""
        size = len(data)
        if size == 0:
            return
        if address <= 0 or address + size > _ADDRESS_LIMIT:
            raise OSError(_errno.EFAULT, f"bad pointer {address:#x} (+{size})")
        buf = ctypes.create_string_buffer(data, size)
        rc = process_vm(self.tid, True, address, buf, size)
        if rc < 0:
            raise OSError(-rc, f"cannot write {size} bytes at {address:#x} in process "
                          f"{self.tgid}")
        if rc != size:
            raise OSError(_errno.EFAULT, f"only {rc} of {size} bytes writable at {address:#x}")

    def read_cstring(self, address: int, limit: int) -> bytes:
        """A NUL-terminated string (without the NUL), read a page at a time so that a string
        ending just before an unmapped page reads fine.  EFAULT if unreadable, ENAMETOOLONG
        when no NUL comes within ``limit`` bytes."""
        data = b""
        while len(data) < limit:
            here = address + len(data)
            take = min(limit - len(data), PAGE_SIZE - here % PAGE_SIZE)
            part = self.read(here, take)
            end = part.find(b"\0")
            if end >= 0:
                return data + part[:end]
            data += part
        raise OSError(_errno.ENAMETOOLONG, f"string at {address:#x} is longer than {limit} "
                      "bytes")

    def copy_fd(self, fd: int) -> int:
        """A copy of the process's fd ``fd`` in this process (``pidfd_getfd``; close-on-exec).
        ``EBADF`` when the process has no such fd."""
        if not 0 <= fd < 1 << 31:
            raise OSError(_errno.EBADF, f"fd {fd} is not a valid fd number")
        rc = syscall(native_arch().nr_pidfd_getfd, ctypes.c_int(self.pidfd), ctypes.c_int(fd),
                     ctypes.c_uint(0))
        if rc < 0:
            raise OSError(-rc, f"pidfd_getfd({self.tgid}, {fd}) failed")
        return rc
