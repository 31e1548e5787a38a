"""compat's exceptions: :class:`pylibbpf.BpfError` subclasses, so ``.errno`` holds the errno
the legacy kernel used and the message says what to fix."""

from __future__ import annotations

from pylibbpf import BpfError, VerifierError

__all__ = ["LegacyError", "LegacyVerifierError", "RewriteError"]


class LegacyError(BpfError):
    """A legacy call failed; ``errno`` is the legacy kernel's errno for the same failure."""


class RewriteError(LegacyError):
    """The legacy program has a pattern compat cannot translate; names the instruction."""


class LegacyVerifierError(VerifierError):
    """Linux's verifier refused the translated program.  ``log`` is the whole verifier log;
    ``hint`` names the legacy idiom that caused it, when compat recognises it."""

    def __init__(self, err: int, message: str, program: str, log: str, hint: str) -> None:
        super().__init__(err, message, program, log)
        self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\nlegacy idiom: {self.hint}" if self.hint else text
