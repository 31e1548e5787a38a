"""The supervisor: start the program under the filter, answer its ``bpf()`` calls, clean up."""

from __future__ import annotations

import errno as _errno
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from types import FrameType
from typing import IO, Any, TextIO

from ..attr import Dialect
from ._handlers import CallerGone, Outcome, Translator, command_name
from ._launch import spawn
from ._remote import RemoteProcess
from ._seccomp import Listener, Notification, build_filter, native_arch

__all__ = ["Supervisor", "FORWARDED_SIGNALS"]

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
"""Signals the command line passes on to the program.  SIGINT and SIGQUIT are ignored by the
supervisor instead: a terminal already sends them to the whole foreground process group."""


class Supervisor:
    """Run ``argv`` with its ``bpf()`` calls translated by compat; :meth:`run` returns its exit
    status as :attr:`subprocess.Popen.returncode` does (negative: killed by that signal).

    ``trace``: print each call (legacy call -> Linux calls = result) to ``trace_stream``
    (stderr).  ``reply_delay``: seconds to wait before answering each translated call (a test
    aid exposing the races of a caller dying mid-call).  ``stdin``/``stdout``/``stderr`` go to
    :class:`subprocess.Popen` (``process`` is the program's ``Popen`` once started).  Everything
    the program loaded and attached is released when it exits.
    """

    def __init__(self, argv: Sequence[str | os.PathLike[str]], *,
                 dialect: Dialect | str = Dialect.RCORE,
                 trace: bool = False, trace_stream: TextIO | None = None,
                 strict_legacy_errors: bool = False, reply_delay: float = 0.0,
                 stdin: int | IO[Any] | None = None, stdout: int | IO[Any] | None = None,
                 stderr: int | IO[Any] | None = None) -> None:
        if not argv:
            raise ValueError("no program to run")
        self.argv = [os.fspath(a) for a in argv]
        self.translator = Translator(dialect, strict_legacy_errors=strict_legacy_errors)
        self.trace = trace
        self.trace_stream = trace_stream
        self.reply_delay = reply_delay
        self._stdio = (stdin, stdout, stderr)
        self.arch = native_arch()
        self.process: subprocess.Popen[bytes] | None = None
        self.calls = 0          # notifications answered
        self.died_mid_call = 0  # notifications whose caller went away first
        self.prog_ids: list[int] = []  # kernel ids of every program loaded for the program

    # ---------------------------------------------------------------- output

    def _say(self, text: str) -> None:
        stream = self.trace_stream if self.trace_stream is not None else sys.stderr
        stream.write(f"compat: {text}\n")
        stream.flush()

    def _trace(self, notif: Notification, tgid: int, outcome: Outcome, result: str) -> None:
        if not self.trace:
            return
        who = f"pid {tgid}" if tgid == notif.pid else f"pid {tgid} tid {notif.pid}"
        linux = f" -> {outcome.linux}" if outcome.linux else ""
        self._say(f"[{who}] {outcome.legacy}{linux} = {result}")

    # ---------------------------------------------------------------- running

    def run(self, *, forward_signals: bool = False) -> int:
        """Start the program, serve it until it exits, release everything; its exit status.

        ``forward_signals`` (main thread only): pass SIGTERM, SIGHUP, SIGUSR1, SIGUSR2 on to the
        program and ignore SIGINT/SIGQUIT while it runs (the command line does this).
        """
        code = build_filter(self.arch)
        saved: dict[int, signal._HANDLER] = {}
        if forward_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGQUIT, *FORWARDED_SIGNALS):
                saved[sig] = signal.getsignal(sig)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGQUIT, signal.SIG_IGN)
        try:
            proc, listener_fd, _killable = spawn(self.argv, code, stdin=self._stdio[0],
                                                   stdout=self._stdio[1], stderr=self._stdio[2])
            self.process = proc
            listener = Listener(listener_fd)
            for sig in FORWARDED_SIGNALS if saved else ():
                signal.signal(sig, self._forward)
            pidfd = os.pidfd_open(proc.pid)
            try:
                self._serve(listener, pidfd)
            except BaseException:
                proc.kill()  # the supervisor failed: never leave the program running unserved
                raise
            finally:
                listener.close()
                os.close(pidfd)
                status = proc.wait()
                self.translator.close()
        finally:
            for signum, handler in saved.items():
                signal.signal(signum, handler)
        return status

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        if self.process is not None and self.process.returncode is None:
            try:
                self.process.send_signal(signum)
            except ProcessLookupError:
                pass

    def _serve(self, listener: Listener, pidfd: int) -> None:
        poller = select.poll()
        poller.register(listener.fd, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        while True:
            events = dict(poller.poll())
            if events.get(listener.fd, 0) & select.POLLIN:
                self._one(listener)
            elif events.get(listener.fd, 0) & (select.POLLHUP | select.POLLERR):
                poller.unregister(listener.fd)  # no task uses the filter any more
            if pidfd in events:
                return  # the program exited: stop, whatever its children still do

    def _one(self, listener: Listener) -> None:
        try:
            notif = listener.receive()
        except OSError as exc:
            if exc.errno in (_errno.ENOENT, _errno.EINTR):
                return  # the caller died between poll and receive
            raise
        if notif.nr != self.arch.nr_bpf or notif.arch != self.arch.audit_arch:
            listener.let_kernel_run(notif.id)  # not ours (cannot happen with our filter)
            return
        try:
            proc = RemoteProcess(notif.pid)
        except OSError:
            if listener.id_valid(notif.id):  # alive but invisible (another pid namespace)
                self._answer(listener, notif, notif.pid, Outcome(
                    command_name(notif.cmd), "cannot reach the caller", -_errno.ENOSYS))
            else:
                self._gone(notif, notif.pid, command_name(notif.cmd))
            return
        with proc:
            def still_pending() -> None:
                if not listener.id_valid(notif.id):
                    raise CallerGone

            try:
                still_pending()  # the pidfd and the memory we read belong to the caller
                outcome = self.translator.handle(notif.cmd, notif.attr, proc, still_pending,
                                                 self.trace)
            except CallerGone:
                self._gone(notif, proc.tgid, command_name(notif.cmd))
                return
            except Exception:  # noqa: BLE001 - a bug in a handler must not hang the program
                self._say(f"internal error handling {command_name(notif.cmd)}:\n"
                          + traceback.format_exc().rstrip())
                failure = -_errno.ENOEXEC if self.translator.dialect is Dialect.ZCORE \
                    else -_errno.EINVAL
                outcome = Outcome(command_name(notif.cmd), "internal error", failure)
            self._answer(listener, notif, proc.tgid, outcome)

    def _gone(self, notif: Notification, tgid: int, what: str) -> None:
        self.died_mid_call += 1
        if self.trace:
            self._say(f"[pid {tgid}] {what}: the caller died mid-call; nothing done")

    def _answer(self, listener: Listener, notif: Notification, tgid: int,
                outcome: Outcome) -> None:
        if self.reply_delay and not outcome.run_in_kernel:
            time.sleep(self.reply_delay)
        try:
            if outcome.run_in_kernel:
                listener.let_kernel_run(notif.id)
                result = "(the kernel's)"
            elif outcome.install >= 0:
                try:
                    result = f"fd {listener.install_fd(notif.id, outcome.install)}"
                except OSError as exc:
                    if exc.errno == _errno.ENOENT or not exc.errno:
                        raise
                    # e.g. EMFILE: the program's fd table is full; it gets the errno
                    if outcome.undo is not None:
                        outcome.undo()
                        outcome.undo = None
                    failure = -_errno.ENOEXEC if self.translator.dialect is Dialect.ZCORE \
                        else -exc.errno
                    outcome.linux += f"; NOTIF_ADDFD failed: {_errno.errorcode.get(exc.errno)}"
                    listener.reply(notif.id, failure)
                    result = f"-{_errno.errorcode.get(-failure, -failure)}"
            else:
                listener.reply(notif.id, outcome.result)
                result = str(outcome.result) if outcome.result >= 0 else \
                    f"-{_errno.errorcode.get(-outcome.result, -outcome.result)}"
        except OSError as exc:
            if exc.errno != _errno.ENOENT:
                raise
            if outcome.undo is not None:
                outcome.undo()  # e.g. release the program nobody will ever hold
            self.died_mid_call += 1
            if self.trace:
                done = f" -> {outcome.linux}" if outcome.linux else ""
                self._say(f"[pid {tgid}] {outcome.legacy}{done}: the caller died before the "
                          "answer; undone")
            return
        finally:
            if outcome.install >= 0 and not outcome.keep_local:
                os.close(outcome.install)
        self.calls += 1
        if outcome.install >= 0 and outcome.keep_local:
            for ident, program in self.translator.programs.items():
                if program.compat_fd == outcome.install:
                    self.prog_ids.append(ident)
        self._trace(notif, tgid, outcome, result)
