"""struct_ops maps: a TCP congestion control written in BPF (``tests/bpf/struct_ops.bpf.c``),
attached with ``ObjectMap.attach_struct_ops`` or ``Object.attach()``, then chosen by a loopback
TCP connection with ``TCP_CONGESTION``; its callbacks count their calls in an ARRAY map.

The ``.struct_ops`` build registers the algorithm by writing the map's value (every libbpf,
Linux 5.6); the ``-DLINK`` build declares two maps in ``.struct_ops.link`` (libbpf >= 1.2,
Linux 6.4), whose BPF link ``update_map`` moves from one to the other.
"""

from __future__ import annotations

import errno
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pylibbpf import (
    BpfError,
    LinkType,
    MapType,
    NotSupportedError,
    Object,
    StateError,
    StructOpsLink,
)
from tests.support.bpfbuild import compile_bpf

CA = "pylibbpf_ca"
AVAILABLE = Path("/proc/sys/net/ipv4/tcp_available_congestion_control")
INIT, CONG_AVOID, CWND_EVENT, RELEASE, SLOTS = range(5)


def available() -> list[str]:
    """The congestion controls the kernel offers."""
    return AVAILABLE.read_text().split()


def calls(obj: Object) -> list[int]:
    """The counters of ``calls``: the ``ca`` callbacks, then the ``ca_b`` ones."""
    counters = obj.maps["calls"]
    return [int.from_bytes(counters[i], sys.byteorder) for i in range(2 * SLOTS)]


