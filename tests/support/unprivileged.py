"""Run Python as another user (setpriv as nobody) whatever the checkout's permissions.

A checkout under a private home (``/root/...``) cannot be read by uid 65534, so the package,
pyelftools and the objects a test passes are copied once per session into a world-readable
temporary folder, and the interpreter is the system one behind the venv's symlink.
"""

from __future__ import annotations

import atexit
import os
import shutil
import stat
import sys
import tempfile
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _traversable(path: Path) -> bool:
    """True when every folder above ``path`` lets others in (o+x)."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in path.parents)


@cache
def sandbox() -> Path:
    """A world-readable folder holding ``pylibbpf`` and ``elftools`` (removed at exit)."""
    import elftools

    root = Path(tempfile.mkdtemp(prefix="pylibbpf-unprivileged-"))
    atexit.register(shutil.rmtree, root, True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "pylibbpf", root / "pylibbpf", ignore=ignore)
    shutil.copytree(Path(elftools.__file__).parent, root / "elftools", ignore=ignore)
    for folder, _dirs, files in os.walk(root):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    return root


def share(path: Path) -> Path:
    """A world-readable copy of ``path`` in the sandbox."""
    dest = sandbox() / "files" / path.name
    dest.parent.mkdir(mode=0o755, exist_ok=True)
    shutil.copyfile(path, dest)
    os.chmod(dest, 0o644)
    return dest


def python() -> str:
    """An interpreter another user may run (the venv's link target if the venv is private)."""
    exe = Path(sys.executable)
    return str(exe) if _traversable(exe) else os.path.realpath(exe)


def env() -> dict[str, str]:
    """Environment for the other user's Python: the sandbox first on the path."""
    return {**os.environ, "PYTHONPATH": str(sandbox()), "PYTHONDONTWRITEBYTECODE": "1"}
