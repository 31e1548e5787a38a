"""A small rtnetlink client for the netkit tests: create a netkit pair, bring links up, give
them addresses, delete them again; plus network namespaces held by an fd.

Nothing here uses pylibbpf (``features.py`` probes netkit with it).  The guests' ``ip``
(iproute2 6.1) predates netkit, so the pair is created with ``RTM_NEWLINK`` directly, as
``drivers/net/netkit.c`` reads it::

    RTM_NEWLINK ifinfomsg, IFLA_IFNAME primary,
      IFLA_LINKINFO { IFLA_INFO_KIND "netkit",
                      IFLA_INFO_DATA { IFLA_NETKIT_PEER_INFO ifinfomsg + { IFLA_IFNAME peer,
                                                                           IFLA_NET_NS_FD },
                                       IFLA_NETKIT_MODE, IFLA_NETKIT_POLICY,
                                       IFLA_NETKIT_PEER_POLICY } }

A kernel without netkit answers ``EOPNOTSUPP`` with the extended ack "Unknown device type";
:class:`NetlinkError` carries both.  Deleting either end deletes the pair.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

# <linux/netlink.h>
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200  # in an NLMSG_ERROR's flags
SOL_NETLINK, NETLINK_EXT_ACK = 270, 11
NLMSGERR_ATTR_MSG = 1
# <linux/rtnetlink.h>, <linux/if_link.h>, <linux/if_addr.h>
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR = 16, 17, 18, 20
IFLA_IFNAME, IFLA_LINK, IFLA_LINKINFO, IFLA_NET_NS_FD = 3, 5, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_NETKIT_PEER_INFO, IFLA_NETKIT_POLICY, IFLA_NETKIT_PEER_POLICY, IFLA_NETKIT_MODE = 1, 3, 4, 5
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFF_UP = 0x1
# enum netkit_mode, enum netkit_action (the policies a device applies with no program)
MODES = {"l2": 0, "l3": 1}
POLICIES = {"pass": 0, "drop": 2}

NLMSGHDR = struct.Struct("=IHHII")   # len, type, flags, seq, pid
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
RTATTR = struct.Struct("=HH")        # len, type


class NetlinkError(OSError):
    """The kernel refused a request; ``errno`` is its error, the message holds its extended
    acknowledgement (``NETLINK_EXT_ACK``) when it sent one."""


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    """One ``rtattr`` (a nested one is an attr whose payload is attrs), padded to 4 bytes."""
    raw = RTATTR.pack(RTATTR.size + len(payload), kind) + payload
    return raw + b"\0" * (_align(len(raw)) - len(raw))


def attr_str(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def parse_attrs(data: bytes) -> dict[int, bytes]:
    """Type -> payload of the attributes in ``data`` (flag bits of the type dropped)."""
    found: dict[int, bytes] = {}
    pos = 0
    while pos + RTATTR.size <= len(data):
        length, kind = RTATTR.unpack_from(data, pos)
        if length < RTATTR.size:
            break
        found[kind & 0x3FFF] = data[pos + RTATTR.size:pos + length]
        pos += _align(length)
    return found


@dataclass(frozen=True)
class LinkState:
    """What ``RTM_GETLINK`` says about one link."""

    ifindex: int
    name: str
    flags: int
    link: int        # IFLA_LINK: a netkit device's peer (its ifindex), else 0
    kind: str        # IFLA_INFO_KIND ("netkit"), "" for a device without one


class Rtnl:
    """A ``NETLINK_ROUTE`` socket.  It acts in the network namespace current when it was
    made, whichever the thread is in later."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        with contextlib.suppress(OSError):  # before Linux 4.12: errors without a message
            self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        self.sock.bind((0, 0))
        self.sock.settimeout(5.0)
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, msg_type: int, flags: int, payload: bytes, what: str) -> list[bytes]:
        """Send one request with ``NLM_F_ACK`` and wait for its acknowledgement; returns the
        payloads of the replies before it.  A refusal raises :class:`NetlinkError` saying
        ``what`` failed."""
        self.seq += 1
        seq = self.seq
        message = NLMSGHDR.pack(NLMSGHDR.size + len(payload), msg_type,
                                flags | NLM_F_REQUEST | NLM_F_ACK, seq, 0) + payload
        self.sock.send(message)
        replies: list[bytes] = []
        while True:
            data = self.sock.recv(65536)
            pos = 0
            while pos + NLMSGHDR.size <= len(data):
                length, kind, msg_flags, msg_seq, _ = NLMSGHDR.unpack_from(data, pos)
                if length < NLMSGHDR.size:
                    raise NetlinkError(errno.EPROTO, f"{what}: a malformed netlink reply")
                body = data[pos + NLMSGHDR.size:pos + length]
                pos += _align(length)
                if msg_seq != seq:
                    continue
                if kind != NLMSG_ERROR:
                    replies.append(body)
                    continue
                (code,) = struct.unpack_from("=i", body)
                if code == 0:
                    return replies
                raise _error(-code, what, body, msg_flags)

    def link(self, name: str) -> LinkState:
        """``RTM_GETLINK`` by name (``ENODEV`` when there is none)."""
        replies = self.request(RTM_GETLINK, 0, IFINFOMSG.pack(0, 0, 0, 0, 0)
                               + attr_str(IFLA_IFNAME, name), f"looking up link {name!r}")
        body = next(r for r in replies if len(r) >= IFINFOMSG.size)
        _, _, ifindex, flags, _ = IFINFOMSG.unpack_from(body)
        attrs = parse_attrs(body[IFINFOMSG.size:])
        info = parse_attrs(attrs.get(IFLA_LINKINFO, b""))
        peer = attrs.get(IFLA_LINK)
        return LinkState(ifindex=ifindex, name=attrs[IFLA_IFNAME].rstrip(b"\0").decode(),
                         flags=flags, link=struct.unpack("=I", peer)[0] if peer else 0,
                         kind=info.get(IFLA_INFO_KIND, b"").rstrip(b"\0").decode())

    def set_up(self, ifindex: int) -> None:
        """Bring a link up (``ip link set ... up``)."""
        self.request(RTM_NEWLINK, 0, IFINFOMSG.pack(0, 0, ifindex, IFF_UP, IFF_UP),
                     f"bringing up ifindex {ifindex}")

    def add_address(self, ifindex: int, address: str, prefixlen: int) -> None:
        """Add an IPv4 address (``ip addr add address/prefixlen dev ...``)."""
        raw = socket.inet_aton(address)
        payload = (IFADDRMSG.pack(socket.AF_INET, prefixlen, 0, 0, ifindex)
                   + attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw))
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, payload,
                     f"adding {address}/{prefixlen} to ifindex {ifindex}")

    def delete_link(self, ifindex: int) -> None:
        self.request(RTM_DELLINK, 0, IFINFOMSG.pack(0, 0, ifindex, 0, 0),
                     f"deleting ifindex {ifindex}")

    def new_netkit(self, name: str, peer: str, *, mode: str = "l3", policy: str = "pass",
                   peer_policy: str = "pass", peer_netns: int | None = None) -> None:
        """Create the netkit pair ``name`` (primary) / ``peer`` (in the namespace of the fd
        ``peer_netns``, else beside the primary)."""
        peer_attrs = attr_str(IFLA_IFNAME, peer)
        if peer_netns is not None:
            peer_attrs += attr_u32(IFLA_NET_NS_FD, peer_netns)
        data = (attr(IFLA_NETKIT_PEER_INFO, IFINFOMSG.pack(0, 0, 0, 0, 0) + peer_attrs)
                + attr_u32(IFLA_NETKIT_MODE, MODES[mode])
                + attr_u32(IFLA_NETKIT_POLICY, POLICIES[policy])
                + attr_u32(IFLA_NETKIT_PEER_POLICY, POLICIES[peer_policy]))
        linkinfo = attr_str(IFLA_INFO_KIND, "netkit") + attr(IFLA_INFO_DATA, data)
        payload = (IFINFOMSG.pack(0, 0, 0, 0, 0) + attr_str(IFLA_IFNAME, name)
                   + attr(IFLA_LINKINFO, linkinfo))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, payload,
                     f"creating netkit pair {name}/{peer}")