def tcp_transfer(congestion: str, size: int = 2 << 20) -> None:
    """Send ``size`` bytes over a loopback TCP connection that uses ``congestion``, and close
    it (the receiver reads everything in a thread)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        received = []

        def receive() -> None:
            conn, _ = server.accept()
            with conn:
                total = 0
                while chunk := conn.recv(1 << 16):
                    total += len(chunk)
                received.append(total)

        reader = threading.Thread(target=receive)
        reader.start()
        try:
            with socket.socket() as client:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, congestion.encode())
                client.connect(server.getsockname())
                assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION,
                                         16).rstrip(b"\0") == congestion.encode()
                client.sendall(b"x" * size)
        finally:
            reader.join(10)
        assert received == [size]


def refused_congestion(name: str) -> int:
    """The errno of selecting ``name`` on a socket (0 if the kernel accepts it)."""
    with socket.socket() as sock:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, name.encode())
        except OSError as exc:
            return exc.errno or -1
    return 0


@pytest.fixture
def plain() -> Iterator[Object]:
    """The ``.struct_ops`` build, opened (not loaded)."""
    with Object.open_file(compile_bpf("struct_ops.bpf.c")) as obj:
        yield obj


@pytest.fixture
def linked() -> Iterator[Object]:
    """The ``.struct_ops.link`` build (maps ``ca`` and ``ca_b``), opened (not loaded)."""
    with Object.open_file(compile_bpf("struct_ops.bpf.c", cflags=("-DLINK",))) as obj:
        yield obj


# ----------------------------------------------------------------------------- no kernel needed

def test_struct_ops_maps_before_load(plain: Object) -> None:
    ca = plain.maps["ca"]
    assert ca.type == MapType.STRUCT_OPS and ca.is_struct_ops and not ca.has_link
    assert ca.autoattach
    assert not plain.maps["calls"].is_struct_ops
    with pytest.raises(StateError, match="needs the object to be loaded"):
        ca.attach_struct_ops()
    with pytest.raises(BpfError, match="not a struct_ops map") as info:
        plain.maps["calls"].attach_struct_ops()
    assert info.value.errno == errno.EINVAL
    with pytest.raises(BpfError, match="initial value of struct_ops map 'ca'") as info:
        ca.initial_value_buffer()
    assert info.value.errno == errno.EOPNOTSUPP


def test_a_libbpf_without_struct_ops_link_says_so(linked: Object,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """libbpf 1.1 skips a ``.struct_ops.link`` section silently, then fails on its programs:
    load() names the release needed instead (refused before any C call)."""
    from pylibbpf import _ffi

    monkeypatch.setattr(_ffi, "version", lambda: (1, 1))
    with pytest.raises(NotSupportedError, match=r"struct_ops\.link.*need libbpf >= 1\.2"):
        linked.load()
    assert not linked.loaded


# ----------------------------------------------------------------------------- in the kernel

@pytest.mark.needs("struct_ops")
def test_tcp_congestion_control_in_bpf(plain: Object) -> None:
    assert CA not in available()
    plain.load()
    ca = plain.maps["ca"]
    for op in (lambda: ca[0], lambda: ca.lookup(0), lambda: ca.update(0, b"\0" * ca.value_size),
               ca.freeze, lambda: list(ca.keys())):
        with pytest.raises(NotSupportedError, match="struct_ops map: its elements"):
            op()
    with ca.attach_struct_ops() as link:
        assert isinstance(link, StructOpsLink) and link.map is ca and not link.is_bpf_link
        assert CA in available()
        tcp_transfer(CA)
        counted = calls(plain)
        assert counted[INIT] == 1
        assert counted[CONG_AVOID] + counted[CWND_EVENT] >= 1
        assert counted[RELEASE] == 1
        # a registration is no BPF link: what needs one says so
        for op in (lambda: link.fd, lambda: link.pin("/sys/fs/bpf/x"), link.detach,
                   link.disconnect, lambda: link.update_map(ca), link.info):
            with pytest.raises(NotSupportedError, match=r"struct_ops\.link"):
                op()
    assert CA not in available()
    assert refused_congestion(CA) == errno.ENOENT


@pytest.mark.needs("struct_ops")
def test_object_attach_attaches_struct_ops_maps(plain: Object) -> None:
    plain.load()
    plain.maps["ca"].set_autoattach(False)
    plain.attach()
    assert not plain.links and CA not in available()
    plain.maps["ca"].set_autoattach(True)
    plain.attach()
    assert set(plain.links) == {"ca"} and isinstance(plain.links["ca"], StructOpsLink)
    assert CA in available()
    plain.attach()  # what is attached stays as it is
    tcp_transfer(CA)
    assert calls(plain)[INIT] == 1
    plain.detach()
    assert not plain.links and CA not in available()
    # the kernel registers a .struct_ops map once: the second time says why it is refused
    with pytest.raises(BpfError, match=r"once per load") as info:
        plain.attach()
    assert info.value.errno == errno.EBUSY and not plain.links


@pytest.mark.needs("struct_ops")
def test_a_struct_ops_link_closes_with_its_object(plain: Object) -> None:
    link = plain.load().maps["ca"].attach_struct_ops()
    assert CA in available()
    plain.close()
    assert link.closed and CA not in available()


@pytest.mark.needs("struct_ops")
def test_a_second_registration_of_the_name_fails_with_the_reason(plain: Object) -> None:
    plain.load()
    with Object.open_file(compile_bpf("struct_ops.bpf.c")) as other:
        other.load()
        with plain.maps["ca"].attach_struct_ops():
            with pytest.raises(BpfError, match="failed to attach struct_ops map 'ca'") as info:
                other.maps["ca"].attach_struct_ops()
            assert info.value.errno == errno.EEXIST
            with pytest.raises(BpfError, match="failed to attach struct_ops map 'ca'"):
                other.attach()
            assert not other.links


@pytest.mark.needs("struct_ops_link", "libbpf>=1.2")
def test_struct_ops_link_and_update_map(linked: Object,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ca, ca_b = linked.maps["ca"], linked.maps["ca_b"]
    assert ca.has_link and ca_b.has_link
    linked.load()
    with ca.attach_struct_ops() as link:
        assert link.is_bpf_link and link.fd >= 0
        assert link.info().type == LinkType.STRUCT_OPS
        assert CA in available()
        tcp_transfer(CA)
        first = calls(linked)
        assert first[INIT] == 1 and first[SLOTS + INIT] == 0

        from pylibbpf import _ffi

        with monkeypatch.context() as patch:
            patch.setattr(_ffi, "has", lambda name: False)
            with pytest.raises(NotSupportedError, match=r"libbpf >= 1\.2"):
                link.update_map(ca_b)
        with pytest.raises(TypeError, match="struct_ops.link"):
            link.update_map(linked.maps["calls"])
        link.update_map(ca_b)
        assert link.map is ca_b and CA in available()
        tcp_transfer(CA)
        second = calls(linked)
        assert second[INIT] == first[INIT] and second[SLOTS + INIT] == 1
        assert second[SLOTS + CONG_AVOID] >= 1
    assert CA not in available()
