"""Starting the program under the filter: a small C launcher, built once with the system compiler.

Why a C launcher rather than ``preexec_fn``: the filter must be installed in the child between
``fork`` and ``exec``.  Running Python there (``subprocess``'s ``preexec_fn``) is unsafe when the
supervising process has threads (a lock held by another thread at fork time is never released
in the child), and the supervisor is also used as a library from threaded programs (test
runners, services).  The launcher is exec'd by a plain ``subprocess.Popen`` (no Python after
fork), then in its own single-threaded process: receives the filter from the supervisor over
a socketpair, sets ``PR_SET_NO_NEW_PRIVS``, installs the filter with
``SECCOMP_FILTER_FLAG_NEW_LISTENER`` (and ``WAIT_KILLABLE_RECV`` where the kernel has it, 5.19),
sends the listener fd back with ``SCM_RIGHTS``, closes its copies and ``execvp``s the program,
which therefore keeps the launcher's pid.

The binary is cached under ``$XDG_CACHE_HOME/pylibbpf`` (``~/.cache/pylibbpf``), keyed by the
hash of its source; ``$COMPAT_RUN_LAUNCHER`` names a prebuilt one instead, and ``$CC`` the
compiler (default ``gcc``, then ``cc``).
"""

from __future__ import annotations

import errno as _errno
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from pylibbpf.build import cache_root

__all__ = ["LAUNCHER_SOURCE", "launcher_path", "spawn"]

LAUNCHER_SOURCE = r"""
/* compat run's launcher: install the seccomp filter the supervisor sends, hand the listener
 * back over the socket (SCM_RIGHTS), then exec the program. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#define MAX_INSNS 256

static int fail(const char *what)
{
    fprintf(stderr, "compat run: launcher: %s: %s\n", what, strerror(errno));
    return 126;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s SOCKFD PROGRAM [ARGS...]\n", argv[0]);
        return 126;
    }
    int sock = atoi(argv[1]);
    uint32_t count = 0;
    if (recv(sock, &count, sizeof(count), MSG_WAITALL) != (ssize_t)sizeof(count))
        return fail("reading the filter length");
    if (count == 0 || count > MAX_INSNS) {
        errno = EINVAL;
        return fail("filter length");
    }
    struct sock_filter insns[MAX_INSNS];
    ssize_t want = (ssize_t)(count * sizeof(insns[0]));
    if (recv(sock, insns, (size_t)want, MSG_WAITALL) != want)
        return fail("reading the filter");
    struct sock_fprog prog = { .len = (unsigned short)count, .filter = insns };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return fail("prctl(PR_SET_NO_NEW_PRIVS)");
    unsigned long flags = SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    if (listener < 0 && errno == EINVAL) {  /* before 5.19: no WAIT_KILLABLE_RECV */
        flags = SECCOMP_FILTER_FLAG_NEW_LISTENER;
        listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    }
    if (listener < 0)
        return fail("seccomp(SECCOMP_SET_MODE_FILTER, NEW_LISTENER)");
    int fd = (int)listener;
    uint8_t killable = (flags & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) != 0;
    struct iovec iov = { .iov_base = &killable, .iov_len = 1 };
    union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int))]; } control;
    memset(&control, 0, sizeof(control));
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                          .msg_controllen = sizeof(control.buf) };
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    if (sendmsg(sock, &msg, 0) != 1)
        return fail("sending the listener fd");
    close(fd);
    close(sock);
    execvp(argv[2], argv + 2);
    int err = errno;
    fprintf(stderr, "compat run: cannot execute %s: %s\n", argv[2], strerror(err));
    return err == ENOENT ? 127 : 126;
}
"""


def launcher_path() -> Path:
    """The launcher binary, compiled on first use (``OSError`` naming what is missing)."""
    given = os.environ.get("COMPAT_RUN_LAUNCHER")
    if given:
        return Path(given)
    digest = hashlib.sha256(LAUNCHER_SOURCE.encode()).hexdigest()[:16]
    out = cache_root() / f"compat-launch-{digest}"
    if out.exists():
        return out
    compiler = next((c for c in (os.environ.get("CC"), "gcc", "cc") if c and shutil.which(c)),
                    None)
    if compiler is None:
        raise OSError(_errno.ENOENT, "compat run builds a small C launcher once and needs a C "
                      "compiler for it: install gcc, set $CC, or point $COMPAT_RUN_LAUNCHER at "
                      "a prebuilt launcher")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="compat-launch-") as tmp:
        src = Path(tmp) / "launcher.c"
        src.write_text(LAUNCHER_SOURCE)
        built = Path(tmp) / "launcher"
        proc = subprocess.run([compiler, "-O2", "-Wall", "-o", str(built), str(src)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise OSError(_errno.ENOEXEC, f"{compiler} could not build compat run's launcher:\n"
                          f"{proc.stderr}")
        staged = out.with_name(f"{out.name}.{os.getpid()}.tmp")
        shutil.copyfile(built, staged)
        os.chmod(staged, 0o755)
        os.replace(staged, out)
    return out


def spawn(argv: Sequence[str], filter_code: bytes, *, timeout: float = 30.0,
          stdin: int | IO[Any] | None = None, stdout: int | IO[Any] | None = None,
          stderr: int | IO[Any] | None = None) -> tuple[subprocess.Popen[bytes], int, bool]:
    """Start ``argv`` under ``filter_code``; returns the process, the listener fd (the
    caller's) and whether the filter waits killably after RECV.  ``stdin``/``stdout``/
    ``stderr`` are passed to :class:`subprocess.Popen` (default: inherited).

    ``OSError`` when the launcher could not install the filter (its message is on stderr).
    """
    if not argv:
        raise ValueError("no program to run")
    launcher = launcher_path()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        proc = subprocess.Popen([str(launcher), str(theirs.fileno()), *argv],
                                pass_fds=(theirs.fileno(),), stdin=stdin, stdout=stdout,
                                stderr=stderr)
    except BaseException:
        ours.close()
        theirs.close()
        raise
    theirs.close()
    with ours:
        ours.settimeout(timeout)
        try:
            ours.sendall(struct.pack("=I", len(filter_code) // 8) + filter_code)
            data, fds, _flags, _addr = socket.recv_fds(ours, 1, 1)
        except OSError as exc:
            data, fds = b"", []
            failure: OSError | None = exc
        else:
            failure = None
    if not fds:
        if proc.poll() is None:  # a hung launcher: never leave it behind
            proc.kill()
        status = proc.wait()
        err = failure.errno if failure is not None and failure.errno else _errno.EPERM
        raise OSError(err, f"the launcher could not start {argv[0]!r} under the seccomp filter "
                      f"(launcher exit status {status})")
    return proc, fds[0], data == b"\x01"
