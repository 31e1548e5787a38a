"""``python -m compat run``: run unmodified legacy C programs, their ``bpf()`` calls translated.

The program starts under a seccomp filter that turns its ``bpf()`` system calls (and nothing
else) into user notifications (``SECCOMP_RET_USER_NOTIF``).  The supervising Python process
receives them, reads the legacy ``union bpf_attr`` and what it points at out of the program's
memory (``process_vm_readv``), executes the legacy command through compat, installs any new fd
into the program (``SECCOMP_IOCTL_NOTIF_ADDFD``) and answers with the legacy return value.
It acts with the calling thread's privileges, not its own: what the kernel would refuse that
caller is refused with the kernel's errno (``_privileges``).  See ``docs/compat-run.md``.

    from compat.supervisor import Supervisor
    status = Supervisor(["./bpf_test"], trace=True).run()
"""

from __future__ import annotations

from ._handlers import LoadedProgram, Translator
from ._launch import launcher_path
from ._run import FORWARDED_SIGNALS, Supervisor
from ._seccomp import ARCHES, Arch, build_filter, native_arch
from ._symbols import load_symbol_map

__all__ = ["ARCHES", "Arch", "FORWARDED_SIGNALS", "LoadedProgram", "Supervisor", "Translator",
           "build_filter", "launcher_path", "load_symbol_map", "native_arch"]
