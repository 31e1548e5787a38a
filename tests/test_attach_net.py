"""Network attach paths on the real kernel: XDP, tc, cgroup_skb, socket filter and sk_lookup
(a netns link), plus BPF_PROG_TEST_RUN of the XDP, tc and socket programs.

Packet tests run in a private network namespace (its own ``lo``): other processes' traffic
cannot reach the counters, and whatever is attached vanishes with the namespace.  Programs:
``tests/bpf/attach_net.bpf.c``; each counts UDP datagrams to the ``.rodata`` ``port``.  Each
test loads only the programs it uses and marks the features they need, so a program type this
kernel refuses (or its security policy does) costs only the tests of that type.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

import pylibbpf
from pylibbpf import AttachType, LinkType
from tests.support import features
from tests.support.attach import (
    SO_ATTACH_BPF,
    SO_DETACH_BPF,
    count,
    drain,
    fresh_cgroup,
    open_object,
    private_netns,
    send_and_receive,
    send_from_cgroup,
    udp_pair,
)

pytestmark = pytest.mark.kernel

K_XDP, K_XDP2, K_TC, K_CG, K_CG2, K_SOCK, K_LOOKUP = range(7)
XDP_ABORTED, XDP_DROP, XDP_PASS = 0, 1, 2
TC_ACT_OK, TC_ACT_SHOT = 0, 2
N = 25


class Net:
    """A private netns with a UDP receiver/sender pair; :meth:`load` loads the object."""

    def __init__(self, ns_fd: int, request: pytest.FixtureRequest) -> None:
        self.ns_fd = ns_fd
        self.request = request
        self.rx, self.tx, self.port = udp_pair()
        self._obj: pylibbpf.Object | None = None

    def load(self, *programs: str) -> pylibbpf.Object:
        """Load ``attach_net.bpf.c`` with only ``programs`` (the test's ``needs`` marks must
        cover them), ``port`` set to the receiver's."""
        assert self._obj is None
        self._obj = open_object("attach_net.bpf.c", programs=programs, request=self.request,
                                port=self.port)
        return self._obj

    @property
    def obj(self) -> pylibbpf.Object:
        assert self._obj is not None, "net.load(...) first"
        return self._obj

    @property
    def counts(self) -> pylibbpf.Map:
        return self.obj.maps["counts"]

    def send(self, n: int = N) -> None:
        send_and_receive(self.rx, self.tx, self.port, n)

    def close(self) -> None:
        if self._obj is not None:
            self._obj.close()
        self.rx.close()
        self.tx.close()


@pytest.fixture
def net(request: pytest.FixtureRequest) -> Iterator[Net]:
    with private_netns() as ns_fd:
        env = Net(ns_fd, request)
        try:
            yield env
        finally:
            env.close()


# ----------------------------------------------------------------------------- XDP

@pytest.mark.needs("xdp")
def test_attach_xdp_on_lo_counts_udp(net: Net) -> None:
    net.load("xdp_count")
    lo = socket.if_nametoindex("lo")
    link = net.obj.programs["xdp_count"].attach_xdp("lo")
    try:
        info = link.info()
        assert info.type == LinkType.XDP and info.details["ifindex"] == lo
        assert info.prog_id == net.obj.programs["xdp_count"].info().id
        net.send()
        assert count(net.counts, K_XDP) == N
    finally:
        link.destroy()
    net.send()
    assert count(net.counts, K_XDP) == N


@pytest.mark.needs("xdp")
def test_attach_xdp_twice_is_ebusy(net: Net) -> None:
    net.load("xdp_count", "xdp_count2")
    with net.obj.programs["xdp_count"].attach_xdp(1):
        with pytest.raises(pylibbpf.BpfError) as info:
            net.obj.programs["xdp_count2"].attach_xdp(1)
        assert info.value.errno == errno.EBUSY


@pytest.mark.needs("xdp")
def test_attach_xdp_unknown_interface(net: Net) -> None:
    net.load("xdp_count")
    with pytest.raises(pylibbpf.BpfError) as info:
        net.obj.programs["xdp_count"].attach_xdp("nosuchif0")
    assert info.value.errno == errno.ENODEV


def _ether(dst: bytes, src: bytes, payload: bytes = b"\0" * 20) -> bytes:
    return dst + src + b"\x08\x00" + payload


DST, SRC = bytes(range(1, 7)), bytes(range(11, 17))


@pytest.mark.needs("xdp")
def test_test_run_xdp_rewrites_and_passes(net: Net) -> None:
    net.load("xdp_rewrite")
    prog = net.obj.programs["xdp_rewrite"]
    result = prog.test_run(_ether(DST, SRC))
    assert result.retval == XDP_PASS
    # MACs swapped; the byte after the header holds the ingress ifindex (lo of this netns)
    assert result.data_out == _ether(SRC, DST, bytes([1]) + b"\0" * 19)