def _error(code: int, what: str, body: bytes, flags: int) -> NetlinkError:
    """The exception for an ``NLMSG_ERROR`` carrying ``-code``, with the kernel's message."""
    text = ""
    if flags & NLM_F_ACK_TLVS:
        # the error code, then the request echoed (only its header when capped), then TLVs
        if flags & NLM_F_CAPPED:
            echoed = NLMSGHDR.size
        else:
            echoed = NLMSGHDR.unpack_from(body, 4)[0] if len(body) >= 4 + NLMSGHDR.size else 0
        tlvs = parse_attrs(body[4 + _align(echoed):])
        text = tlvs.get(NLMSGERR_ATTR_MSG, b"").rstrip(b"\0").decode(errors="replace")
    message = f"{what}: {os.strerror(code)}" + (f" ({text})" if text else "")
    if code == errno.EOPNOTSUPP and "netkit" in what:
        message += ": this kernel has no netkit devices (Linux 6.7 with CONFIG_NETKIT)"
    return NetlinkError(code, message)


@dataclass(frozen=True)
class NetkitPair:
    """A netkit pair: the primary's name and ifindex (in the creator's namespace) and the
    peer's (in its own)."""

    primary: str
    peer: str
    primary_ifindex: int
    peer_ifindex: int


@contextlib.contextmanager
def netkit_pair(name: str = "nk0", peer: str = "nk1", *, mode: str = "l3",
                policy: str = "pass", peer_policy: str = "pass",
                peer_netns: int | None = None) -> Iterator[NetkitPair]:
    """Create a netkit pair in the current network namespace (the peer in ``peer_netns``'s
    when given) and delete it when the block ends."""
    with Rtnl() as rtnl:
        rtnl.new_netkit(name, peer, mode=mode, policy=policy, peer_policy=peer_policy,
                        peer_netns=peer_netns)
        try:
            state = rtnl.link(name)
            if state.kind != "netkit" or not state.link:
                raise AssertionError(f"{name} is not the primary of a netkit pair: {state}")
            yield NetkitPair(primary=name, peer=peer, primary_ifindex=state.ifindex,
                             peer_ifindex=state.link)
        finally:
            with contextlib.suppress(NetlinkError):  # ENODEV: gone with its namespace
                rtnl.delete_link(rtnl.link(name).ifindex)


# --------------------------------------------------------------------------------- namespaces

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def setns(fd: int) -> None:
    """Move this thread into the network namespace of ``fd``."""
    _check(_libc.setns(fd, CLONE_NEWNET), "setns(CLONE_NEWNET)")


@contextlib.contextmanager
def new_netns() -> Iterator[int]:
    """A fresh network namespace, held by the fd this yields; the thread stays where it was.
    The namespace goes when the fd is closed and nothing else holds it."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        try:
            ns = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            setns(home)
    finally:
        os.close(home)
    try:
        yield ns
    finally:
        os.close(ns)


@contextlib.contextmanager
def in_netns(fd: int) -> Iterator[None]:
    """Run the block in the network namespace of ``fd`` (sockets made there stay there)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd)
        try:
            yield
        finally:
            setns(home)
    finally:
        os.close(home)
