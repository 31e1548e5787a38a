"""pylibbpf.tc on the real kernel, in a private network namespace, with ``tc`` as the witness:
the clsact qdisc ``Program.attach_tc`` creates goes with its last filter (a qdisc that was there
before stays), and ``TcHook`` follows ``bpf_tc_hook_create``/``bpf_tc_hook_destroy``."""

from __future__ import annotations

import errno
import gc
import os
import socket
import subprocess
from collections.abc import Iterator

import pytest

import pylibbpf
from pylibbpf import ProgType, TcAttachment, TcHook, lowlevel
from pylibbpf.elf import insn as I
from pylibbpf.elf.insn import Instruction
from tests.support.attach import open_object, private_netns

TC_ACT_OK = 0


def tc(*args: str, ns_fd: int | None = None) -> str:
    """``tc ARGS`` (in the namespace ``ns_fd`` when given, else this thread's) -> stdout."""
    cmd = ["tc", *args]
    if ns_fd is not None:
        cmd = ["nsenter", f"--net=/proc/self/fd/{ns_fd}", *cmd]
    run = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         pass_fds=() if ns_fd is None else (ns_fd,))
    return run.stdout


def has_clsact(ns_fd: int | None = None) -> bool:
    return "clsact" in tc("qdisc", "show", "dev", "lo", ns_fd=ns_fd)


def filters(point: str) -> str:
    return tc("filter", "show", "dev", "lo", point)


@pytest.fixture
def netns() -> Iterator[int]:
    with private_netns() as ns_fd:
        yield ns_fd


@pytest.fixture
def prog_fd() -> Iterator[int]:
    fd = lowlevel.prog_load(ProgType.SCHED_CLS, [
        Instruction(I.ALU64 | I.SRC_K | I.ALU_MOV, dst=0, imm=TC_ACT_OK),
        Instruction(I.JMP | I.JMP_EXIT),
    ], license="GPL", name="tc_ok")
    yield fd
    os.close(fd)


def attach_tc(prog_fd: int, point: str = "ingress", handle: int = 1,
              priority: int = 1) -> TcAttachment:
    """What ``Program.attach_tc`` does, on a program fd."""
    return TcAttachment.attach(prog_fd, socket.if_nametoindex("lo"), point, handle, priority,
                               "tc_ok")


# ----------------------------------------------------------------------------- attach_tc

@pytest.mark.needs("tc")
def test_attach_tc_removes_the_qdisc_it_created(netns: int, prog_fd: int) -> None:
    assert not has_clsact()
    first = attach_tc(prog_fd, "ingress")
    assert has_clsact() and "tc_ok" in filters("ingress")
    second = attach_tc(prog_fd, "egress", handle=2, priority=2)
    first.detach()
    assert has_clsact(), "the egress filter still uses it"
    assert "tc_ok" not in filters("ingress")
    second.detach()
    assert not has_clsact()
    # and again: a second round creates and removes it once more
    with attach_tc(prog_fd):
        assert has_clsact()
    assert not has_clsact()


@pytest.mark.needs("tc")
def test_program_attach_tc_removes_its_qdisc(netns: int, request: pytest.FixtureRequest) -> None:
    with open_object("attach_net.bpf.c", programs=("tc_count",), request=request,
                     port=9) as obj:
        prog = obj.programs["tc_count"]
        link = prog.attach_tc("lo", attach_point="egress")
        assert link.query() == prog.info().id
        assert has_clsact()
        link.detach()
        assert not has_clsact()


@pytest.mark.needs("tc")
def test_attach_tc_keeps_a_qdisc_that_was_there(netns: int, prog_fd: int) -> None:
    tc("qdisc", "add", "dev", "lo", "clsact")
    with attach_tc(prog_fd):
        assert "tc_ok" in filters("ingress")
    assert has_clsact()
    assert "tc_ok" not in filters("ingress")


