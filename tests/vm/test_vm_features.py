"""The kernel features the VM tiers exist for, checked without pylibbpf.

kprobes through tracefs (an event's hit count in ``kprobe_profile``), fentry and LSM through the
raw ``bpf()`` syscall: a hand-assembled program bumps a counter in an ARRAY map and the test reads
it back.  On the host (no kprobes; lockdown refuses fentry/LSM) these skip with the reason; in
the guests (``python -m vmtest run --kernel 6.1``) they must pass.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import features
from tests.support.features import insn

TRACEFS = Path("/sys/kernel/tracing")
LOOPS = 200


def _getpid_symbol() -> str:
    kallsyms = Path("/proc/kallsyms").read_text()
    for name in ("__x64_sys_getpid", "__do_sys_getpid", "sys_getpid"):
        if re.search(rf" {name}$", kallsyms, re.M):
            return name
    pytest.fail("no getpid syscall handler in /proc/kallsyms")


@contextmanager
def _kprobe_event(kind: str, symbol: str) -> Iterator[str]:
    group, event = "pylibbpf_vm", f"{kind}_getpid_{os.getpid()}"
    features.write_tracefs(TRACEFS / "kprobe_events", f"{kind}:{group}/{event} {symbol}")
    enable = TRACEFS / "events" / group / event / "enable"
    try:
        enable.write_text("1")
        yield f"{group}/{event}"
    finally:
        enable.write_text("0")
        features.write_tracefs(TRACEFS / "kprobe_events", f"-:{group}/{event}")


def _hits(name: str) -> int:
    for line in (TRACEFS / "kprobe_profile").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] in (name, name.split("/")[-1]):
            return int(fields[1])
    raise AssertionError(f"{name} not in kprobe_profile")


@pytest.mark.needs("kprobe")
@pytest.mark.parametrize("kind", ["p", "r"], ids=["kprobe", "kretprobe"])
def test_kprobe_event_counts_getpid(kind: str) -> None:
    symbol = _getpid_symbol()
    with _kprobe_event(kind, symbol) as name:
        before = _hits(name)
        for _ in range(LOOPS):
            os.getpid()
        after = _hits(name)
    assert after - before >= LOOPS


def counter_program(map_fd: int) -> bytes:
    """``counter[0] += 1; return 0`` over an ARRAY map of one u64."""
    return b"".join([
        insn(0x18, dst=1, src=1, imm=map_fd), insn(0),  # r1 = &map (BPF_PSEUDO_MAP_FD)
        insn(0x62, dst=10, off=-4, imm=0),  # *(u32 *)(r10 - 4) = 0
        insn(0xBF, dst=2, src=10),  # r2 = r10
        insn(0x07, dst=2, imm=-4),  # r2 += -4
        insn(0x85, imm=1),  # r0 = bpf_map_lookup_elem(r1, r2)
        insn(0x15, dst=0, off=2, imm=0),  # if r0 == 0 goto +2
        insn(0xB7, dst=1, imm=1),  # r1 = 1
        insn(0xDB, dst=0, src=1, imm=0),  # lock *(u64 *)(r0 + 0) += r1
        features.RET0,
    ])


@contextmanager
def _counting(prog_type: int, attach_type: int, targets: tuple[str, ...]) -> Iterator[int]:
    target = features.btf_func_id(*targets)
    assert target is not None, f"none of {targets} in the kernel's BTF"
    map_fd = features.map_create(features.BPF_MAP_TYPE_ARRAY, 4, 8, 1)
    try:
        prog_fd = features.prog_load(prog_type, counter_program(map_fd), attach_type=attach_type,
                                     attach_btf_id=target[1], log=True)
        try:
            link_fd = features.raw_tracepoint_open(prog_fd)
            try:
                yield map_fd
            finally:
                os.close(link_fd)
        finally:
            os.close(prog_fd)
    finally:
        os.close(map_fd)


@pytest.mark.needs("fentry")
def test_fentry_counts_getpid() -> None:
    with _counting(features.BPF_PROG_TYPE_TRACING, features.BPF_TRACE_FENTRY,
                   ("__x64_sys_getpid", "__do_sys_getpid")) as counter:
        for _ in range(LOOPS):
            os.getpid()
        hits = features.map_lookup_u64(counter, 0)
    assert hits >= LOOPS


@pytest.mark.needs("lsm")
def test_lsm_file_open_counts_opens(tmp_path: Path) -> None:
    path = tmp_path / "opened"
    path.write_text("x")
    with _counting(features.BPF_PROG_TYPE_LSM, features.BPF_LSM_MAC,
                   features.LSM_TARGETS) as counter:
        for _ in range(LOOPS):
            os.close(os.open(path, os.O_RDONLY))
        hits = features.map_lookup_u64(counter, 0)
    assert hits >= LOOPS


@pytest.mark.needs("ringbuf")
def test_ringbuf_map_is_mmappable() -> None:
    import mmap

    page = os.sysconf("SC_PAGE_SIZE")
    fd = features.map_create(features.BPF_MAP_TYPE_RINGBUF, 0, 0, page)
    try:
        # consumer position page: readable and writable by user space
        with mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as m:
            assert int.from_bytes(m[:8], "little") == 0
    finally:
        os.close(fd)
