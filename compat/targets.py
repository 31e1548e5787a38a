"""Legacy attach targets: the grammar of both dialects and the rCore/zCore symbol table.

A target is ``TYPE SEP SYMBOL`` split at the first separator (``:`` rcore, ``$`` zcore); TYPE is
``kprobe``, ``kretprobe@entry`` or ``kretprobe@exit`` in any case.  SYMBOL is an rCore/zCore
kernel symbol (mangled or demangled Rust) or a plain Linux symbol.  :data:`SYMBOLS` maps the
legacy kernels' syscall handlers to Linux attach points; :func:`register_symbol` extends it.
"""

from __future__ import annotations

import enum
import errno as _errno
import re
from dataclasses import dataclass

from .attr import Dialect
from .errors import LegacyError

__all__ = [
    "Phase", "AttachPoint", "Target", "parse_target", "resolve_symbol", "register_symbol",
    "demangle", "SYMBOLS", "RCORE_SYSCALLS", "ZCORE_SYSCALLS",
]


class Phase(enum.Enum):
    """Where the legacy program ran: kprobe (entry), kretprobe@entry, kretprobe@exit."""

    KPROBE = 0
    RET_ENTRY = 1
    RET_EXIT = 2

    @property
    def at_exit(self) -> bool:
        """True for the return handler (the context's a0 holds the return value)."""
        return self is Phase.RET_EXIT


_PHASES = {"kprobe": Phase.KPROBE, "kretprobe@entry": Phase.RET_ENTRY,
           "kretprobe@exit": Phase.RET_EXIT}


@dataclass(frozen=True)
class AttachPoint:
    """Where a legacy symbol lands on Linux.

    ``syscalls``: Linux syscall names whose ``syscalls/sys_enter_*``/``sys_exit_*`` tracepoints
    stand for it (empty: not a syscall); ``function``: the kernel function for kprobe/fentry.
    """

    legacy: str
    syscalls: tuple[str, ...] = ()
    function: str | None = None


@dataclass(frozen=True)
class Target:
    """A parsed legacy target."""

    text: str
    phase: Phase
    symbol: str
    point: AttachPoint


# Syscall handlers the legacy kernels implemented, with the Linux syscalls that reach the same
# code.  Names are the Rust method names (``sys_X``) minus ``sys_``.  Read from rCore's
# ``kernel/src/syscall`` dispatcher and zCore's ``linux-syscall`` dispatcher.
_LINUX_EQUIVALENT: dict[str, tuple[str, ...]] = {
    # rCore's sys_fork served fork and vfork; glibc's fork() is clone() on Linux
    "fork": ("fork", "vfork", "clone", "clone3"),
    "vfork": ("vfork",),
    "clone": ("clone", "clone3"),
    "exec": ("execve", "execveat"),
    "execve": ("execve", "execveat"),
    "wait": ("wait4",),
    "open": ("open", "openat"),
    "stat": ("newstat",),
    "fstat": ("newfstat",),
    "lstat": ("newlstat",),
    "fstatat": ("newfstatat",),
    "sleep": ("nanosleep", "clock_nanosleep"),
    "nanosleep": ("nanosleep", "clock_nanosleep"),
    "yield": ("sched_yield",),
    "pipe": ("pipe", "pipe2"),
    "dup2": ("dup2", "dup3"),
    "dup3": ("dup3",),
    "pread": ("pread64",),
    "pwrite": ("pwrite64",),
    "select": ("select", "pselect6"),
    "pselect6": ("pselect6",),
    "poll": ("poll", "ppoll"),
    "ppoll": ("ppoll",),
    "uname": ("newuname",),
    "set_priority": ("setpriority",),
    "getrlimit": ("getrlimit", "prlimit64"),
    "epoll_create": ("epoll_create", "epoll_create1"),
    "epoll_wait": ("epoll_wait", "epoll_pwait"),
    "accept": ("accept", "accept4"),
}

