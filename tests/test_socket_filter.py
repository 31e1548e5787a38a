"""pylibbpf.socket_filter: SO_ATTACH_BPF/SO_DETACH_BPF on a UDP socket with programs that
drop or truncate every packet, checked by what the socket receives."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator

import pytest

import pylibbpf
from pylibbpf import ProgType, lowlevel, socket_filter
from pylibbpf.elf import insn as I
from pylibbpf.elf.insn import Instruction
from tests.support.attach import open_object, udp_pair

PAYLOAD = b"hello, socket filter"
UDP_HEADER = 8


def keep_program(length: int, prog_type: ProgType = ProgType.SOCKET_FILTER) -> int:
    """A program that keeps the first ``length`` bytes of each packet (0: drops it)."""
    return lowlevel.prog_load(prog_type, [
        Instruction(I.ALU64 | I.SRC_K | I.ALU_MOV, dst=0, imm=length),
        Instruction(I.JMP | I.JMP_EXIT),
    ], license="GPL")


class FakeProgram:
    """What ``attach`` reads from a :class:`pylibbpf.Program`: its ``fd``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd


@pytest.fixture
def udp() -> Iterator[tuple[socket.socket, socket.socket, int]]:
    rx, tx, port = udp_pair()
    rx.settimeout(0.3)
    with rx, tx:
        yield rx, tx, port


def exchange(udp: tuple[socket.socket, socket.socket, int]) -> bytes | None:
    """Send PAYLOAD to the receiver; what it gets (None: nothing within the timeout)."""
    rx, tx, port = udp
    tx.sendto(PAYLOAD, ("127.0.0.1", port))
    try:
        return rx.recv(4096)
    except TimeoutError:
        return None


def test_constants_per_architecture() -> None:
    assert socket_filter.constants("x86_64") == (50, 27)
    assert socket_filter.constants("aarch64") == (50, 27)
    assert socket_filter.constants("ppc64le") == (50, 27)
    assert socket_filter.constants("mips64") == (50, 27)
    assert socket_filter.constants("parisc64") == (0x402B, 0x401B)
    assert socket_filter.constants("sparc64") == (0x34, 0x1B)
    assert (socket_filter.SO_ATTACH_BPF, socket_filter.SO_DETACH_BPF) == \
        socket_filter.constants(os.uname().machine)
    # SO_DETACH_BPF is SO_DETACH_FILTER, which Python does know on some builds
    if hasattr(socket, "SO_DETACH_FILTER"):
        assert socket_filter.SO_DETACH_BPF == socket.SO_DETACH_FILTER


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        socket_filter.attach(object(), 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        socket_filter.attach(0, object())  # type: ignore[arg-type]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        pass
    with pytest.raises(ValueError):
        socket_filter.detach(sock)  # closed: fileno() is -1


@pytest.mark.needs("socket_filter")
def test_drop_truncate_replace_detach(udp: tuple[socket.socket, socket.socket, int]) -> None:
    assert exchange(udp) == PAYLOAD
    drop, truncate = keep_program(0), keep_program(UDP_HEADER + 5)
    try:
        socket_filter.attach(udp[0], drop)
        assert exchange(udp) is None
        socket_filter.attach(udp[0].fileno(), FakeProgram(truncate))   # replaces the first
        assert exchange(udp) == PAYLOAD[:5]
        socket_filter.detach(udp[0])
        assert exchange(udp) == PAYLOAD
        with pytest.raises(pylibbpf.BpfError) as none:
            socket_filter.detach(udp[0])
        assert none.value.errno == errno.ENOENT
    finally:
        os.close(drop)
        os.close(truncate)


@pytest.mark.needs("socket_filter")
def test_the_socket_keeps_the_program(udp: tuple[socket.socket, socket.socket, int]) -> None:
    drop = keep_program(0)
    socket_filter.attach(udp[0], drop)
    os.close(drop)  # the socket holds its own reference
    assert exchange(udp) is None
    socket_filter.detach(udp[0])
    assert exchange(udp) == PAYLOAD


@pytest.mark.needs("socket_filter", "tc")
def test_refusals(udp: tuple[socket.socket, socket.socket, int]) -> None:
    wrong = keep_program(0, ProgType.SCHED_CLS)
    try:
        with pytest.raises(pylibbpf.BpfError) as refused:
            socket_filter.attach(udp[0], wrong)
        assert refused.value.errno == errno.EINVAL
    finally:
        os.close(wrong)
    assert exchange(udp) == PAYLOAD
    r, w = os.pipe()
    try:
        with pytest.raises(pylibbpf.BpfError) as not_socket:
            socket_filter.detach(r)
        assert not_socket.value.errno == errno.ENOTSOCK
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.needs("socket_filter")
def test_program_attach_socket(udp: tuple[socket.socket, socket.socket, int],
                               request: pytest.FixtureRequest) -> None:
    """``Program.attach_socket`` of an object's ``SEC("socket")`` program: attach_net.bpf.c's
    filter drops packets that end in ``D`` and keeps the others whole."""
    rx, tx, port = udp
    net = open_object("attach_net.bpf.c", programs=("sock_filter",), request=request, port=port)
    try:
        net.programs["sock_filter"].attach_socket(rx)
        tx.sendto(b"dropped D", ("127.0.0.1", port))
        tx.sendto(b"kept", ("127.0.0.1", port))
        assert rx.recv(4096) == b"kept"             # the first never arrived
        socket_filter.detach(rx)
        tx.sendto(b"now D", ("127.0.0.1", port))
        assert rx.recv(4096) == b"now D"
    finally:
        net.close()
