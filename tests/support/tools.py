"""Run an example tool (``python -m examples.<name>``) as a user would: start it, wait until
it says it is tracing, make the events happen, stop it with Ctrl-C (SIGINT), read its output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from tests.support.repetition import IN_GUEST

ROOT = Path(__file__).resolve().parent.parent.parent
# a guest (software emulation) loads and verifies 10-50 times slower than the host
START_TIMEOUT = 600.0 if IN_GUEST else 120.0


class Tool:
    """``with Tool("execsnoop", "-x") as tool: ...; out = tool.stop()``.

    Entering waits until the tool prints a line starting with ``ready`` (its header): from
    then on its programs are attached.  ``stop()`` sends SIGINT and returns everything the
    tool printed; it must exit with 0 on its own.  Leaving the block kills a tool still
    running."""

    def __init__(self, name: str, *args: str, ready: str) -> None:
        self.argv = [sys.executable, "-m", f"examples.{name}", *args]
        self.ready = ready
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self._ready = threading.Event()
        self.started = False

    def __enter__(self) -> Tool:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env, cwd=ROOT)
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,),
                                        daemon=True)
        self._reader.start()
        self._ready.wait(START_TIMEOUT)
        if self.started:
            return self
        self.proc.kill()
        self.proc.wait()
        self._reader.join()
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        raise AssertionError(f"{' '.join(self.argv[2:])} never printed {self.ready!r}:\n"
                             f"{''.join(self.lines)}{err}")

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line)
            if line.startswith(self.ready):
                self.started = True
                self._ready.set()
        self._ready.set()  # ended: nothing more to wait for

    def stop(self, timeout: float = 60.0) -> str:
        """Ctrl-C the tool; what it printed (its exit status must be 0)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def wait(self, timeout: float = 120.0) -> str:
        """Wait for the tool to end by itself (``--duration``); what it printed."""
        assert self.proc is not None
        assert self.proc.stderr is not None
        self.proc.wait(timeout=timeout)
        self._reader.join()
        err = self.proc.stderr.read()
        self.proc.stderr.close()
        text = "".join(self.lines)
        assert self.proc.returncode == 0, f"exit {self.proc.returncode}:\n{text}\n{err}"
        return text

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            self._reader.join()
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()


def trace_child(code: str, name: str, *args: str, ready: str) -> tuple[str, int]:
    """Run ``code`` in a new interpreter that waits for a line on stdin, trace it with tool
    ``name`` (``args`` may name the child's pid through ``{pid}``), let it go, and return
    the tool's output once the child has exited, with the child's pid."""
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, text=True)
    try:
        argv = [a.replace("{pid}", str(child.pid)) for a in args]
        with Tool(name, *argv, ready=ready) as tool:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.close()
            assert child.wait(timeout=120) == 0
            time.sleep(0.2)  # the tool's last poll
            out = tool.stop()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return out, child.pid