RCORE_SYSCALLS: tuple[str, ...] = (
    "read", "write", "open", "openat", "close", "stat", "fstat", "lstat", "fstatat", "poll",
    "ppoll", "lseek", "mmap", "mprotect", "munmap", "brk", "ioctl", "pread", "pwrite", "readv",
    "writev", "access", "faccessat", "pipe", "select", "pselect6", "yield", "madvise", "dup",
    "dup2", "dup3", "sleep", "nanosleep", "getpid", "gettid", "getppid", "sendfile", "socket",
    "connect", "accept", "accept4", "sendto", "recvfrom", "sendmsg", "recvmsg", "shutdown",
    "bind", "listen", "getsockname", "getpeername", "socketpair", "setsockopt", "getsockopt",
    "clone", "fork", "vfork", "exec", "execve", "exit", "exit_group", "wait", "wait4", "kill",
    "tkill", "tgkill", "uname", "fcntl", "flock", "fsync", "fdatasync", "truncate",
    "ftruncate", "getdents64", "getcwd", "chdir", "fchdir", "rename", "renameat", "renameat2",
    "mkdir", "mkdirat", "rmdir", "link", "linkat", "unlink", "unlinkat", "symlink",
    "symlinkat", "readlink", "readlinkat", "chmod", "fchmod", "fchmodat", "chown", "fchown",
    "lchown", "fchownat", "umask", "gettimeofday", "getrlimit", "setrlimit", "prlimit64",
    "getrusage", "sysinfo", "times", "time", "clock_gettime", "getuid", "getgid", "setuid",
    "setgid", "geteuid", "getegid", "setpgid", "getpgid", "setsid", "getsid", "getgroups",
    "setgroups", "set_priority", "getpriority", "setpriority", "arch_prctl", "prctl",
    "set_tid_address", "futex", "sigaltstack", "rt_sigaction", "rt_sigprocmask",
    "rt_sigreturn", "sched_yield", "sched_getaffinity", "sched_setaffinity", "mount",
    "umount2", "sync", "reboot", "statfs", "fstatfs", "epoll_create", "epoll_create1",
    "epoll_ctl", "epoll_wait", "epoll_pwait", "getrandom", "mknod", "utimensat",
    "copy_file_range", "semget", "semop", "semctl", "shmget", "shmat", "shmdt", "shmctl",
    "init_module", "finit_module", "delete_module", "bpf",
)

ZCORE_SYSCALLS: tuple[str, ...] = (
    "read", "write", "openat", "open", "close", "fstat", "fstatat", "stat", "lstat", "lseek",
    "ioctl", "pread", "pwrite", "readv", "writev", "sendfile", "fcntl", "flock", "fsync",
    "fdatasync", "truncate", "ftruncate", "getdents64", "getcwd", "chdir", "renameat",
    "rename", "mkdirat", "mkdir", "rmdir", "linkat", "link", "unlinkat", "unlink",
    "symlinkat", "readlinkat", "readlink", "fchmod", "fchmodat", "fchown", "fchownat",
    "faccessat", "access", "dup2", "dup3", "pipe", "pipe2", "utimensat", "copy_file_range",
    "poll", "ppoll", "pselect6", "select", "epoll_create1", "epoll_ctl", "epoll_pwait",
    "statfs", "fstatfs", "sync", "mount", "umount2", "brk", "mmap", "mprotect", "munmap",
    "madvise", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "kill",
    "tkill", "tgkill", "sched_yield", "sched_getaffinity", "socket", "connect", "accept",
    "accept4", "sendto", "recvfrom", "sendmsg", "recvmsg", "shutdown", "bind", "listen",
    "getsockname", "getpeername", "setsockopt", "getsockopt", "clone", "fork", "vfork",
    "execve", "exit", "exit_group", "wait4", "set_tid_address", "futex", "nanosleep",
    "setitimer", "gettimeofday", "clock_gettime", "time", "semget", "semop", "semctl",
    "shmget", "shmat", "shmdt", "shmctl", "getpid", "gettid", "uname", "umask", "getrlimit",
    "setrlimit", "getrusage", "sysinfo", "times", "getuid", "getgid", "setuid", "geteuid",
    "getegid", "setpgid", "getppid", "setsid", "getpgid", "getgroups", "setgroups", "prctl",
    "membarrier", "prlimit64", "getrandom", "rt_sigqueueinfo", "arch_prctl", "reboot",
    "init_module", "finit_module", "delete_module", "bpf",
)

# Path prefixes of the legacy kernels' syscall handler types.
_LEGACY_OWNERS = ("rcore::syscall::Syscall", "linux_syscall::Syscall", "zcore::syscall::Syscall",
                  "linux_syscall::syscall::Syscall")


def _syscall_point(legacy: str, name: str) -> AttachPoint:
    syscalls = _LINUX_EQUIVALENT.get(name, (name,))
    return AttachPoint(legacy, syscalls, f"__x64_sys_{syscalls[0]}")


