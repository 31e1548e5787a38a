"""The one error class of :mod:`pylibbpf.elf`."""

from __future__ import annotations

__all__ = ["ElfError"]


class ElfError(ValueError):
    """The input is not a well-formed eBPF ELF object (or not a valid instruction stream).

    Every problem found in the input bytes raises this class, never a third-party exception:
    the message names what is wrong and where (section, symbol, offset). It derives from
    :class:`ValueError` because the caller handed over a bad value; reading a file that cannot be
    opened still raises the usual :class:`OSError`.
    """
