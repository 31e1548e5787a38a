"""The attach points of libbpf 1.1 that came later to pylibbpf (kprobe multi-links, programs
attached to a sockmap) and those of newer libbpf releases, used when the loaded libbpf has
them: uprobe multi-links, tcx and netfilter links (1.3), kprobe sessions and sockmap links
(1.5), uprobe sessions and ``Object.prepare`` (1.6).

Programs: ``tests/bpf/attach_more.bpf.c``; each test loads only the programs it uses, and
marks the kernel features and the libbpf release they need.  Where the kernel or libbpf lacks
one, another tier runs the test (docs/kernel-matrix.md).
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import pylibbpf
from pylibbpf import LinkType, NotSupportedError, Object
from tests.support import features
from tests.support.attach import (
    Helper,
    count,
    getpid_loop,
    helper_binary,
    object_path,
    private_netns,
    send_and_receive,
    udp_pair,
)
from tests.support.bpfbuild import compile_bpf

(K_KMULTI, K_KMULTI_COOKIE, K_KSESSION_HITS, K_UMULTI, K_UMULTI_COOKIE, K_USESSION_HITS, K_TCX,
 K_NETFILTER, K_SK_MSG, K_VERDICT) = range(10)
NFPROTO_IPV4, NF_INET_LOCAL_IN = 2, 1
N = 5


@pytest.fixture
def load() -> Iterator[Callable[..., Object]]:
    """``load("kmulti", target_pid=...)``: ``attach_more.bpf.c`` with only those programs
    loaded and those ``.rodata`` values; closed after the test."""
    opened: list[Object] = []

    def open_and_load(*programs: str, **rodata: int) -> Object:
        obj = Object.open_file(object_path("attach_more.bpf.c"))
        opened.append(obj)
        for name, prog in obj.programs.items():
            prog.set_autoload(name in programs)
        for name, value in rodata.items():
            obj.rodata[name] = value
        return obj.load()

    try:
        yield open_and_load
    finally:
        for obj in opened:
            obj.close()


def getpid_function() -> str:
    """The name ftrace lists for getpid's handler (kprobe-multi patterns before libbpf 1.7
    match ``available_filter_functions`` only: docs/kernel-matrix.md)."""
    features.ensure_mounts()
    listed = (features.TRACEFS / "available_filter_functions").read_text().split("\n")
    names = {line.split()[0] for line in listed if line}
    for name in ("__x64_sys_getpid", "__do_sys_getpid", "__se_sys_getpid", "sys_getpid"):
        if name in names:
            return name
    raise AssertionError("ftrace lists no handler of getpid")


# ----------------------------------------------------------------------------- kprobe multi

@pytest.mark.needs("kprobe_multi")
def test_attach_kprobe_multi_by_pattern_and_by_symbols(load: Callable[..., Object]) -> None:
    obj = load("kmulti", target_pid=os.getpid())
    prog, counts = obj.programs["kmulti"], obj.maps["counts"]
    name = getpid_function()
    with prog.attach_kprobe_multi(name) as link:
        assert link.info().type == LinkType.KPROBE_MULTI
        getpid_loop(N)
        assert count(counts, K_KMULTI) == N
    getpid_loop(N)
    assert count(counts, K_KMULTI) == N  # destroyed: detached
    with prog.attach_kprobe_multi(syms=[name], cookies=[7]):
        getpid_loop(3)
    assert count(counts, K_KMULTI) == N + 3
    assert count(counts, K_KMULTI_COOKIE) == 3 * 7


@pytest.mark.needs("kprobe_multi")
def test_attach_kprobe_multi_names_what_it_could_not_find(
        load: Callable[..., Object]) -> None:
    prog = load("kmulti", target_pid=os.getpid()).programs["kmulti"]
    with pytest.raises(pylibbpf.BpfError) as info:
        prog.attach_kprobe_multi("pylibbpf_no_such_function_*")
    assert info.value.errno == errno.ENOENT
    assert "failed to attach program 'kmulti' as multi-kprobe on pylibbpf_no_such_function_*" \
        in str(info.value)


@pytest.mark.needs("kprobe_session", "libbpf>=1.5")
def test_a_kprobe_session_runs_on_entry_and_return(load: Callable[..., Object]) -> None:
    obj = load("ksession", target_pid=os.getpid())
    with obj.programs["ksession"].attach_kprobe_multi(getpid_function(), session=True):
        getpid_loop(N)
    assert count(obj.maps["counts"], K_KSESSION_HITS) == 2 * N  # on entry and on return


# ----------------------------------------------------------------------------- uprobe multi

def run_helper(calls: int, attach: Callable[[int], pylibbpf.Link]) -> None:
    """Start the helper, attach (given its pid) and let it call its function ``calls`` times."""
    helper = Helper(helper_binary(), calls)
    try:
        with attach(helper.pid):
            helper.go()
    finally:
        helper.close()


@pytest.mark.needs("uprobe_multi", "libbpf>=1.3")
def test_attach_uprobe_multi_by_pattern_and_by_symbols(load: Callable[..., Object]) -> None:
    obj = load("umulti")
    prog, counts, binary = obj.programs["umulti"], obj.maps["counts"], helper_binary()
    run_helper(4, lambda pid: prog.attach_uprobe_multi(binary, "pylibbpf_targ*", pid=pid))
    assert count(counts, K_UMULTI) == 4
    run_helper(3, lambda pid: prog.attach_uprobe_multi(binary, syms=["pylibbpf_target"],
                                                       cookies=[5], pid=pid))
    assert count(counts, K_UMULTI) == 7
    assert count(counts, K_UMULTI_COOKIE) == 3 * 5


@pytest.mark.needs("uprobe_session", "libbpf>=1.6")
def test_a_uprobe_session_runs_on_entry_and_return(load: Callable[..., Object]) -> None:
    obj = load("usession")
    prog = obj.programs["usession"]
    run_helper(4, lambda pid: prog.attach_uprobe_multi(helper_binary(), "pylibbpf_target",
                                                       pid=pid, session=True))
    assert count(obj.maps["counts"], K_USESSION_HITS) == 2 * 4  # on entry and on return


# ----------------------------------------------------------------------------- tcx, netfilter

@pytest.fixture
def netns() -> Iterator[int]:
    with private_netns() as ns:
        yield ns


@pytest.mark.needs("tcx", "libbpf>=1.3")
def test_attach_tcx_counts_ingress_packets(load: Callable[..., Object], netns: int) -> None:
    rx, tx, port = udp_pair()
    with rx, tx:
        obj = load("tcx_count", port=port)
        link = obj.programs["tcx_count"].attach_tcx("lo")
        try:
            assert link.info().type == LinkType.TCX
            send_and_receive(rx, tx, port, N)
            assert count(obj.maps["counts"], K_TCX) == N
        finally:
            link.destroy()
        send_and_receive(rx, tx, port, N)
        assert count(obj.maps["counts"], K_TCX) == N


@pytest.mark.needs("netfilter", "libbpf>=1.3")
def test_attach_netfilter_sees_local_in(load: Callable[..., Object], netns: int) -> None:
    payload = b"n" * 123
    rx, tx, port = udp_pair()
    with rx, tx:
        obj = load("nf_count", nf_len=20 + 8 + len(payload))
        link = obj.programs["nf_count"].attach_netfilter(NFPROTO_IPV4, NF_INET_LOCAL_IN,
                                                         priority=-128)
        with link:
            assert link.info().type == LinkType.NETFILTER
            send_and_receive(rx, tx, port, N, payload)
        send_and_receive(rx, tx, port, N, payload)
    assert count(obj.maps["counts"], K_NETFILTER) == N


# ----------------------------------------------------------------------------- sockmap

def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A connected TCP client and the server's accepted socket, on 127.0.0.1."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    for sock in (client, server):
        sock.settimeout(5.0)
    return client, server


def exchange(client: socket.socket, server: socket.socket, n: int) -> None:
    """``n`` one-byte messages from ``client``, each received by ``server`` before the next."""
    for _ in range(n):
        client.sendall(b"x")
        assert server.recv(16) == b"x"


@pytest.mark.needs("sockmap")
def test_an_sk_msg_program_attached_to_a_sockmap(load: Callable[..., Object]) -> None:
    obj = load("msg_count")
    socks, counts = obj.maps["socks"], obj.maps["counts"]
    client, server = tcp_pair()
    with client, server:
        attachment = obj.programs["msg_count"].attach_to_map(socks)
        assert attachment.attach_type == pylibbpf.AttachType.SK_MSG_VERDICT
        with attachment:
            socks[0] = client.fileno()
            exchange(client, server, N)
            assert count(counts, K_SK_MSG) == N
        assert attachment.closed
        # a socket keeps the programs of when it was added: add it again to see the detach
        del socks[0]
        socks[0] = client.fileno()
        exchange(client, server, N)
        assert count(counts, K_SK_MSG) == N


@pytest.mark.needs("sockmap")
def test_a_stream_verdict_program_outlives_its_object(load: Callable[..., Object]) -> None:
    obj = load("verdict_count")
    client, server = tcp_pair()
    with client, server:
        attachment = obj.programs["verdict_count"].attach_to_map(obj.maps["socks"])
        counts = obj.maps["counts"]
        obj.maps["socks"][1] = server.fileno()
        exchange(client, server, N)  # SK_PASS: the data still arrives
        assert count(counts, K_VERDICT) >= 1
        obj.close()
        attachment.detach()  # its own fds: the map and the program are still there for it
        attachment.detach()


@pytest.mark.needs("sockmap")
def test_attach_to_map_wants_a_sockmap_attach_type(load: Callable[..., Object]) -> None:
    obj = load("msg_count")
    with pytest.raises(ValueError, match="pass attach_type"):
        obj.programs["msg_count"].attach_to_map(obj.maps["socks"],
                                                pylibbpf.AttachType.CGROUP_INET_INGRESS)


@pytest.mark.needs("sockmap_link", "libbpf>=1.5")
def test_attach_sockmap_makes_a_link(load: Callable[..., Object]) -> None:
    obj = load("verdict_count")
    counts = obj.maps["counts"]
    client, server = tcp_pair()
    with client, server:
        with obj.programs["verdict_count"].attach_sockmap(obj.maps["socks"]) as link:
            assert link.info().type == LinkType.SOCKMAP
            obj.maps["socks"][1] = server.fileno()
            exchange(client, server, N)
            assert count(counts, K_VERDICT) >= 1


# ----------------------------------------------------------------------------- prepare

@pytest.mark.needs("tracepoint", "libbpf>=1.6")
def test_prepare_then_load(tmp_path: Path) -> None:
    with Object.open_file(compile_bpf("minimal.bpf.c")) as obj:
        assert obj.prepare() is obj
        assert obj.prepared and not obj.loaded
        obj.programs["on_getpid"].set_log_level(1)  # programs are still configurable
        with pytest.raises(pylibbpf.StateError):
            obj.prepare()
        obj.load()
        assert obj.loaded and not obj.prepared
        with obj.programs["on_getpid"].attach():
            before = count(obj.maps["hits"], 0)
            getpid_loop(3)
            assert count(obj.maps["hits"], 0) >= before + 3


@pytest.mark.needs("tracepoint", "libbpf>=1.6")
def test_a_failed_prepare_says_what_failed() -> None:
    path = compile_bpf("load_errors.bpf.c", cflags=("-DNO_MAX_ENTRIES",))
    with Object.open_file(path) as obj:
        with pytest.raises(pylibbpf.BpfError, match="map 'start': failed to create"):
            obj.prepare()
        with pytest.raises(pylibbpf.StateError):
            obj.load()


# ----------------------------------------------------------------------------- older libbpf

NEWER = [
    ("attach_uprobe_multi", ("/bin/true", "main"), "libbpf >= 1.3"),
    ("attach_tcx", ("lo",), "libbpf >= 1.3"),
    ("attach_netkit", ("lo",), "libbpf >= 1.3"),
    ("attach_netfilter", (NFPROTO_IPV4, NF_INET_LOCAL_IN), "libbpf >= 1.3"),
    ("attach_sockmap", (0,), "libbpf >= 1.5"),
]


@pytest.mark.parametrize(("method", "args", "needed"), NEWER, ids=[m for m, *_ in NEWER])
def test_a_libbpf_without_the_function_names_the_release_needed(
        method: str, args: tuple[object, ...], needed: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What a user of libbpf 1.1 sees (no root needed: it is refused before any C call)."""
    from pylibbpf import _ffi

    monkeypatch.setattr(_ffi, "has", lambda name: False)
    with Object.open_file(compile_bpf("minimal.bpf.c")) as obj:
        prog = obj.programs["on_getpid"]
        kwargs = {"priority": 1} if method == "attach_netfilter" else {}
        with pytest.raises(NotSupportedError, match=needed) as info:
            getattr(prog, method)(*args, **kwargs)
        assert info.value.errno == errno.EOPNOTSUPP
        with pytest.raises(NotSupportedError, match=r"libbpf >= 1\.6"):
            obj.prepare()


