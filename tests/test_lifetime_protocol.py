"""The one "is it still open" mechanism (``pylibbpf._handle.Lifetime``) that an owner shares
with what borrows from it: checks, load state, and close callbacks (weak ones for links)."""

from __future__ import annotations

import errno
import gc

import pytest

from pylibbpf import ClosedError, StateError
from pylibbpf._handle import Handle, Lifetime


def test_check_raises_closed_error_naming_the_owner_once_closed() -> None:
    life = Lifetime("BPF object", "demo")
    life.check()
    life.close()
    with pytest.raises(ClosedError, match="BPF object is closed") as info:
        life.check()
    assert info.value.errno == errno.EBADF


def test_require_open_and_loaded_follow_the_load_state() -> None:
    life = Lifetime("BPF object", "demo")
    life.require_open("max_entries of map 'm'")
    with pytest.raises(StateError, match="call load\\(\\) on 'demo' first") as info:
        life.require_loaded("attaching program 'p'")
    assert info.value.errno == errno.EINVAL
    life.loaded = True
    life.require_loaded("attaching program 'p'")
    with pytest.raises(StateError, match="object 'demo' is already loaded") as busy:
        life.require_open("max_entries of map 'm'")
    assert busy.value.errno == errno.EBUSY
    life.close()
    with pytest.raises(ClosedError):  # closed wins over the load state
        life.require_loaded("attaching program 'p'")


def test_close_runs_callbacks_once_in_order_and_marks_closed_after() -> None:
    life = Lifetime("BPF object")
    seen: list[tuple[str, bool]] = []
    life.on_close(lambda: seen.append(("first", life.closed)))
    life.on_close(lambda: seen.append(("second", life.closed)))
    life.close()
    life.close()
    # borrowers still see their owner open while they let go of it
    assert seen == [("first", False), ("second", False)]
    assert life.closed


def test_a_failing_callback_still_leaves_the_owner_closed() -> None:
    life = Lifetime("BPF object")

    def boom() -> None:
        raise RuntimeError("boom")

    life.on_close(boom)
    with pytest.raises(RuntimeError):
        life.close()
    assert life.closed
    with pytest.raises(ClosedError):
        life.check()


class _Borrower:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def release(self) -> None:
        self.log.append("released")


def test_weak_callbacks_do_not_keep_the_borrower_alive() -> None:
    life = Lifetime("BPF object")
    log: list[str] = []
    kept, dropped = _Borrower(log), _Borrower(log)
    life.on_close(kept.release, weak=True)
    life.on_close(dropped.release, weak=True)
    del dropped
    gc.collect()
    life.close()
    assert log == ["released"]  # only the one still alive
    assert kept.log is log


def test_a_handle_keeps_its_open_state_in_its_lifetime() -> None:
    released: list[int] = []

    class Thing(Handle):
        _what = "thing"

    thing = Thing()
    thing._own(lambda: released.append(1), "a thing")
    assert not thing.closed
    thing.close()
    thing.close()
    assert thing.closed and released == [1]
    with pytest.raises(ClosedError, match="thing is closed"):
        thing._check()
