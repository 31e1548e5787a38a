"""What each trapped ``bpf()`` call becomes: legacy semantics executed through compat.

=================  ==========================================================================
command            handling
=================  ==========================================================================
0 MAP_CREATE       compat's legacy rules (HASH/ARRAY only, ARRAY keys 4 bytes) in the
                   supervisor; the map fd is installed into the program (``NOTIF_ADDFD``)
1, 3, 4            rcore: *continue* — Linux runs the call on the program's own fd with the
                   same semantics (ENOENT for a missing key, EINVAL deleting from an ARRAY,
                   the first key after a missing one, EFAULT for bad pointers); zcore: run here
                   on a copy of the fd, so that every failure can become ``-ENOEXEC``
2 UPDATE_ELEM      key and value are copied out of the program and updated with compat's
                   legacy rules (ARRAY ignores flags, flags must be 0/1/2, legacy errnos with
                   ``strict_legacy_errors``)
8 PROG_ATTACH      target string read in the dialect's layout, attached with compat
9 PROG_DETACH      rcore: EINVAL (as the rCore kernel); zcore: detach by prog fd
1000 PROG_LOAD_EX  ELF bytes, map_array and names copied out, map fds copied in with
                   ``pidfd_getfd``, loaded with compat; the program fd is installed
anything else      *continue*: the kernel runs it untouched (``BPF_PROG_LOAD`` (5) included:
                   the legacy kernels never implemented it, so a program calling it speaks Linux)
=================  ==========================================================================

Each handler reads everything it needs first, then confirms the call is still pending
(``still_pending``, i.e. ``SECCOMP_IOCTL_NOTIF_ID_VALID``) before acting, so that the memory it
read belonged to the caller and a dead caller's work is never done.

The supervisor acts with the *caller's* privileges, not its own: a handler reads the calling
thread's credentials with the rest, and before the first kernel call it would make, refuses
what the kernel would refuse that caller (``_privileges``): map creation, the program load of
PROG_LOAD_EX and the variant load (or perf event) of PROG_ATTACH.  Checks that the kernel or
compat's user-space side make before the privilege check (legacy rules, the ELF, the target,
the map sizes) keep their errnos.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from ..api import _MAX_ELF, _MAX_MAP_ARRAY, _MAX_NAME, release_program
from ..attr import ATTR_SIZE, BpfCmd, Dialect
from ..backends import Attachment, attach, attachments, choose_backend, detach
from ..context import Backend
from ..loader import (
    BPF_PROG_TYPE_TRACEPOINT,
    _is_modern,
    load_legacy,
    parse_legacy_elf,
    program_for_fd,
)
from ..maps import BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH, legacy_map_create, legacy_map_elem_op
from ..rewrite import rewrite
from ..targets import Target, parse_target
from ._fdinfo import bpf_fd_info, map_sizes, prog_id
from ._privileges import EVERY, NONE, Credentials, entry_check, sysctl
from ._remote import RemoteProcess
from ._seccomp import native_arch

__all__ = ["CallerGone", "Outcome", "LoadedProgram", "Translator", "command_name"]

_MAX_TARGET = _MAX_NAME * 4
_MAP_TYPES = {BPF_MAP_TYPE_HASH: "HASH", BPF_MAP_TYPE_ARRAY: "ARRAY"}


class CallerGone(Exception):
    """The trapped call is no longer pending: its caller died or was interrupted."""


def command_name(cmd: int) -> str:
    """``BPF_MAP_CREATE``... for the legacy commands, ``bpf cmd N`` otherwise."""
    try:
        return f"BPF_{BpfCmd(cmd).name}"
    except ValueError:
        return f"bpf cmd {cmd}"


@dataclass
class Outcome:
    """How to answer one call, and what to say about it under ``--trace``.

    ``install``: a supervisor fd to install into the caller as the return value (closed after
    unless ``keep_local``); ``undo`` runs when the caller is gone before the answer reaches it.
    """

    legacy: str
    linux: str = ""
    result: int = 0
    run_in_kernel: bool = False
    install: int = -1
    keep_local: bool = False
    undo: Callable[[], None] | None = None


@dataclass
class LoadedProgram:
    """A program loaded for the supervised process: compat's fd (in the supervisor), its
    kernel id (how the program's own fd is recognised), and the supervisor's copies of the
    map fds the rewritten code refers to (kept: each attach loads a new variant)."""

    compat_fd: int
    prog_id: int
    owner: int
    map_fds: list[int] = field(default_factory=list)

    def close(self) -> None:
        """Detach it everywhere and release it (compat's fds and the map copies)."""
        if program_for_fd(self.compat_fd) is not None:
            release_program(self.compat_fd)
        for fd in self.map_fds:
            os.close(fd)
        self.map_fds.clear()


def _copy_map_fd(proc: RemoteProcess, map_fd: int) -> int:
    """A copy (ours to close) of the caller's map fd; EBADF when the caller has no such fd."""
    try:
        return proc.copy_fd(map_fd)
    except OSError as exc:
        raise OSError(_errno.EBADF, f"fd {map_fd} is not open") from exc


def _fmt_flags(flags: int) -> str:
    return {0: "BPF_ANY", 1: "BPF_NOEXIST", 2: "BPF_EXIST"}.get(flags, str(flags))


_Handler = Callable[[int, bytes, RemoteProcess, Callable[[], None], Outcome], None]


class Translator:
    """Executes trapped legacy calls through compat; owns what it loads for the program."""

    def __init__(self, dialect: Dialect | str = Dialect.RCORE, *,
                 strict_legacy_errors: bool = False) -> None:
        self.dialect = Dialect(dialect)
        self.strict = strict_legacy_errors
        self.programs: dict[int, LoadedProgram] = {}  # by kernel prog id

    # ---------------------------------------------------------------- entry point

    def handle(self, cmd: int, attr_ptr: int, proc: RemoteProcess,
               still_pending: Callable[[], None], trace: bool = False) -> Outcome:
        """Translate one call; ``still_pending`` raises :class:`CallerGone` when it is not."""
        name = command_name(cmd)
        handlers: dict[int, _Handler] = {
            BpfCmd.MAP_CREATE: self._map_create,
            BpfCmd.MAP_UPDATE_ELEM: self._map_update,
            BpfCmd.PROG_LOAD_EX: self._load_ex,
            BpfCmd.PROG_ATTACH: self._attach,
            BpfCmd.PROG_DETACH: self._detach,
        }
        handler = handlers.get(cmd)
        elem_ops = (BpfCmd.MAP_LOOKUP_ELEM, BpfCmd.MAP_DELETE_ELEM, BpfCmd.MAP_GET_NEXT_KEY)
        if handler is None and cmd in elem_ops:
            if self.dialect is Dialect.ZCORE:
                handler = self._map_elem_here
            else:
                return Outcome(self._describe_elem(cmd, attr_ptr, proc) if trace else name,
                               "continue: Linux runs it on the program's fd (same semantics)",
                               run_in_kernel=True)
        if handler is None:
            return Outcome(f"{name}(attr={attr_ptr:#x})", "continue: not a legacy command, "
                           "the kernel runs it untouched", run_in_kernel=True)
        outcome = Outcome(name)
        try:
            self._check_entry(cmd, proc, still_pending)
            attr = proc.read(attr_ptr, ATTR_SIZE)
        except OSError as exc:
            outcome.legacy = f"{name}(attr={attr_ptr:#x})"
            return self._failed(outcome, exc, still_pending)
        try:
            handler(cmd, attr, proc, still_pending, outcome)
        except CallerGone:
            raise
        except OSError as exc:
            return self._failed(outcome, exc, still_pending)
        except (TypeError, ValueError) as exc:
            return self._failed(outcome, OSError(_errno.EINVAL, str(exc)), still_pending)
        return outcome

    def _failed(self, outcome: Outcome, exc: OSError, still_pending: Callable[[], None]
                ) -> Outcome:
        still_pending()
        err = exc.errno or _errno.EINVAL
        if exc.errno == _errno.ESRCH:  # the process vanished while we read it
            raise CallerGone
        outcome.result = -_errno.ENOEXEC if self.dialect is Dialect.ZCORE else -err
        detail = exc.strerror or os.strerror(err)
        outcome.linux = (outcome.linux + "; " if outcome.linux else "") + \
            f"failed: {_errno.errorcode.get(err, err)} ({detail})"
        return outcome

    @staticmethod
    def _check_entry(cmd: int, proc: RemoteProcess, still_pending: Callable[[], None]) -> None:
        """Kernels that refuse an unprivileged caller at ``bpf()`` entry (every command before
        5.19; map creation and program loads until 6.4) do so before reading the attr: so does
        the supervisor there, for the legacy commands that stand for those."""
        disabled = sysctl("unprivileged_bpf_disabled")
        refused = entry_check(native_arch().nr_bpf, disabled)
        if refused == NONE:
            return
        # the legacy commands whose translation is this one bpf() call with the caller's
        # attr; a load or an attach reads the ELF or tracefs in user space first, and a
        # malformed one fails there, before the kernel is asked
        if cmd in (BpfCmd.PROG_LOAD_EX, BpfCmd.PROG_ATTACH, BpfCmd.PROG_DETACH):
            return
        if refused == EVERY or cmd == BpfCmd.MAP_CREATE:
            creds = proc.credentials()
            still_pending()
            creds.check_entry(disabled)

    def close(self) -> None:
        """Detach and release every program loaded for the supervised process."""
        programs = list(self.programs.values())
        self.programs.clear()
        for program in programs:
            program.close()

    # ---------------------------------------------------------------- maps

    def _map_create(self, cmd: int, attr: bytes, proc: RemoteProcess,
                    still_pending: Callable[[], None], out: Outcome) -> None:
        map_type, key_size, value_size, max_entries = struct.unpack_from("=IIII", attr)
        kind = _MAP_TYPES.get(map_type, str(map_type))
        out.legacy = (f"BPF_MAP_CREATE(map_type={kind}, key_size={key_size}, "
                      f"value_size={value_size}, max_entries={max_entries})")
        creds = proc.credentials()
        still_pending()
        if map_type in _MAP_TYPES and (map_type != BPF_MAP_TYPE_ARRAY or key_size == 4) \
                and max_entries and key_size and value_size:
            # the legacy rules and the kernel's size checks (map_alloc_check) passed: now
            # map_create's privilege check
            creds.check_map_create(sysctl("unprivileged_bpf_disabled"))
        fd = legacy_map_create(map_type, key_size, value_size, max_entries)
        if fd < 0:
            raise OSError(-fd, "legacy map create refused")
        try:
            map_id = str(map_sizes(fd)[2])
        except OSError:
            map_id = "?"
        out.linux = f"BPF_MAP_CREATE -> map id {map_id}, installed with NOTIF_ADDFD"
        out.install = fd

    def _map_update(self, cmd: int, attr: bytes, proc: RemoteProcess,
                    still_pending: Callable[[], None], out: Outcome) -> None:
        map_fd, _pad, key, value, flags = struct.unpack_from("=IIQQQ", attr)
        out.legacy = (f"BPF_MAP_UPDATE_ELEM(map_fd={map_fd}, key={key:#x}, value={value:#x}, "
                      f"flags={_fmt_flags(flags)})")
        local = _copy_map_fd(proc, map_fd)
        try:
            key_size, value_size, _id = map_sizes(local)
            key_bytes = proc.read(key, key_size)
            value_bytes = proc.read(value, value_size)
            still_pending()
            kbuf = ctypes.create_string_buffer(key_bytes, len(key_bytes))
            vbuf = ctypes.create_string_buffer(value_bytes, len(value_bytes))
            rc = legacy_map_elem_op(cmd, local, ctypes.addressof(kbuf), ctypes.addressof(vbuf),
                                    flags, self.strict)
        finally:
            os.close(local)
        out.linux = "BPF_MAP_UPDATE_ELEM on a copy of the fd (legacy rules)"
        if rc < 0:
            raise OSError(-rc, os.strerror(-rc))
        out.result = 0

    def _map_elem_here(self, cmd: int, attr: bytes, proc: RemoteProcess,
                       still_pending: Callable[[], None], out: Outcome) -> None:
        map_fd, _pad, key, value, _flags = struct.unpack_from("=IIQQQ", attr)
        out.legacy = f"{command_name(cmd)}(map_fd={map_fd}, key={key:#x}, value={value:#x})"
        local = _copy_map_fd(proc, map_fd)
        try:
            key_size, value_size, _id = map_sizes(local)
            no_key = cmd == BpfCmd.MAP_GET_NEXT_KEY and key == 0
            kbuf = ctypes.create_string_buffer(b"" if no_key else proc.read(key, key_size),
                                               key_size)
            out_size = key_size if cmd == BpfCmd.MAP_GET_NEXT_KEY else value_size
            obuf = ctypes.create_string_buffer(out_size)
            still_pending()
            out_ptr = 0 if cmd == BpfCmd.MAP_DELETE_ELEM else ctypes.addressof(obuf)
            rc = legacy_map_elem_op(cmd, local, 0 if no_key else ctypes.addressof(kbuf),
                                    out_ptr, 0, self.strict)
        finally:
            os.close(local)
        out.linux = f"{command_name(cmd)} on a copy of the fd"
        if rc < 0:
            raise OSError(-rc, os.strerror(-rc))
        if cmd != BpfCmd.MAP_DELETE_ELEM:
            proc.write(value, obuf.raw)
            out.linux += f", {out_size} bytes written back"

    def _describe_elem(self, cmd: int, attr_ptr: int, proc: RemoteProcess) -> str:
        try:
            map_fd, _pad, key, value, flags = struct.unpack_from(
                "=IIQQQ", proc.read(attr_ptr, ATTR_SIZE))
        except OSError:
            return f"{command_name(cmd)}(attr={attr_ptr:#x}, unreadable)"
        return f"{command_name(cmd)}(map_fd={map_fd}, key={key:#x}, value={value:#x})"

    # ---------------------------------------------------------------- programs

    def _load_ex(self, cmd: int, attr: bytes, proc: RemoteProcess,
                 still_pending: Callable[[], None], out: Outcome) -> None:
        prog, size, count, array = struct.unpack_from("=QIIQ", attr)
        out.legacy = (f"BPF_PROG_LOAD_EX(prog={prog:#x}, prog_size={size}, "
                      f"map_array_len={count}, map_array={array:#x})")
        if size > _MAX_ELF:
            raise OSError(_errno.E2BIG, f"prog_size {size} is larger than {_MAX_ELF}")
        if count > _MAX_MAP_ARRAY:
            raise OSError(_errno.E2BIG, f"map_array_len {count} is too large")
        if not prog:
            raise OSError(_errno.EFAULT, "prog is NULL")
        if count and not array:
            raise OSError(_errno.EFAULT, "map_array is NULL but map_array_len is not 0")
        elf = proc.read(prog, size)
        raw = proc.read(array, 16 * count) if count else b""
        entries: list[tuple[str, int]] = []
        for k in range(count):
            name_ptr, fd = struct.unpack_from("=QI", raw, 16 * k)
            name = proc.read_cstring(name_ptr, _MAX_NAME).decode("utf-8", "replace")
            entries.append((name, fd))
        out.legacy = (f"BPF_PROG_LOAD_EX(prog_size={size}, map_array=["
                      + ", ".join(f"{n}={fd}" for n, fd in entries) + "])")
        copies: list[int] = []
        try:
            pairs = []
            for name, fd in entries:
                try:
                    copies.append(proc.copy_fd(fd))
                except OSError as exc:
                    raise OSError(_errno.EBADF, f"map_array entry {name!r}: fd {fd} is not "
                                  "open") from exc
                pairs.append((name, copies[-1]))
            creds = proc.credentials()
            still_pending()
            self._check_load(creds, elf, pairs)
            compat_fd = load_legacy(elf, pairs)
        except BaseException:
            for fd in copies:
                os.close(fd)
            raise
        loaded = LoadedProgram(compat_fd, prog_id(compat_fd), proc.tgid, copies)
        self.programs[loaded.prog_id] = loaded
        out.linux = (f"rewrite + BPF_PROG_LOAD(TRACEPOINT) -> prog id {loaded.prog_id}, "
                     "installed with NOTIF_ADDFD")
        out.install = compat_fd
        out.keep_local = True

        def undo() -> None:
            self.programs.pop(loaded.prog_id, None)
            loaded.close()

        out.undo = undo

    @staticmethod
    def _check_load(creds: Credentials, elf: bytes, pairs: list[tuple[str, int]]) -> None:
        """``BPF_PROG_LOAD``'s capability checks for the program PROG_LOAD_EX would load (a
        TRACEPOINT program; a libbpf object's own type).  A refused caller still gets the
        errors of the user-space steps that come first (ELF, map_array, rewrite)."""
        modern = _is_modern(elf)
        prog_type = _modern_prog_type(elf) if modern else BPF_PROG_TYPE_TRACEPOINT
        if prog_type is None:
            return  # libbpf cannot open it, or it has not one program: compat says why
        try:
            creds.check_prog_load(prog_type, sysctl("unprivileged_bpf_disabled"))
        except OSError as refusal:
            if not modern:
                _dry_run(elf, pairs)
            raise refusal from None

    def _check_attach(self, creds: Credentials, program: LoadedProgram, target: Target
                      ) -> None:
        """The kernel calls of an attach: a new variant load (``BPF_PROG_LOAD`` of a
        TRACEPOINT, KPROBE or TRACING program, all needing CAP_BPF and CAP_PERFMON), or for
        a libbpf object's program, which is not reloaded, the ``perf_event_open``.  compat's
        own refusals (no backend, a duplicate: EAGAIN) come first."""
        try:
            backend = choose_backend(target)
        except OSError:
            return  # compat's attach gives the same error
        for att in attachments():
            if att.prog_fd == program.compat_fd and att.target.phase is target.phase \
                    and att.target.point.legacy == target.point.legacy:
                return  # EAGAIN from compat
        legacy = program_for_fd(program.compat_fd)
        if legacy is not None and legacy.is_modern:
            if backend is Backend.FENTRY or legacy.modern_type not in (None, 2, 5):
                return  # compat refuses these (EINVAL) before any kernel call
            creds.check_perf_event_open(backend is Backend.KPROBE,
                                        sysctl("perf_event_paranoid", 2))
        else:
            creds.check_prog_load(BPF_PROG_TYPE_TRACEPOINT,
                                  sysctl("unprivileged_bpf_disabled"))
            if backend is not Backend.FENTRY:  # then the variant's perf_event_open
                creds.check_perf_event_open(backend is Backend.KPROBE,
                                            sysctl("perf_event_paranoid", 2))

    def _program(self, proc: RemoteProcess, prog_fd: int) -> LoadedProgram:
        """The program behind the caller's ``prog_fd`` (recognised by kernel id, so a closed
        and reused fd number is not mistaken for it); ENOENT as the legacy kernel."""
        try:
            local = proc.copy_fd(prog_fd)
        except OSError:
            raise OSError(_errno.ENOENT, f"fd {prog_fd} is not open") from None
        try:
            ident = prog_id(local)
        except OSError:
            ident = -1
        finally:
            os.close(local)
        program = self.programs.get(ident)
        if program is None:
            raise OSError(_errno.ENOENT, f"fd {prog_fd} is not a program BPF_PROG_LOAD_EX "
                          "returned")
        return program

    def _attach(self, cmd: int, attr: bytes, proc: RemoteProcess,
                still_pending: Callable[[], None], out: Outcome) -> None:
        if self.dialect is Dialect.RCORE:
            target_ptr, prog_fd, _pad = struct.unpack_from("=QII", attr)
            out.legacy = f"BPF_PROG_ATTACH(target={target_ptr:#x}, prog_fd={prog_fd})"
            program = self._program(proc, prog_fd)
            if not target_ptr:
                raise OSError(_errno.EFAULT, "target is NULL")
            target = proc.read_cstring(target_ptr, _MAX_TARGET)
        else:
            target_ptr, str_len, prog_fd = struct.unpack_from("=QII", attr)
            out.legacy = (f"BPF_PROG_ATTACH(target={target_ptr:#x}, str_len={str_len}, "
                          f"prog_fd={prog_fd})")
            program = self._program(proc, prog_fd)
            if str_len > _MAX_TARGET:
                raise OSError(_errno.EINVAL, f"str_len {str_len} is too large")
            if str_len and not target_ptr:
                raise OSError(_errno.EFAULT, "target is NULL")
            target = proc.read(target_ptr, str_len)
        text = target.decode("utf-8", "replace")
        out.legacy = (out.legacy.split("(")[0] + f"(target={text!r}, prog_fd={prog_fd}"
                      + (f", str_len={len(target)}" if self.dialect is Dialect.ZCORE else "")
                      + ")")
        parsed = parse_target(target, self.dialect)
        creds = proc.credentials()
        still_pending()
        self._check_attach(creds, program, parsed)
        att: Attachment = attach(program.compat_fd, parsed)
        out.linux = (f"{att.backend.value}: load variant prog id {prog_id(att.linux_prog_fd)}, "
                     + ", ".join(f"perf_event_open({p}) + PERF_EVENT_IOC_SET_BPF"
                                 for p in att.points))

        def undo() -> None:
            try:
                detach(program.compat_fd, parsed)
            except OSError:
                pass

        out.undo = undo

    def _detach(self, cmd: int, attr: bytes, proc: RemoteProcess,
                still_pending: Callable[[], None], out: Outcome) -> None:
        _target, _len, prog_fd = struct.unpack_from("=QII", attr)
        if self.dialect is Dialect.RCORE:
            out.legacy = "BPF_PROG_DETACH"
            raise OSError(_errno.EINVAL, "the rCore kernel refused every detach")
        out.legacy = f"BPF_PROG_DETACH(prog_fd={prog_fd})"
        program = self._program(proc, prog_fd)
        still_pending()
        count = detach(program.compat_fd)
        out.linux = f"closed {count} attachment(s) (perf events and variant programs)"


def _modern_prog_type(elf: bytes) -> int | None:
    """The program type of a libbpf object's one program (``None`` when libbpf cannot open
    it or it has not exactly one program)."""
    import pylibbpf

    try:
        obj = pylibbpf.Object.open_mem(elf)
    except pylibbpf.BpfError:
        return None
    try:
        programs = list(obj.programs.values())
        return int(programs[0].type) if len(programs) == 1 else None
    finally:
        obj.close()


def _dry_run(elf: bytes, pairs: list[tuple[str, int]]) -> None:
    """compat's user-space steps of a legacy load, without loading: their errors (the ELF
    rules, a map_array fd that is no map, a pattern the rewrite cannot handle)."""
    from pylibbpf.elf import ElfError
    from pylibbpf.elf import insn as I

    parsed = parse_legacy_elf(elf, [name for name, _fd in pairs])
    for name, fd in pairs:
        if bpf_fd_info(fd, "map") is None:
            raise OSError(_errno.EBADF, f"map_array entry {name!r}: fd is not a BPF map")
    try:
        insns = I.decode(parsed.text, parsed.byteorder)
    except ElfError as exc:
        raise OSError(_errno.EINVAL, f".text is not BPF code: {exc}") from None
    rewrite(insns, parsed.map_relocs, dict(pairs))
