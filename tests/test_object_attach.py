"""``Object.attach()``/``detach()``/``links``: what a libbpf skeleton's attach does.

``tests/bpf/auto_attach.bpf.c`` holds programs a skeleton attaches (tracepoints named by their
section) and programs it skips: autoattach off, autoload off, sections that name no target
(bare ``uprobe``, ``usdt``), a section type with no auto-attach (``xdp``); and one whose
target does not exist, loaded only where its failure is the point.
"""

from __future__ import annotations

import errno
import gc
import os
from collections.abc import Iterator

import pytest

import pylibbpf
from tests.support import features
from tests.support.attach import count, getpid_loop, multiarch_include, object_path

pytestmark = pytest.mark.needs("tracepoint", "uprobe", "xdp")

K_GETPID, K_GETPPID, K_OFF, K_UNLOADED = range(4)
ATTACHED = {"on_getpid", "on_getppid"}


def open_auto(*, bad: bool = False) -> pylibbpf.Object:
    """``auto_attach.bpf.c`` opened with ``not_auto``'s autoattach and ``not_loaded``'s
    autoload off (``bad_target`` loaded only with ``bad``), ``target_pid`` ours."""
    obj = pylibbpf.Object.open_file(object_path("auto_attach.bpf.c",
                                                tuple(multiarch_include())))
    try:
        obj.programs["not_auto"].set_autoattach(False)
        obj.programs["not_loaded"].set_autoload(False)
        obj.programs["bad_target"].set_autoload(bad)
        obj.rodata["target_pid"] = os.getpid()
    except BaseException:
        obj.close()
        raise
    return obj


@pytest.fixture
def auto() -> Iterator[pylibbpf.Object]:
    with open_auto() as obj:
        obj.load()
        yield obj


def test_attach_attaches_what_names_its_target_and_skips_the_rest(
        auto: pylibbpf.Object) -> None:
    assert auto.links == {}
    assert auto.attach() is auto
    assert set(auto.links) == ATTACHED
    counts = auto.maps["counts"]
    getpid_loop(7)
    os.getppid()
    assert count(counts, K_GETPID) == 7
    assert count(counts, K_GETPPID) == 1
    assert count(counts, K_OFF) == 0  # loaded, autoattach off
    assert count(counts, K_UNLOADED) == 0
    if features.missing("perf_link") is None:
        # before Linux 5.15 a tracepoint's link is its perf event fd, which has no link info
        for name, link in auto.links.items():
            assert link.info().prog_id == auto.programs[name].info().id
    # a bare section, attached by hand, still says why it cannot attach by itself
    with pytest.raises(pylibbpf.BpfError) as info:
        auto.programs["bare_uprobe"].attach()
    assert info.value.errno == errno.EOPNOTSUPP


def test_attach_again_attaches_only_what_is_new(auto: pylibbpf.Object) -> None:
    auto.attach()
    first = dict(auto.links)
    auto.attach()
    assert dict(auto.links) == first  # the same Link objects: nothing attached twice
    getpid_loop(3)
    assert count(auto.maps["counts"], K_GETPID) == 3


def test_detach_destroys_the_links(auto: pylibbpf.Object) -> None:
    auto.attach()
    links = list(auto.links.values())
    auto.detach()
    assert auto.links == {}
    assert all(link.closed for link in links)
    getpid_loop(5)
    assert count(auto.maps["counts"], K_GETPID) == 0
    auto.attach()  # and again after a detach
    getpid_loop(2)
    assert count(auto.maps["counts"], K_GETPID) == 2


def test_close_destroys_the_links() -> None:
    obj = open_auto()
    obj.load()
    obj.attach()
    links = list(obj.links.values())
    obj.close()
    assert len(links) == len(ATTACHED) and all(link.closed for link in links)
    with pytest.raises(pylibbpf.ClosedError):
        obj.links  # noqa: B018 - the property is what is tested


def test_an_object_collected_unclosed_destroys_its_links_first() -> None:
    obj = open_auto()
    obj.load()
    obj.attach()
    link = obj.links["on_getpid"]
    with pytest.warns(ResourceWarning, match="BPF object 'auto_attach' was not closed"):
        del obj
        gc.collect()
    assert link.closed


def test_a_failed_attach_names_the_program_and_undoes_the_call() -> None:
    with open_auto(bad=True) as obj:
        obj.load()
        with pytest.raises(pylibbpf.BpfError) as info:
            obj.attach()
        err = info.value
        assert err.errno == errno.ENOENT
        message = str(err)
        assert "failed to attach program 'bad_target'" in message
        assert "tp/pylibbpf_no_such_category/pylibbpf_no_such_event" in message
        assert obj.links == {}  # on_getpid and on_getppid, attached before it, are detached
        before = count(obj.maps["counts"], K_GETPID)  # logging libbpf's warnings calls getpid
        getpid_loop(4)
        assert count(obj.maps["counts"], K_GETPID) == before
        # the failing program out of the way, the rest attaches
        obj.programs["bad_target"].set_autoattach(False)
        obj.attach()
        assert set(obj.links) == ATTACHED


def test_attach_before_load_is_a_state_error() -> None:
    with open_auto() as obj:
        with pytest.raises(pylibbpf.StateError):
            obj.attach()
        obj.detach()  # nothing to destroy: not an error