@pytest.mark.needs("tc")
def test_attach_tc_keeps_its_qdisc_while_other_filters_remain(netns: int,
                                                              prog_fd: int) -> None:
    ours = attach_tc(prog_fd)
    theirs = TcHook("lo", "egress").attach(prog_fd, handle=7, priority=7)  # not attach_tc's
    try:
        ours.detach()
        assert has_clsact() and "tc_ok" in filters("egress")
    finally:
        theirs.detach()
    assert has_clsact()  # pylibbpf's last attach_tc filter is gone; the qdisc stays theirs


@pytest.mark.needs("tc")
def test_garbage_collected_attachment_removes_its_qdisc(netns: int, prog_fd: int) -> None:
    attachment = attach_tc(prog_fd)
    assert has_clsact()
    with pytest.warns(ResourceWarning, match="tc ingress filter"):
        del attachment
        gc.collect()
    assert not has_clsact()


@pytest.mark.needs("tc")
def test_detach_after_leaving_the_namespace(prog_fd: int) -> None:
    """Closed from another namespace, an attachment still detaches in its own."""
    with private_netns() as ns_fd:
        keep = os.dup(ns_fd)
        attachment = attach_tc(prog_fd)
    try:
        assert has_clsact(ns_fd=keep)
        assert attachment.query() == pylibbpf.ProgramInfo.from_fd(prog_fd).id
        attachment.detach()
        assert not has_clsact(ns_fd=keep)
    finally:
        os.close(keep)


# ----------------------------------------------------------------------------- TcHook

@pytest.mark.needs("tc")
def test_hook_create_attach_query_detach_destroy(netns: int, prog_fd: int) -> None:
    ingress = TcHook("lo", "ingress")
    assert ingress.create() is True and ingress.created
    assert ingress.create() is False  # EEXIST: there already
    prog_id = pylibbpf.ProgramInfo.from_fd(prog_fd).id
    one = ingress.attach(prog_fd, handle=1, priority=1)
    two = ingress.attach(prog_fd, handle=2, priority=2)
    assert (two.handle, two.priority) == (2, 2)
    assert ingress.query(handle=2, priority=2) == prog_id
    with pytest.raises(pylibbpf.BpfError) as exists:
        ingress.attach(prog_fd, handle=1, priority=1)
    assert exists.value.errno == errno.EEXIST
    ingress.attach(prog_fd, handle=1, priority=1, replace=True).detach()
    with pytest.raises(pylibbpf.BpfError):
        ingress.query(handle=1, priority=1)   # the replacement's detach removed it
    ingress.detach(handle=2, priority=2)
    with pytest.raises(pylibbpf.BpfError) as gone:
        ingress.query(handle=2, priority=2)
    assert gone.value.errno in (errno.ENOENT, errno.EINVAL)  # EINVAL: no chain at that priority
    one.close()
    two.close()  # its filter is gone already: closing is quiet
    assert has_clsact(), "a hook's qdisc stays until destroy()"
    # destroy() of an attach point removes its filters, not the qdisc
    three = ingress.attach(prog_fd, handle=3, priority=3)
    four = ingress.attach(prog_fd, handle=4, priority=4)
    ingress.destroy()
    assert "tc_ok" not in filters("ingress") and has_clsact()
    three.close()
    four.close()
    TcHook(socket.if_nametoindex("lo"), "qdisc").destroy()
    assert not has_clsact()


@pytest.mark.needs("tc")
def test_hook_destroy_takes_over_a_qdisc_attach_tc_created(netns: int, prog_fd: int) -> None:
    attachment = attach_tc(prog_fd)
    TcHook("lo", "qdisc").destroy()
    assert not has_clsact()
    TcHook("lo", "ingress").create()  # someone's new qdisc: attach_tc's detach must keep it
    attachment.detach()
    assert has_clsact()


def test_hook_arguments() -> None:
    with pytest.raises(ValueError, match="attach_point"):
        TcHook("lo", "sideways")
    with pytest.raises(pylibbpf.BpfError) as missing:
        TcHook("no-such-interface0")
    assert missing.value.errno == errno.ENODEV
    with pytest.raises(ValueError, match="'qdisc'"):
        TcHook("lo", "qdisc").attach(0)
    with pytest.raises(TypeError):
        TcHook("lo").attach(object())