@pytest.mark.needs("xdp")
def test_test_run_xdp_drop(net: Net) -> None:
    net.load("xdp_rewrite")
    result = net.obj.programs["xdp_rewrite"].test_run(_ether(b"\xff" * 6, SRC))
    assert result.retval == XDP_DROP


@pytest.mark.needs("xdp")
def test_test_run_xdp_too_short_aborts(net: Net) -> None:
    net.load("xdp_rewrite")
    result = net.obj.programs["xdp_rewrite"].test_run(DST + SRC + b"\x08\x00")
    assert result.retval == XDP_ABORTED


@pytest.mark.needs("xdp")
def test_test_run_xdp_repeat_reports_duration(net: Net) -> None:
    net.load("xdp_rewrite")
    result = net.obj.programs["xdp_rewrite"].test_run(_ether(DST, SRC), repeat=1001)
    assert result.retval == XDP_PASS
    assert result.duration > 0
    # an odd number of swaps leaves them swapped
    assert result.data_out[:12] == SRC + DST


@pytest.mark.needs("xdp")
def test_test_run_xdp_with_xdp_md_ctx(net: Net) -> None:
    net.load("xdp_rewrite")
    packet = _ether(DST, SRC)
    # struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
    ctx = struct.pack("<6I", 0, len(packet), 0, 1, 0, 0)
    if features.kernel_version() < (5, 12):  # XDP test runs take a ctx from 5.12
        with pytest.raises(pylibbpf.BpfError) as info:
            net.obj.programs["xdp_rewrite"].test_run(packet, ctx_in=ctx)
        assert info.value.errno == errno.EINVAL
        return
    result = net.obj.programs["xdp_rewrite"].test_run(packet, ctx_in=ctx)
    assert result.retval == XDP_PASS
    assert result.data_out[14] == 1  # ctx->ingress_ifindex came from ctx_in
    data, data_end, meta, ifindex, queue, egress = struct.unpack("<6I", result.ctx_out)
    assert (data_end - data, meta, ifindex, queue, egress) == (len(packet), 0, 1, 0, 0)


@pytest.mark.needs("xdp")
def test_test_run_xdp_bad_ctx_is_einval(net: Net) -> None:
    net.load("xdp_rewrite")
    packet = _ether(DST, SRC)
    ctx = struct.pack("<6I", 0, len(packet) + 5, 0, 1, 0, 0)  # data_end past the packet
    with pytest.raises(pylibbpf.BpfError) as info:
        net.obj.programs["xdp_rewrite"].test_run(packet, ctx_in=ctx)
    assert info.value.errno == errno.EINVAL


# ----------------------------------------------------------------------------- tc

@pytest.mark.needs("tc")
def test_attach_tc_ingress_on_lo(net: Net) -> None:
    net.load("tc_count")
    prog = net.obj.programs["tc_count"]
    tc = prog.attach_tc("lo", attach_point="ingress")
    try:
        assert tc.query() == prog.info().id
        net.send()
        assert count(net.counts, K_TC) == N
    finally:
        tc.detach()
    net.send()
    assert count(net.counts, K_TC) == N


@pytest.mark.needs("tc")
def test_attach_tc_bad_attach_point(net: Net) -> None:
    net.load("tc_count")
    with pytest.raises(ValueError, match="ingress"):
        net.obj.programs["tc_count"].attach_tc("lo", attach_point="sideways")


@pytest.mark.needs("tc")
def test_test_run_tc_ctx_and_retval(net: Net) -> None:
    net.load("tc_count")
    prog = net.obj.programs["tc_count"]
    packet = _ether(DST, SRC, b"\0" * 40)
    # a prefix of struct __sk_buff (184 bytes in 5.10, more later) with mark, priority, cb[]
    ctx = bytearray(184)
    struct.pack_into("<I", ctx, 32, 7)  # skb->priority goes in and comes back
    # ctx_out room for the kernel's whole struct (it says ENOSPC when given less)
    result = prog.test_run(packet, ctx_in=bytes(ctx), ctx_size_out=256)
    assert result.retval == TC_ACT_OK
    assert result.data_out == packet
    assert len(result.ctx_out) >= 184
    mark, priority, cb0 = (struct.unpack_from("<I", result.ctx_out, offset)[0]
                           for offset in (8, 32, 48))
    assert (mark, priority, cb0) == (0, 7, len(packet))  # the program wrote cb[0] = len
    struct.pack_into("<I", ctx, 8, 0xDEAD)  # skb->mark
    assert prog.test_run(packet, ctx_in=bytes(ctx), ctx_size_out=256).retval == TC_ACT_SHOT


# ----------------------------------------------------------------------------- socket filter