def test_sessions_name_the_release_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    from pylibbpf import _ffi

    monkeypatch.setattr(_ffi, "version", lambda: (1, 1))
    monkeypatch.setattr(_ffi, "has", lambda name: True)
    with Object.open_file(compile_bpf("minimal.bpf.c")) as obj:
        prog = obj.programs["on_getpid"]
        with pytest.raises(NotSupportedError, match=r"kprobe session needs libbpf >= 1\.5"):
            prog.attach_kprobe_multi("x", session=True)
        with pytest.raises(NotSupportedError, match=r"uprobe session needs libbpf >= 1\.6"):
            prog.attach_uprobe_multi("/bin/true", "main", session=True)


def test_multi_probes_check_their_arguments() -> None:
    with Object.open_file(compile_bpf("minimal.bpf.c")) as obj:
        prog = obj.programs["on_getpid"]
        with pytest.raises(ValueError, match="either pattern or syms"):
            prog.attach_kprobe_multi()
        with pytest.raises(ValueError, match="either pattern or syms"):
            prog.attach_kprobe_multi("a*", syms=["a"])
        with pytest.raises(ValueError, match="differ in length"):
            prog.attach_kprobe_multi(syms=["a", "b"], cookies=[1])
        with pytest.raises(TypeError, match="sequence"):
            prog.attach_kprobe_multi(syms="abc")
