"""bcc's Python bindings as an optional contender (Debian's ``python3-bpfcc``).

bcc is imported from the system's dist-packages only inside the benchmark's process, and only
when it is there.  bcc compiles its C with the running kernel's headers; where
``/lib/modules/$(uname -r)/build`` is missing (a custom kernel), a Debian
``linux-headers-*-amd64`` package (with its ``-common`` sibling) is merged into a tree of
symbolic links under ``bench/.build`` and given to bcc as ``BCC_KERNEL_SOURCE``: the
benchmarks' bcc programs use maps and no kernel structures, so any recent headers do.
When bcc cannot be used, :func:`load` says why and its columns say so.
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from ._build import BUILD

_DIST = "/usr/lib/python3/dist-packages"


def _headers() -> str | None:
    """A kernel header tree bcc can use, or None."""
    if "BCC_KERNEL_SOURCE" in os.environ:
        return os.environ["BCC_KERNEL_SOURCE"]
    if os.path.isdir(f"/lib/modules/{platform.release()}/build"):
        return None  # bcc finds them itself
    for arch_dir in sorted(glob.glob("/usr/src/linux-headers-*-amd64"), reverse=True):
        common = arch_dir[: -len("amd64")] + "common"
        if not os.path.isdir(common):
            continue
        merged = BUILD / f"bcc-headers-{Path(arch_dir).name}"
        if not merged.exists():
            tmp = merged.with_suffix(".tmp")
            _link_tree(Path(common), tmp, ("include", "arch/x86/include"))
            _link_tree(Path(arch_dir), tmp, ("include", "arch/x86/include"))
            tmp.rename(merged)
        return str(merged)
    return None


def _link_tree(src: Path, dst: Path, parts: tuple[str, ...]) -> None:
    """Symbolic links in ``dst`` to every file under ``src/part`` (later trees win)."""
    for part in parts:
        for dirpath, _dirs, files in os.walk(src / part, followlinks=True):
            rel = Path(dirpath).relative_to(src)
            (dst / rel).mkdir(parents=True, exist_ok=True)
            for name in files:
                link = dst / rel / name
                with contextlib.suppress(FileNotFoundError):
                    link.unlink()
                link.symlink_to(Path(dirpath) / name)


_loaded: ModuleType | str | None = None


def load() -> ModuleType | str:
    """The ``bcc`` module, or why it cannot be used (a short phrase for the table)."""
    global _loaded
    if _loaded is not None:
        return _loaded
    if not os.path.isdir(os.path.join(_DIST, "bcc")):
        _loaded = "not installed"
        return _loaded
    if _DIST not in sys.path:
        sys.path.append(_DIST)
    try:
        import bcc  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except Exception as exc:  # noqa: BLE001 - any import failure means "not usable"
        _loaded = f"not importable ({type(exc).__name__})"
        return _loaded
    headers = _headers()
    if headers is not None:
        os.environ["BCC_KERNEL_SOURCE"] = headers
    try:
        with _quiet():
            bcc.BPF(text="BPF_ARRAY(probe, u64, 1);").cleanup()
    except Exception:  # noqa: BLE001
        _loaded = "no kernel headers"
        return _loaded
    module: ModuleType = bcc
    _loaded = module
    return module


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """bcc's compiler writes to fd 2 directly: silence it for a probe."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stderr(io.StringIO()):
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
