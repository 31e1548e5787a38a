"""``Link`` on the real kernel: destroy, detach, disconnect + pin, reopen, unpin, program
update, info against bpftool, and a link that outlives its object.  Programs:
``tests/bpf/attach_trace.bpf.c`` (getpid counters filtered on our pid) and
``tests/bpf/attach_net.bpf.c`` (packet counters, in a private netns or a fresh cgroup).
Each test loads only the programs it uses and marks the kernel features they need."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import pylibbpf
from pylibbpf import LinkType
from tests.support.attach import (
    count,
    fresh_cgroup,
    getpid_loop,
    open_object,
    perf_links,
    pin_dir,
    private_netns,
    send_and_receive,
    send_from_cgroup,
    udp_pair,
)

pytestmark = pytest.mark.kernel

K_TP, K_RAW, K_BTF, K_TP_EXPLICIT, K_RAW_EXPLICIT, K_PERF, K_OTHER = range(7)
K_XDP, K_XDP2, K_CG, K_CG2, K_LOOKUP = 0, 1, 3, 4, 6
N = 300


Load = Callable[..., pylibbpf.Object]


@pytest.fixture
def pins() -> Iterator[Path]:
    with pin_dir() as path:
        yield path


def raw_count(m: pylibbpf.Map) -> int:
    return count(m, K_RAW)


# ----------------------------------------------------------------------------- destroy

@pytest.mark.needs("raw_tp")
def test_destroy_detaches_and_is_idempotent(load_trace: Load) -> None:
    obj = load_trace("raw_enter")
    counts = obj.maps["counts"]
    link = obj.programs["raw_enter"].attach()
    link_id = link.info().id
    getpid_loop(N)
    link.destroy()
    assert link.closed
    link.destroy()
    getpid_loop(N)
    assert raw_count(counts) == N
    assert link_id not in set(pylibbpf.link_ids())
    with pytest.raises(pylibbpf.ClosedError):
        link.info()
    assert repr(link) == "<Link closed>"


@pytest.mark.needs("tracepoint")
def test_context_manager_destroys(load_trace: Load) -> None:
    obj = load_trace("tp_getpid")
    with obj.programs["tp_getpid"].attach() as link:
        getpid_loop(N)
    assert link.closed
    getpid_loop(N)
    assert count(obj.maps["counts"], K_TP) == N


# ----------------------------------------------------------------------------- detach

@pytest.mark.parametrize("prog", [pytest.param("tp_getpid", marks=pytest.mark.needs("tracepoint")),
                                  pytest.param("raw_enter", marks=pytest.mark.needs("raw_tp"))])
def test_detach_not_supported_on_tracing_links(load_trace: Load, prog: str) -> None:
    obj = load_trace(prog)
    # perf-event links (tp) and raw_tp links have no BPF_LINK_DETACH in the kernel; before
    # 5.15 a tracepoint "link" is a perf event fd, which BPF_LINK_DETACH calls invalid
    legacy = prog == "tp_getpid" and not perf_links()
    with obj.programs[prog].attach() as link:
        with pytest.raises(pylibbpf.BpfError) as info:
            link.detach()
        assert info.value.errno == (errno.EINVAL if legacy else errno.EOPNOTSUPP)
        assert legacy or isinstance(info.value, pylibbpf.NotSupportedError)
        assert f"failed to detach link of '{prog}'" in str(info.value)
        getpid_loop(N)  # still attached
    slot = K_TP if prog == "tp_getpid" else K_RAW
    assert count(obj.maps["counts"], slot) == N


@pytest.mark.needs("cgroup")
def test_detach_cgroup_link_keeps_the_fd() -> None:
    rx, tx, port = udp_pair()
    net = open_object("attach_net.bpf.c", programs=("cg_egress",), port=port)
    try:
        with fresh_cgroup() as cgroup:
            link = net.programs["cg_egress"].attach_cgroup(cgroup)
            try:
                send_from_cgroup(cgroup, port, 5)
                link.detach()
                send_from_cgroup(cgroup, port, 5)
                assert count(net.maps["counts"], K_CG) == 5
                # the link object and its fd live on, defunct
                assert link.fd >= 0
                assert link.info().type == LinkType.CGROUP
            finally:
                link.destroy()
    finally:
        net.close()
        rx.close()
        tx.close()


@pytest.mark.needs("xdp", "sk_lookup")
def test_detach_xdp_and_netns_links() -> None:
    with private_netns() as ns:
        rx, tx, port = udp_pair()
        net = open_object("attach_net.bpf.c", programs=("xdp_count", "xdp_count2",
                                                        "lookup_count"), port=port)
        try:
            xdp = net.programs["xdp_count"].attach_xdp("lo")
            lookup = net.programs["lookup_count"].attach_netns(ns)
            try:
                send_and_receive(rx, tx, port, 4)
                xdp.detach()
                lookup.detach()
                send_and_receive(rx, tx, port, 4)
                assert count(net.maps["counts"], K_XDP) == 4
                assert count(net.maps["counts"], K_LOOKUP) == 4
                # the interface is free again
                with net.programs["xdp_count2"].attach_xdp("lo"):
                    send_and_receive(rx, tx, port, 2)
                assert count(net.maps["counts"], K_XDP2) == 2
            finally:
                xdp.destroy()
                lookup.destroy()
        finally:
            net.close()
            rx.close()
            tx.close()


# ----------------------------------------------------------------------------- pinning

@pytest.mark.needs("raw_tp")
def test_disconnect_and_pin_outlive_link_and_object(load_trace: Load, pins: Path) -> None:
    obj = load_trace("raw_enter")
    path = pins / "raw_link"
    counts = pylibbpf.Map.from_id(obj.maps["counts"].info().id)
    try:
        link = obj.programs["raw_enter"].attach()
        assert link.pin_path is None
        link.pin(path)
        assert link.pin_path == str(path)
        prog_id, link_id = link.info().prog_id, link.info().id
        link.disconnect()
        link.destroy()
        obj.close()
        getpid_loop(N)
        assert raw_count(counts) == N, "a pinned, disconnected link stays attached"

        again = pylibbpf.Link.open(path)
        try:
            info = again.info()
            assert (info.id, info.prog_id, info.type) == (link_id, prog_id,
                                                          LinkType.RAW_TRACEPOINT)
            assert again.pin_path == str(path)  # bpf_link__open records the path
            with pytest.raises(pylibbpf.BpfError) as busy:
                again.pin(pins / "second")  # libbpf: one pin per link object
            assert busy.value.errno == errno.EBUSY
            again.unpin()
            assert again.pin_path is None and not path.exists()
            getpid_loop(N)
            assert raw_count(counts) == 2 * N, "the open fd keeps it attached"
            again.pin(pins / "second")
            assert (pins / "second").exists() and again.pin_path == str(pins / "second")
            again.unpin()
            assert not (pins / "second").exists()
        finally:
            again.destroy()
        assert fds_of_link(link_id) == []  # destroy() of the disconnected link closed its fd
        wait_link_gone(link_id)
        getpid_loop(N)
        assert raw_count(counts) == 2 * N, "the last reference is gone: detached"
        assert link_id not in set(pylibbpf.link_ids())
    finally:
        counts.close()


def fds_of_link(link_id: int) -> list[int]:
    """Our fds that refer to the BPF link ``link_id`` (from /proc/self/fdinfo)."""
    found = []
    for name in os.listdir("/proc/self/fdinfo"):
        try:
            with open(f"/proc/self/fdinfo/{name}") as f:
                text = f.read()
        except OSError:
            continue
        if f"\nlink_id:\t{link_id}\n" in text:
            found.append(int(name))
    return found


def close_fds_of_link(link_id: int) -> None:
    for fd in fds_of_link(link_id):
        os.close(fd)


def wait_link_gone(link_id: int, timeout: float = 5.0) -> None:
    """The kernel frees a link whose last reference was a bpffs pin from a workqueue."""
    deadline = time.monotonic() + timeout
    while link_id in set(pylibbpf.link_ids()):
        assert time.monotonic() < deadline, f"link {link_id} still exists after {timeout} s"
        time.sleep(0.01)


@pytest.mark.needs("raw_tp")
def test_destroying_a_disconnected_pinned_link_leaves_no_fd(load_trace: Load,
                                                            pins: Path) -> None:
    obj = load_trace("raw_enter")
    link = obj.programs["raw_enter"].attach()
    link_id = link.info().id
    link.pin(pins / "pinned")
    link.disconnect()
    link.destroy()
    try:
        assert fds_of_link(link_id) == [], "the pin holds the link: our fd must be closed"
    finally:
        close_fds_of_link(link_id)
    getpid_loop(N)
    assert raw_count(obj.maps["counts"]) == N


@pytest.mark.needs("raw_tp")
def test_a_pin_alone_keeps_the_attachment(load_trace: Load, pins: Path) -> None:
    obj = load_trace("raw_enter")
    # destroy() without disconnect() closes our fd, but the pin is a reference of its own
    link = obj.programs["raw_enter"].attach()
    link_id = link.info().id
    link.pin(pins / "pinned")
    link.destroy()
    getpid_loop(N)
    assert raw_count(obj.maps["counts"]) == N
    os.unlink(pins / "pinned")  # the last reference: the kernel detaches it
    wait_link_gone(link_id)
    # the id goes first and the detach follows in deferred work (seen lagging under TCG):
    # wait, generously, for a round of calls that the program no longer counts
    counts = obj.maps["counts"]
    deadline = time.monotonic() + 60
    before = raw_count(counts)
    getpid_loop(N)
    while raw_count(counts) != before and time.monotonic() < deadline:
        before = raw_count(counts)
        getpid_loop(N)
    assert raw_count(counts) == before, "still attached after its last reference went"
    assert before >= N


@pytest.mark.needs("raw_tp")
def test_pin_path_survives_unpin(load_trace: Load, pins: Path) -> None:
    obj = load_trace("raw_enter")
    with obj.programs["raw_enter"].attach() as link:
        link.pin(pins / "raw")
        assert os.path.exists(pins / "raw")
        link.unpin()
        assert link.pin_path is None
        assert not os.path.exists(pins / "raw")


@pytest.mark.needs("raw_tp")
def test_pin_outside_bpffs_fails(load_trace: Load, tmp_path: Path) -> None:
    obj = load_trace("raw_enter")
    with obj.programs["raw_enter"].attach() as link:
        with pytest.raises(pylibbpf.BpfError) as info:
            link.pin(tmp_path / "link")
        assert info.value.errno == errno.EINVAL
        assert str(tmp_path / "link") in str(info.value)


def test_open_missing_pin_is_enoent(pins: Path) -> None:
    with pytest.raises(pylibbpf.BpfError) as info:
        pylibbpf.Link.open(pins / "absent")
    assert info.value.errno == errno.ENOENT
    assert str(pins / "absent") in str(info.value)


@pytest.mark.needs("iter_task")
def test_open_a_pinned_iterator_link_on_the_class_then_read_it(load_trace: Load,
                                                               pins: Path) -> None:
    obj = load_trace("dump_task")
    with obj.programs["dump_task"].attach() as link:
        link.pin(pins / "iter")
        with pylibbpf.Link.open(pins / "iter") as again:  # the class call: no warning
            assert again.pin_path == str(pins / "iter")
            assert again.info().id == link.info().id
            with again.open_iter() as stream:
                rows = stream.read().decode()
            again.unpin()
    assert f"\n{os.getpid()} " in "\n" + rows


def test_open_a_pinned_map_as_a_link_fails(load_trace: Load, pins: Path) -> None:
    obj = load_trace()  # no program: the map is all it needs
    obj.maps["counts"].pin(pins / "map")
    link = None
    try:
        with pytest.raises(pylibbpf.BpfError) as info:
            link = pylibbpf.Link.open(pins / "map")
        assert info.value.errno == errno.EINVAL
        assert "not a BPF link" in str(info.value)
    finally:
        if link is not None:
            link.destroy()


# ----------------------------------------------------------------------------- update_program

@pytest.mark.needs("cgroup")
def test_update_program_on_cgroup_link() -> None:
    rx, tx, port = udp_pair()
    net = open_object("attach_net.bpf.c", programs=("cg_egress", "cg_egress2"), port=port)
    try:
        with fresh_cgroup() as cgroup:
            with net.programs["cg_egress"].attach_cgroup(cgroup) as link:
                send_from_cgroup(cgroup, port, 3)
                link.update_program(net.programs["cg_egress2"])
                assert link.info().prog_id == net.programs["cg_egress2"].info().id
                send_from_cgroup(cgroup, port, 7)
        assert (count(net.maps["counts"], K_CG), count(net.maps["counts"], K_CG2)) == (3, 7)
    finally:
        net.close()
        rx.close()
        tx.close()


@pytest.mark.needs("xdp")
def test_update_program_on_xdp_link() -> None:
    with private_netns():
        rx, tx, port = udp_pair()
        net = open_object("attach_net.bpf.c", programs=("xdp_count", "xdp_count2"), port=port)
        try:
            with net.programs["xdp_count"].attach_xdp("lo") as link:
                send_and_receive(rx, tx, port, 6)
                link.update_program(net.programs["xdp_count2"])
                send_and_receive(rx, tx, port, 2)
            counts = net.maps["counts"]
            assert (count(counts, K_XDP), count(counts, K_XDP2)) == (6, 2)
        finally:
            net.close()
            rx.close()
            tx.close()


@pytest.mark.needs("raw_tp")
def test_update_program_refuses_what_is_not_a_program(load_trace: Load) -> None:
    obj = load_trace("raw_enter")
    with obj.programs["raw_enter"].attach() as link:
        for wrong in (obj.maps["counts"], obj.programs["raw_enter"].fd, "raw_enter"):
            with pytest.raises(TypeError, match="must be a pylibbpf.Program"):
                link.update_program(wrong)  # type: ignore[arg-type]
        getpid_loop(N)
    assert raw_count(obj.maps["counts"]) == N  # still attached until destroyed


@pytest.mark.needs("xdp", "tc")
def test_update_program_of_another_type_is_einval() -> None:
    with private_netns():
        rx, tx, port = udp_pair()
        net = open_object("attach_net.bpf.c", programs=("xdp_count", "tc_count"), port=port)
        try:
            with net.programs["xdp_count"].attach_xdp("lo") as link:
                with pytest.raises(pylibbpf.BpfError) as info:
                    link.update_program(net.programs["tc_count"])
                assert info.value.errno == errno.EINVAL
                assert "tc_count" in str(info.value)
        finally:
            net.close()
            rx.close()
            tx.close()


# ----------------------------------------------------------------------------- info, lifetime

def _bpftool_link(link_id: int) -> dict[str, object]:
    """What bpftool shows for one link, taken from its list of every link.

    Not ``bpftool link show id N``: bpftool 7.5 (Debian 13) prints that link and then exits
    with 255 because its single-link path returns ``errno == ENOENT ? 0 : -1`` on whatever
    errno was left over (for a cgroup link, not ENOENT).  Listing all links ends on the
    ENOENT of the last ``BPF_LINK_GET_NEXT_ID`` and exits 0 on every bpftool; the entry is
    the same JSON object.
    """
    out = subprocess.run(["bpftool", "-j", "link", "show"],
                         capture_output=True, text=True, check=True).stdout
    links: list[dict[str, object]] = json.loads(out)
    (shown,) = [link for link in links if link.get("id") == link_id]
    return shown


@pytest.mark.parametrize("prog,kind,extra", [
    pytest.param("raw_enter", "raw_tracepoint", {"tp_name": "sys_enter"},
                 marks=pytest.mark.needs("raw_tp")),
    pytest.param("dump_task", "iter", {"target_name": "task"},
                 marks=pytest.mark.needs("iter_task")),
])
def test_info_matches_bpftool(load_trace: Load, prog: str, kind: str,
                              extra: dict[str, str]) -> None:
    obj = load_trace(prog)
    with obj.programs[prog].attach() as link:
        info = link.info()
        shown = _bpftool_link(info.id)
    assert shown["id"] == info.id
    assert shown["prog_id"] == info.prog_id == obj.programs[prog].info().id
    assert shown["type"] == kind
    for key, value in extra.items():
        assert shown[key] == info.details[key] == value


@pytest.mark.needs("cgroup")
def test_info_matches_bpftool_cgroup() -> None:
    net = open_object("attach_net.bpf.c", programs=("cg_egress",), port=1)
    try:
        with fresh_cgroup() as cgroup, net.programs["cg_egress"].attach_cgroup(cgroup) as link:
            info = link.info()
            shown = _bpftool_link(info.id)
            assert (shown["type"], shown["prog_id"]) == ("cgroup", info.prog_id)
            assert shown["cgroup_id"] == info.details["cgroup_id"] == os.stat(cgroup).st_ino
            assert shown["attach_type"] == "cgroup_inet_egress"
    finally:
        net.close()


@pytest.mark.needs("raw_tp")
def test_info_lists_the_link_system_wide(load_trace: Load) -> None:
    obj = load_trace("raw_enter")
    with obj.programs["raw_enter"].attach() as link:
        link_id = link.info().id
        assert link_id in set(pylibbpf.link_ids())
        assert any(i.id == link_id and i.details.get("tp_name") == "sys_enter"
                   for i in pylibbpf.loaded_links())


@pytest.mark.needs("tracepoint")
def test_link_outlives_its_object() -> None:
    o = open_object("attach_trace.bpf.c", programs=("tp_getpid",), target_pid=os.getpid())
    counts = pylibbpf.Map.from_id(o.maps["counts"].info().id)
    try:
        link = o.programs["tp_getpid"].attach()
        o.close()
        getpid_loop(N)
        assert count(counts, K_TP) == N
        if perf_links():
            assert link.info().type == LinkType.PERF_EVENT
        link.destroy()
        getpid_loop(N)
        assert count(counts, K_TP) == N
    finally:
        counts.close()


def test_attach_before_load_is_a_state_error() -> None:
    from tests.support.bpfbuild import compile_bpf

    o = pylibbpf.Object.open_file(compile_bpf("attach_trace.bpf.c"))
    try:
        with pytest.raises(pylibbpf.StateError) as info:
            o.programs["raw_enter"].attach()
        assert "load()" in str(info.value)
    finally:
        o.close()
