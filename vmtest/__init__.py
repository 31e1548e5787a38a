"""Run the pytest suite's kernel tests inside real kernels booted under QEMU.

``python -m vmtest run --kernel 6.1 -- -k kprobe`` fetches Debian's cloud kernel for that release
(private apt configuration, nothing installed), builds a read-only disk image holding this
checkout, its venv's Python and the tools the tests need, boots it with an initramfs under
``qemu-system-x86_64`` (TCG) and brings back pytest's output, junit XML and exit code.
``python -m vmtest matrix`` runs every tier and prints a per-feature table.
See ``docs/kernel-matrix.md``.
"""

from __future__ import annotations

__all__ = ["cache_dir", "cache_lock"]

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_dir() -> Path:
    """Where kernels, libbpf builds and images are cached (outside the source tree)."""
    override = os.environ.get("PYLIBBPF_VM_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pylibbpf-vm"


@contextmanager
def cache_lock() -> Iterator[None]:
    """Serialize downloads and image builds between concurrent runs (``flock``)."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