@pytest.mark.needs("socket_filter")
def test_socket_filter_so_attach_bpf(net: Net) -> None:
    net.load("sock_filter")
    prog = net.obj.programs["sock_filter"]
    assert prog.type == pylibbpf.ProgType.SOCKET_FILTER
    net.rx.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, prog.fd)
    sent = [b"keep", b"dropD", b"also kept", b"D", b"last"]
    for message in sent:
        net.tx.sendto(message, ("127.0.0.1", net.port))
    assert drain(net.rx) == [m for m in sent if not m.endswith(b"D")]
    assert count(net.counts, K_SOCK) == len(sent)
    net.rx.setsockopt(socket.SOL_SOCKET, SO_DETACH_BPF, 0)
    net.tx.sendto(b"after D", ("127.0.0.1", net.port))
    assert drain(net.rx) == [b"after D"]
    assert count(net.counts, K_SOCK) == len(sent)


@pytest.mark.needs("socket_filter")
def test_test_run_socket_filter(net: Net) -> None:
    net.load("sock_filter")
    prog = net.obj.programs["sock_filter"]
    packet = _ether(DST, SRC, b"\0" * 30 + b"x")
    # the kernel strips the Ethernet header before a socket filter runs
    assert prog.test_run(packet).retval == len(packet) - 14
    assert prog.test_run(packet[:-1] + b"D").retval == 0


# ----------------------------------------------------------------------------- cgroup

@pytest.fixture
def cgroup() -> Iterator[Path]:
    with fresh_cgroup() as path:
        yield path


@pytest.mark.needs("cgroup")
def test_attach_cgroup_skb_egress(cgroup: Path, request: pytest.FixtureRequest) -> None:
    rx, tx, port = udp_pair()
    obj = open_object("attach_net.bpf.c", programs=("cg_egress",), request=request, port=port)
    try:
        link = obj.programs["cg_egress"].attach_cgroup(cgroup)
        try:
            info = link.info()
            assert info.type == LinkType.CGROUP
            assert info.details["attach_type"] == AttachType.CGROUP_INET_EGRESS
            assert info.details["cgroup_id"] == os.stat(cgroup).st_ino
            send_from_cgroup(cgroup, port, N)
            assert count(obj.maps["counts"], K_CG) == N
            assert drain(rx) == [b"cgroup"] * N
            # our own process is not in the cgroup: its packets are not counted
            send_and_receive(rx, tx, port, 3)
            assert count(obj.maps["counts"], K_CG) == N
        finally:
            link.destroy()
        send_from_cgroup(cgroup, port, 4)
        assert count(obj.maps["counts"], K_CG) == N
        assert len(drain(rx)) == 4
    finally:
        obj.close()
        rx.close()
        tx.close()


@pytest.mark.needs("cgroup")
def test_attach_cgroup_by_fd(cgroup: Path, request: pytest.FixtureRequest) -> None:
    rx, tx, port = udp_pair()
    obj = open_object("attach_net.bpf.c", programs=("cg_egress",), request=request, port=port)
    fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with obj.programs["cg_egress"].attach_cgroup(fd):
            send_from_cgroup(cgroup, port, 5)
        assert count(obj.maps["counts"], K_CG) == 5
    finally:
        os.close(fd)
        obj.close()
        rx.close()
        tx.close()


@pytest.mark.needs("cgroup")
def test_attach_cgroup_not_a_cgroup(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    obj = open_object("attach_net.bpf.c", programs=("cg_egress",), request=request, port=1)
    try:
        with pytest.raises(pylibbpf.BpfError) as info:
            obj.programs["cg_egress"].attach_cgroup(tmp_path)
        assert info.value.errno == errno.EBADF
    finally:
        obj.close()


# ----------------------------------------------------------------------------- netns

@pytest.mark.needs("sk_lookup")
def test_attach_netns_sk_lookup(net: Net) -> None:
    net.load("lookup_count")
    prog = net.obj.programs["lookup_count"]
    link = prog.attach_netns(net.ns_fd)
    try:
        info = link.info()
        assert info.type == LinkType.NETNS
        assert info.details["attach_type"] == AttachType.SK_LOOKUP
        assert info.details["netns_ino"] == os.fstat(net.ns_fd).st_ino
        net.send()
        assert count(net.counts, K_LOOKUP) == N
    finally:
        link.destroy()
    net.send()
    assert count(net.counts, K_LOOKUP) == N


@pytest.mark.needs("sk_lookup")
def test_attach_netns_default_is_our_namespace(net: Net) -> None:
    net.load("lookup_count")
    # the default path /proc/self/ns/net is the main thread's namespace: here, the private one
    with net.obj.programs["lookup_count"].attach_netns() as link:
        assert link.info().details["netns_ino"] == os.fstat(net.ns_fd).st_ino
        net.send(3)
        assert count(net.counts, K_LOOKUP) == 3
