"""netkit devices (Linux 6.7, ``CONFIG_NETKIT``) and ``Program.attach_netkit`` (libbpf 1.3).

A netkit pair is made with rtnetlink (``tests/support/netkit.py``: the guests' ``ip`` predates
netkit), its primary in a private network namespace, its peer in another one, each end with an
address on 10.199.0.0/24, so UDP from one namespace to the other crosses the pair.  A netkit
device runs its programs on what it transmits: ``netkit/primary`` programs see what leaves
through the primary, ``netkit/peer`` programs what leaves through the peer; both are attached
through the primary's ifindex.  Programs: ``tests/bpf/netkit.bpf.c``; each counts the IPv4 UDP
packets it sees.  Where the kernel lacks netkit (the host's kernel, Linux before 6.7), the
tests skip with the reason; docs/attach.md says which tiers run them.
"""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import pylibbpf
from pylibbpf import AttachType, LinkType, Object
from tests.support import features, netkit
from tests.support.attach import count, drain, open_object, private_netns

K_PRIMARY, K_PEER, K_ORDER_A, K_ORDER_B, K_CLOCK = range(5)
NK_PASS, NK_DROP = 0, 2  # enum netkit_action
BPF_F_BEFORE, BPF_F_AFTER, BPF_F_ID, BPF_F_LINK = 1 << 3, 1 << 4, 1 << 5, 1 << 13
PRIMARY_ADDR, PEER_ADDR = "10.199.0.1", "10.199.0.2"
N = 5


class Pods:
    """Both ends of a netkit pair, up and addressed, with a UDP receiver and a sender on each
    side (the peer side's made in the peer's namespace)."""

    def __init__(self, pair: netkit.NetkitPair, peer_ns: int) -> None:
        self.pair = pair
        with netkit.Rtnl() as rtnl:
            rtnl.add_address(pair.primary_ifindex, PRIMARY_ADDR, 24)
            rtnl.set_up(pair.primary_ifindex)
        self.rx_primary, self.tx_primary = self._sockets(PRIMARY_ADDR)
        with netkit.in_netns(peer_ns):
            with netkit.Rtnl() as rtnl:
                rtnl.add_address(pair.peer_ifindex, PEER_ADDR, 24)
                rtnl.set_up(pair.peer_ifindex)
            self.rx_peer, self.tx_peer = self._sockets(PEER_ADDR)

    @staticmethod
    def _sockets(address: str) -> tuple[socket.socket, socket.socket]:
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind((address, 0))
        return rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def _send(self, tx: socket.socket, rx: socket.socket, n: int) -> int:
        """Send ``n`` datagrams from ``tx`` to ``rx``; how many arrived."""
        for _ in range(n):
            tx.sendto(b"netkit", rx.getsockname())
        return len(drain(rx, wait=0.5))

    def to_peer(self, n: int = N) -> int:
        """Primary namespace -> peer namespace: out through the primary."""
        return self._send(self.tx_primary, self.rx_peer, n)

    def to_primary(self, n: int = N) -> int:
        """Peer namespace -> primary namespace: out through the peer."""
        return self._send(self.tx_peer, self.rx_primary, n)

    def close(self) -> None:
        for sock in (self.rx_primary, self.tx_primary, self.rx_peer, self.tx_peer):
            sock.close()


@pytest.fixture
def pods() -> Iterator[Pods]:
    with private_netns(), netkit.new_netns() as peer_ns:
        with netkit.netkit_pair("nk0", "nk1", peer_netns=peer_ns) as pair:
            env = Pods(pair, peer_ns)
            try:
                yield env
            finally:
                env.close()


@pytest.fixture
def load() -> Iterator[Callable[..., Object]]:
    """``load("nk_primary", verdict=...)``: ``netkit.bpf.c`` with only those programs loaded;
    closed after the test."""
    opened: list[Object] = []

    def open_and_load(*programs: str, **rodata: int) -> Object:
        obj = open_object("netkit.bpf.c", (), programs=programs, **rodata)
        opened.append(obj)
        return obj

    try:
        yield open_and_load
    finally:
        for obj in opened:
            obj.close()


def link_fdinfo(link: pylibbpf.Link) -> dict[str, str]:
    """The kernel's ``/proc/self/fdinfo`` of a link (a netkit link adds ifindex, attach_type;
    ``LinkInfo.details`` follows the Linux 6.1 UAPI, which has no netkit)."""
    text = Path(f"/proc/self/fdinfo/{link.fd}").read_text()
    return {key.strip(): value.strip() for key, _, value in
            (line.partition(":") for line in text.splitlines())}


def attach_type_of(link: pylibbpf.Link) -> int:
    return int(link_fdinfo(link)["attach_type"].split()[0])  # "54 (primary)"


# ----------------------------------------------------------------------------- the client

