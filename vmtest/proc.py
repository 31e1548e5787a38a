"""Run a child (qemu, pytest) so that it never outlives us.

The child runs in its own process group (its own session) with ``PR_SET_PDEATHSIG`` set to
SIGKILL, so that even a ``kill -9`` of this Python process takes it down.  On timeout, Ctrl-C
or SIGTERM the whole group gets SIGTERM, then SIGKILL after a grace period; the ``finally``
path does the same whatever else went wrong.
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

PR_SET_PDEATHSIG = 1


class ChildTimeout(TimeoutError):
    """The child did not finish in time; it and its process group were killed."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) arrived while a child was running; it was killed."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def kill_group(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """SIGTERM the child's process group, SIGKILL it after ``grace`` seconds, reap the child."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:  # the group may hold grandchildren even after the leader is gone
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into :class:`Terminated` (main thread only; else a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated(f"signal {signal.Signals(signum).name}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_guarded(
    cmd: Sequence[str],
    *,
    timeout: float,
    on_line: Callable[[str], None],
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    on_start: Callable[[int], None] | None = None,
) -> int:
    """Run ``cmd``, passing each output line (stdout+stderr, ``\\r`` stripped) to ``on_line``.

    Returns the exit status (negative: killed by that signal).  Raises :class:`ChildTimeout`
    after ``timeout`` seconds and :class:`KeyboardInterrupt` (:class:`Terminated` for SIGTERM)
    when interrupted; in every case the child's whole process group is gone on return.
    """
    with sigterm_raises():
        proc = subprocess.Popen(
            list(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        try:
            if on_start is not None:
                on_start(proc.pid)
            lines: queue.Queue[bytes | None] = queue.Queue()

            def pump() -> None:
                assert proc.stdout is not None
                for raw in iter(proc.stdout.readline, b""):
                    lines.put(raw)
                lines.put(None)

            reader = threading.Thread(target=pump, daemon=True)
            reader.start()
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ChildTimeout(f"{cmd[0]} still running after {timeout:.0f} s: killed")
                try:
                    raw = lines.get(timeout=min(left, 0.5))
                except queue.Empty:
                    continue
                if raw is None:
                    break
                on_line(raw.decode(errors="replace").rstrip("\r\n").replace("\r", ""))
            return proc.wait()
        finally:
            if proc.poll() is None:
                kill_group(proc)
            else:
                try:  # leftovers of a finished leader
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if proc.stdout is not None:
                proc.stdout.close()
