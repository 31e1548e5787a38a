"""``trace_printk`` format translation: legacy ``{}`` placeholders -> Linux ``%`` formats.

The legacy kernel printed each ``{}`` as the next argument in unsigned 64-bit decimal, ``{{`` and
``}}`` as braces, and everything else as it is, to the console.  Linux's ``bpf_trace_printk``
takes a printf-style format and writes to ``/sys/kernel/tracing/trace_pipe``.

Limits: at most three placeholders (as on the legacy kernel); a lone ``{`` or ``}`` is printed as
it is; ``%`` is escaped as ``%%``; the string ends at its first NUL; only formats the program
builds from constants (on the stack, as legacy samples do) are translated, others pass unchanged.
"""

from __future__ import annotations

__all__ = ["translate_format", "PLACEHOLDER"]

PLACEHOLDER = b"%llu"


def translate_format(legacy: bytes) -> bytes:
    """The Linux format (NUL-terminated) for a legacy ``{}`` format."""
    text = legacy.split(b"\0", 1)[0]
    out = bytearray()
    i = 0
    while i < len(text):
        pair = text[i:i + 2]
        if pair == b"{}":
            out += PLACEHOLDER
            i += 2
        elif pair in (b"{{", b"}}"):
            out += pair[:1]
            i += 2
        elif text[i:i + 1] == b"%":
            out += b"%%"
            i += 1
        else:
            out += text[i:i + 1]
            i += 1
    return bytes(out) + b"\0"
