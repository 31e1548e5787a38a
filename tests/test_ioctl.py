"""The ioctl request numbers of ``pylibbpf._ffi.ioctl`` against the kernel headers' values."""

from __future__ import annotations

import platform
from collections.abc import Callable

import pytest

from pylibbpf._ffi import ioctl

# Printed by a C program compiled against the x86_64 headers (<linux/perf_event.h>,
# <linux/seccomp.h>); the sizes are sizeof(__u32), sizeof(__u64) and of struct seccomp_notif (80),
# seccomp_notif_resp (24), seccomp_notif_addfd (24).
GENERIC: dict[str, tuple[Callable[..., int], str, int, int | None, int]] = {
    "PERF_EVENT_IOC_ENABLE": (ioctl.io, "$", 0, None, 0x2400),
    "PERF_EVENT_IOC_DISABLE": (ioctl.io, "$", 1, None, 0x2401),
    "PERF_EVENT_IOC_SET_BPF": (ioctl.iow, "$", 8, 4, 0x40042408),
    "SECCOMP_IOCTL_NOTIF_RECV": (ioctl.iowr, "!", 0, 80, 0xC0502100),
    "SECCOMP_IOCTL_NOTIF_SEND": (ioctl.iowr, "!", 1, 24, 0xC0182101),
    "SECCOMP_IOCTL_NOTIF_ID_VALID": (ioctl.iow, "!", 2, 8, 0x40082102),
    "SECCOMP_IOCTL_NOTIF_ADDFD": (ioctl.iow, "!", 3, 24, 0x40182103),
}

# The same macros with arch/powerpc/include/uapi/asm/ioctl.h (mips's is alike): _IOC_NONE 1,
# _IOC_READ 2, _IOC_WRITE 4, 13 size bits.
POWERPC = {
    "PERF_EVENT_IOC_ENABLE": 0x20002400,
    "PERF_EVENT_IOC_DISABLE": 0x20002401,
    "PERF_EVENT_IOC_SET_BPF": 0x80042408,
    "SECCOMP_IOCTL_NOTIF_RECV": 0xC0502100,
    "SECCOMP_IOCTL_NOTIF_SEND": 0xC0182101,
    "SECCOMP_IOCTL_NOTIF_ID_VALID": 0x80082102,
    "SECCOMP_IOCTL_NOTIF_ADDFD": 0x80182103,
}


def _encode(name: str, machine: str) -> int:
    encode, kind, nr, size, _ = GENERIC[name]
    if size is None:
        return encode(kind, nr, machine=machine)
    return encode(kind, nr, size, machine=machine)


@pytest.mark.parametrize("machine", ["x86_64", "aarch64", "riscv64", "s390x"])
@pytest.mark.parametrize("name", GENERIC)
def test_asm_generic_numbers_match_the_headers(name: str, machine: str) -> None:
    assert _encode(name, machine) == GENERIC[name][-1]


@pytest.mark.parametrize("machine", ["ppc64le", "ppc64", "mips64"])
@pytest.mark.parametrize("name", POWERPC)
def test_three_direction_bit_numbers_match_the_headers(name: str, machine: str) -> None:
    assert _encode(name, machine) == POWERPC[name]


def test_this_machine_is_the_default() -> None:
    assert ioctl.iow("$", 8, 4) == ioctl.iow("$", 8, 4, machine=platform.machine())


def test_the_users_take_their_numbers_from_here() -> None:
    from compat.supervisor import _seccomp
    from pylibbpf import perf_event

    machine = platform.machine()
    if machine not in ("x86_64", "aarch64", "riscv64"):
        pytest.skip(f"the expected values here are asm-generic's, not {machine}'s")
    assert perf_event.PERF_EVENT_IOC_ENABLE == GENERIC["PERF_EVENT_IOC_ENABLE"][-1]
    assert perf_event.PERF_EVENT_IOC_SET_BPF == GENERIC["PERF_EVENT_IOC_SET_BPF"][-1]
    assert _seccomp._RECV == GENERIC["SECCOMP_IOCTL_NOTIF_RECV"][-1]
    assert _seccomp._SEND == GENERIC["SECCOMP_IOCTL_NOTIF_SEND"][-1]
    assert _seccomp._ID_VALID == GENERIC["SECCOMP_IOCTL_NOTIF_ID_VALID"][-1]
    assert _seccomp._ADDFD == GENERIC["SECCOMP_IOCTL_NOTIF_ADDFD"][-1]


@pytest.mark.parametrize("call", [
    lambda: ioctl.io("$$", 0),
    lambda: ioctl.io("$", 256),
    lambda: ioctl.iow("$", 0, 1 << 14, machine="x86_64"),
    lambda: ioctl.iow("$", 0, 1 << 13, machine="ppc64le"),
])
def test_values_that_do_not_fit_are_refused(call: Callable[[], int]) -> None:
    with pytest.raises(ValueError):
        call()