@pytest.mark.kernel
def test_a_netkit_pair_by_rtnetlink_or_why_not() -> None:
    """The rtnetlink client on every kernel: a pair where netkit is expected, else the clear
    error (EOPNOTSUPP, "Unknown device type" where the kernel says it)."""
    with private_netns(), netkit.Rtnl() as rtnl:
        if not features.expected("netkit"):
            with pytest.raises(netkit.NetlinkError) as info:
                with netkit.netkit_pair("nk0", "nk1"):
                    pass
            assert info.value.errno == errno.EOPNOTSUPP
            assert "creating netkit pair nk0/nk1" in str(info.value)
            assert "no netkit devices" in str(info.value)
            return
        with netkit.netkit_pair("nk0", "nk1", mode="l2", peer_policy="drop") as pair:
            primary, peer = rtnl.link("nk0"), rtnl.link("nk1")
            assert (primary.kind, peer.kind) == ("netkit", "netkit")
            assert (primary.ifindex, peer.ifindex) == (pair.primary_ifindex, pair.peer_ifindex)
            assert (primary.link, peer.link) == (peer.ifindex, primary.ifindex)
        for name in ("nk0", "nk1"):  # deleting the primary deleted both
            with pytest.raises(netkit.NetlinkError) as gone:
                rtnl.link(name)
            assert gone.value.errno == errno.ENODEV


# ----------------------------------------------------------------------------- attach_netkit

@pytest.mark.needs("netkit", "libbpf>=1.3")
def test_a_primary_program_sees_what_the_primary_sends(load: Callable[..., Object],
                                                       pods: Pods) -> None:
    obj = load("nk_primary")
    prog, counts = obj.programs["nk_primary"], obj.maps["counts"]
    link = prog.attach_netkit(pods.pair.primary)  # by name, in this namespace
    try:
        info = link.info()
        assert info.type == LinkType.NETKIT and info.prog_id == prog.info().id
        assert link_fdinfo(link)["ifindex"] == str(pods.pair.primary_ifindex)
        assert attach_type_of(link) == AttachType.NETKIT_PRIMARY
        assert pods.to_peer() == N
        assert count(counts, K_PRIMARY) == N
        assert pods.to_primary() == N  # leaves through the peer: not the primary's program
        assert count(counts, K_PRIMARY) == N
    finally:
        link.destroy()
    assert pods.to_peer() == N
    assert count(counts, K_PRIMARY) == N  # destroyed: detached


@pytest.mark.needs("netkit", "libbpf>=1.3")
def test_a_peer_program_sees_what_the_peer_sends(load: Callable[..., Object],
                                                 pods: Pods) -> None:
    obj = load("nk_peer")
    counts = obj.maps["counts"]
    # peer programs attach through the primary, which the kernel resolves to its peer
    with obj.programs["nk_peer"].attach_netkit(pods.pair.primary_ifindex) as link:
        assert link.info().type == LinkType.NETKIT
        assert link_fdinfo(link)["ifindex"] == str(pods.pair.peer_ifindex)
        assert attach_type_of(link) == AttachType.NETKIT_PEER
        assert pods.to_primary() == N
        assert pods.to_peer() == N
        assert count(counts, K_PEER) == N
    assert pods.to_primary() == N
    assert count(counts, K_PEER) == N


@pytest.mark.needs("netkit", "libbpf>=1.3")
def test_a_netkit_program_verdict_drops(load: Callable[..., Object], pods: Pods) -> None:
    obj = load("nk_primary", verdict=NK_DROP)
    with obj.programs["nk_primary"].attach_netkit(pods.pair.primary_ifindex):
        assert pods.to_peer() == 0
        assert count(obj.maps["counts"], K_PRIMARY) == N
    assert pods.to_peer() == N


@pytest.mark.needs("netkit", "libbpf>=1.3")
def test_attach_netkit_places_programs_in_order(load: Callable[..., Object],
                                                pods: Pods) -> None:
    """``flags``/``relative_fd``/``relative_id``/``expected_revision`` reach the kernel: a
    program runs before or after another as asked, and a stale revision is refused."""
    obj = load("nk_order_a", "nk_order_b")
    a, b, counts = obj.programs["nk_order_a"], obj.programs["nk_order_b"], obj.maps["counts"]
    ifindex = pods.pair.primary_ifindex

    def order() -> tuple[int, int]:
        for key in (K_ORDER_A, K_ORDER_B, K_CLOCK):
            counts[key] = (0).to_bytes(8, sys.byteorder)
        assert pods.to_peer(1) == 1
        return count(counts, K_ORDER_A), count(counts, K_ORDER_B)

    with a.attach_netkit(ifindex) as link_a:  # the revision goes from 1 to 2
        with pytest.raises(pylibbpf.BpfError) as stale:
            b.attach_netkit(ifindex, expected_revision=1)
        assert stale.value.errno == errno.ESTALE
        with b.attach_netkit(ifindex, flags=BPF_F_BEFORE | BPF_F_LINK, relative_fd=link_a.fd,
                             expected_revision=2):
            assert order() == (2, 1)  # b first
        with b.attach_netkit(ifindex, flags=BPF_F_AFTER | BPF_F_ID, relative_id=a.info().id):
            assert order() == (1, 2)  # b after a
        with b.attach_netkit(ifindex, flags=BPF_F_BEFORE):  # no relative: before all
            assert order() == (2, 1)


@pytest.mark.needs("netkit", "libbpf>=1.3")
def test_attach_netkit_refuses_a_device_that_is_not_netkit(load: Callable[..., Object],
                                                           pods: Pods) -> None:
    prog = load("nk_primary").programs["nk_primary"]
    with pytest.raises(pylibbpf.BpfError) as info:
        prog.attach_netkit("lo")
    assert info.value.errno == errno.ENXIO
    assert "as netkit on ifindex 1" in str(info.value)
