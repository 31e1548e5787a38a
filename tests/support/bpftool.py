"""What ``bpftool`` reports, as an independent witness for the tests.

``bpftool btf dump file /sys/kernel/btf/vmlinux format raw`` prints every type of the kernel's
BTF in about 0.3 s; scanning its text for the lines a test needs costs a fraction of decoding
the whole BTF in Python (seconds on the host, half a minute in a software-emulated guest).
"""

from __future__ import annotations

import re
import subprocess
from functools import cache

VMLINUX = "/sys/kernel/btf/vmlinux"
_FUNC = re.compile(r"^\[(\d+)\] FUNC '([^']+)' type_id=(\d+)", re.M)
_PROTO = re.compile(r"^\[(\d+)\] FUNC_PROTO '[^']*' ret_type_id=\d+ vlen=(\d+)", re.M)


@cache
def raw_btf_dump(path: str = VMLINUX) -> str:
    """``bpftool btf dump file PATH format raw``: one line per type, members indented."""
    return subprocess.run(["bpftool", "btf", "dump", "file", path, "format", "raw"],
                          capture_output=True, text=True, check=True, timeout=300).stdout


@cache
def btf_functions(path: str = VMLINUX) -> dict[str, tuple[int, int]]:
    """Every FUNC of ``path``'s BTF: name -> (type id, number of parameters)."""
    text = raw_btf_dump(path)
    params = {int(m[1]): int(m[2]) for m in _PROTO.finditer(text)}
    return {m[2]: (int(m[1]), params[int(m[3])]) for m in _FUNC.finditer(text)}
