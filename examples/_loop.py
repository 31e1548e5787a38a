"""What the example tools share at run time: stop cleanly on Ctrl-C, SIGTERM or --duration."""

from __future__ import annotations

import signal
import time
from types import FrameType


class Stopper:
    """``while not stop: ...``: false until Ctrl-C (SIGINT), SIGTERM, or ``duration`` seconds
    (0: no limit) have passed since it was made.  The signals only set a flag, so a poll in
    progress finishes and every link and buffer is closed by the ``with`` blocks around the
    loop (libbpf-tools' ``sig_int`` handler setting ``exiting``)."""

    def __init__(self, duration: float = 0.0) -> None:
        self.deadline = time.monotonic() + duration if duration > 0 else None
        self.interrupted = False
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.interrupted = True

    def __bool__(self) -> bool:
        return self.interrupted or (self.deadline is not None
                                    and time.monotonic() >= self.deadline)

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when it is time to stop."""
        end = time.monotonic() + seconds
        if self.deadline is not None:
            end = min(end, self.deadline)
        while not self and time.monotonic() < end:
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))
