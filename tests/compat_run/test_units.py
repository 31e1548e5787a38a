"""Pieces of ``compat run`` that need no BPF: the seccomp filter program, the symbol map file,
the launcher build."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

import compat
from compat.supervisor import ARCHES, build_filter, launcher_path, load_symbol_map
from compat.supervisor._seccomp import SECCOMP_RET_ALLOW, SECCOMP_RET_USER_NOTIF


def _run_filter(code: bytes, nr: int, arch: int) -> int:
    """Interpret the classic BPF filter on one ``struct seccomp_data``."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, *([0] * 6))
    insns = [struct.unpack_from("=HBBI", code, off) for off in range(0, len(code), 8)]
    acc, pc = 0, 0
    while True:
        op, jt, jf, k = insns[pc]
        if op == 0x20:      # ld [k]
            acc = struct.unpack_from("=I", data, k)[0]
        elif op == 0x15:    # jeq #k
            pc += jt if acc == k else jf
        elif op == 0x06:    # ret #k
            return int(k)
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")
        pc += 1


@pytest.mark.parametrize("name", sorted(ARCHES))
def test_filter_traps_bpf_only(name: str) -> None:
    arch = ARCHES[name]
    code = build_filter(arch)
    assert len(code) % 8 == 0
    assert _run_filter(code, arch.nr_bpf, arch.audit_arch) == SECCOMP_RET_USER_NOTIF
    for nr in (0, 1, 39, arch.nr_bpf - 1, arch.nr_bpf + 1, arch.nr_bpf | 0x40000000):
        assert _run_filter(code, nr, arch.audit_arch) == SECCOMP_RET_ALLOW
    # the same number under another ABI (e.g. i386's 321 is not bpf) is not trapped
    assert _run_filter(code, arch.nr_bpf, 0x40000003) == SECCOMP_RET_ALLOW


def test_symbol_map_registers_points(tmp_path: Path) -> None:
    path = tmp_path / "symbols.json"
    path.write_text(json.dumps({
        "<units::Kernel>::sys_a": ["getppid", "getpid"],
        "<units::Kernel>::f": {"function": "vfs_read"},
    }))
    points = load_symbol_map(path)
    assert [p.syscalls for p in points] == [("getppid", "getpid"), ()]
    assert points[1].function == "vfs_read"
    target = compat.parse_target("kretprobe@exit:<units::Kernel>::sys_a")
    assert target.point.syscalls == ("getppid", "getpid")


@pytest.mark.parametrize("content, message", [
    ("[1, 2]", "expected a JSON object"),
    ("{", "not valid JSON"),
    ('{"s": "getppid"}', "expected a list of syscalls or an object"),
    ('{"s": [1]}', "expected a list of syscall names"),
    ('{"s": {"syscall": ["x"]}}', "expected a list of syscalls or an object"),
    ('{"s": {}}', "give 'syscalls' or 'function'"),
    ('{"s": {"function": 3}}', "'function' must be"),
])
def test_symbol_map_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_symbol_map(path)


def test_launcher_is_built_once_and_cached() -> None:
    first = launcher_path()
    assert first.is_file() and os.access(first, os.X_OK)
    mtime = first.stat().st_mtime_ns
    assert launcher_path() == first and first.stat().st_mtime_ns == mtime