def _build_table() -> dict[str, AttachPoint]:
    table: dict[str, AttachPoint] = {}
    for owner, names in (("rcore::syscall::Syscall", RCORE_SYSCALLS),
                         ("linux_syscall::Syscall", ZCORE_SYSCALLS)):
        for name in names:
            for spelling in (f"<{owner}>::sys_{name}", f"{owner}::sys_{name}"):
                table[spelling] = _syscall_point(spelling, name)
    return table


SYMBOLS: dict[str, AttachPoint] = _build_table()
"""Legacy symbol (demangled) -> Linux attach point.  Mangled symbols are demangled first."""


def register_symbol(symbol: str, *, syscalls: tuple[str, ...] = (),
                    function: str | None = None) -> AttachPoint:
    """Map a legacy symbol (mangled or demangled) to Linux syscalls and/or a kernel function."""
    if not syscalls and not function:
        raise ValueError("register_symbol needs syscalls=(...) or function=...")
    key = demangle(symbol)
    point = AttachPoint(key, tuple(syscalls), function)
    SYMBOLS[key] = point
    return point


_MANGLED = re.compile(r"_ZN((?:\d+[^\d][^E]*?)+)E$")
_ESCAPES = {"$LT$": "<", "$GT$": ">", "$u20$": " ", "$RF$": "&", "$BP$": "*", "$C$": ",",
            "$u7b$": "{", "$u7d$": "}", "$u5b$": "[", "$u5d$": "]", "$u27$": "'",
            "$SP$": "@", "$LP$": "(", "$RP$": ")"}


def demangle(symbol: str) -> str:
    """Demangle a legacy Rust symbol (``_ZN...E``, the hash dropped); others are returned as
    they are."""
    if not symbol.startswith("_ZN") or not symbol.endswith("E"):
        return symbol
    body = symbol[3:-1]
    parts: list[str] = []
    pos = 0
    while pos < len(body):
        match = re.match(r"\d+", body[pos:])
        if match is None:
            return symbol
        length = int(match.group())
        pos += len(match.group())
        parts.append(body[pos:pos + length])
        pos += length
    if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
        parts.pop()
    out = []
    for part in parts:
        if part.startswith("_$"):
            part = part[1:]
        for code, char in _ESCAPES.items():
            part = part.replace(code, char)
        out.append(part.replace("..", "::"))
    return "::".join(out)


_LINUX_SYSCALL_FUNC = re.compile(r"^(?:__x64_|__ia32_|__arm64_|__riscv_|__se_|__do_)?sys_(\w+)$")


def resolve_symbol(symbol: str) -> AttachPoint:
    """The Linux attach point of ``symbol``; LegacyError(ENOENT) when unknown."""
    name = demangle(symbol.strip())
    point = SYMBOLS.get(name)
    if point is not None:
        return point
    for owner in _LEGACY_OWNERS:
        for form in (f"<{owner}>::sys_", f"{owner}::sys_"):
            if name.startswith(form):
                raise LegacyError(_errno.ENOENT, f"unknown legacy symbol {symbol!r}: the legacy "
                                  "kernels had no such syscall handler; add it with "
                                  "compat.register_symbol()")
    if "::" in name or "<" in name:
        raise LegacyError(_errno.ENOENT, f"unknown legacy symbol {symbol!r}: map it to a Linux "
                          "attach point with compat.register_symbol()")
    match = _LINUX_SYSCALL_FUNC.match(name)
    if match:
        return AttachPoint(name, (match.group(1),), name)
    if not re.fullmatch(r"[A-Za-z_][\w.]*", name):
        raise LegacyError(_errno.ENOENT, f"{symbol!r} is not a kernel symbol name")
    return AttachPoint(name, (), name)


def parse_target(target: str | bytes, dialect: Dialect | str = Dialect.RCORE) -> Target:
    """Parse a legacy target string; EINVAL for a bad grammar, ENOENT for an unknown symbol."""
    text = target.decode("utf-8", "replace") if isinstance(target, bytes) else target
    sep = ":" if Dialect(dialect) is Dialect.RCORE else "$"
    kind, found, symbol = text.partition(sep)
    if not found:
        raise LegacyError(_errno.EINVAL, f"target {text!r} lacks the {sep!r} separator: write "
                          f"'kprobe{sep}<symbol>' ({Dialect(dialect).value} dialect)")
    phase = _PHASES.get(kind.strip().lower())
    if phase is None:
        raise LegacyError(_errno.EINVAL, f"target type {kind!r} is not one of kprobe, "
                          "kretprobe@entry, kretprobe@exit")
    if not symbol.strip():
        raise LegacyError(_errno.ENOENT, f"target {text!r} names no symbol")
    return Target(text, phase, symbol.strip(), resolve_symbol(symbol))
