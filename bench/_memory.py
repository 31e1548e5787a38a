"""Peak memory of dumping a 1 M-entry HASH, one path per child process (a process's peak RSS
is the whole process's, so each path gets a fresh one).

The parent passes the map's fd to the child (bcc's path makes its own map); the child resets
its peak RSS (``/proc/self/clear_refs``: 5) right before the dump, so the growth it reports is
the dump's alone, and reports the child's own peak RSS beside it (``VmHWM``; ``ru_maxrss``
would also count what the forked copy of the parent held before exec).

    python -m bench._memory PATH CLIB FD ENTRIES     (prints one JSON line)
"""

from __future__ import annotations

import gc
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

PATHS = ("C", "items", "numpy", "bcc")


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(path: str, clib: str, fd: int, entries: int) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench._native import CBench
    from pylibbpf import Map

    c = CBench(Path(clib))
    dump: Any
    if path == "C":
        def dump() -> Any:
            return c.dump(fd, entries, 4, 8, entries)
    elif path in ("items", "numpy"):
        m = Map.from_fd(fd)
        method = getattr(m, "items" if path == "items" else "to_numpy", None)
        if path == "numpy" and method is not None:
            import numpy  # noqa: F401  (its import's own pages are not the dump's)
        if method is None:
            return {"missing": "not implemented"}
        dump = method
    else:
        from bench import _bcc

        bcc = _bcc.load()
        if isinstance(bcc, str):
            return {"missing": bcc}
        b = bcc.BPF(text=f"BPF_HASH(m, u32, u64, {entries});")
        table = b["m"]
        c.fill(table.map_fd, entries, 8)

        def dump() -> Any:
            return list(table.items_lookup_batch())
    gc.collect()
    setup_peak = _status_kib("VmHWM")
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    result = dump()
    peak = _status_kib("VmHWM")
    del result
    # ru_maxrss is reported too, but it also counts the pages the child had before exec (a
    # forked copy of the parent: the benchmark's process, which holds bcc's LLVM when it ran)
    return {"before_kib": before, "growth_kib": peak - before,
            "peak_kib": max(setup_peak, peak),
            "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def measure(path: str, clib: Path, fd: int, entries: int) -> dict[str, Any]:
    """Run one path in a child; its JSON answer."""
    out = subprocess.run([sys.executable, "-m", "bench._memory", path, str(clib), str(fd),
                          str(entries)], pass_fds=(fd,), capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent)
    if out.returncode:
        raise RuntimeError(f"memory child for {path} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


if __name__ == "__main__":
    path, clib, fd, entries = sys.argv[1:5]
    print(json.dumps(child(path, clib, int(fd), int(entries))))
