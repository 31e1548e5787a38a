"""The Object machinery made lighter must keep every guarantee.

A handle is released on close, on garbage collection (with a ``ResourceWarning``) or at
interpreter exit (newest first), always exactly once, through one weak reference and one entry
of a module-level registry instead of ``weakref.finalize``.  An object keeps its path as the
bytes it was opened with and decodes it when asked for.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pylibbpf import ClosedError, Object, _handle
from pylibbpf.elf.reader import read_object_file

ROOT = Path(__file__).resolve().parent.parent


class _Counted(_handle.Handle):
    """A handle whose release counts how often it ran."""

    _what = "counted handle"

    def __init__(self, released: list[str], name: str) -> None:
        super().__init__()
        self._own(lambda: released.append(name), f"counted handle {name!r}")

    def use(self) -> None:
        self._check()


def test_close_releases_once_and_leaves_no_entry() -> None:
    released: list[str] = []
    before = len(_handle._pending)
    handle = _Counted(released, "a")
    assert len(_handle._pending) == before + 1
    handle.close()
    handle.close()
    assert released == ["a"]
    assert len(_handle._pending) == before
    with pytest.raises(ClosedError):
        handle.use()
    del handle
    gc.collect()
    assert released == ["a"]  # the collection of a closed handle releases nothing again


def test_context_exit_releases() -> None:
    released: list[str] = []
    with _Counted(released, "b") as handle:
        handle.use()
    assert released == ["b"]
    assert handle.closed


def test_a_collected_handle_is_released_once_with_a_warning() -> None:
    released: list[str] = []
    before = len(_handle._pending)
    handle = _Counted(released, "c")
    with pytest.warns(ResourceWarning, match="counted handle 'c' was not closed"):
        del handle
        gc.collect()
    assert released == ["c"]
    assert len(_handle._pending) == before


def test_close_from_many_threads_releases_once() -> None:
    for _ in range(50):
        released: list[str] = []
        handle = _Counted(released, "d")
        barrier = threading.Barrier(4)

        def close(h: _Counted = handle, b: threading.Barrier = barrier) -> None:
            b.wait()
            h.close()

        threads = [threading.Thread(target=close) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert released == ["d"]


EXIT_SCRIPT = """
import sys
from pylibbpf import _handle

class H(_handle.Handle):
    _what = "h"
    def __init__(self, name):
        super().__init__()
        self._own(lambda: print("released", name, flush=True), f"handle {name}")

first, second, closed = H("first"), H("second"), H("closed")
closed.close()
print("exiting", flush=True)
"""


def test_what_is_open_at_exit_is_released_newest_first() -> None:
    out = subprocess.run([sys.executable, "-W", "always::ResourceWarning", "-c", EXIT_SCRIPT],
                         capture_output=True, text=True, cwd=ROOT, timeout=60, check=True)
    assert out.stdout.split("\n") == ["released closed", "exiting", "released second",
                                      "released first", ""], out.stdout
    assert "handle second was not closed" in out.stderr
    assert "handle first was not closed" in out.stderr


def test_lifetime_without_borrowers_closes() -> None:
    life = _handle.Lifetime("thing")
    life.close()
    assert life.closed
    with pytest.raises(ClosedError):
        life.check()


@pytest.mark.kernel
@pytest.mark.parametrize("kind", [str, Path])
def test_open_file_keeps_the_path_as_given(minimal_o: Path, kind: type) -> None:
    given = kind(minimal_o)
    with Object.open_file(given) as obj:
        assert obj.path == minimal_o
        assert obj.elf_bytes() == minimal_o.read_bytes()
        obj.load()
        assert obj.loaded
    with Object.open_file(given, validate=False) as obj:
        assert obj.path == minimal_o


def test_a_path_that_is_not_utf8_is_kept_as_bytes(tmp_path: Path, minimal_o: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/obj\xff.o"
    with open(raw, "wb") as f:
        f.write(minimal_o.read_bytes())
    with Object.open_file(os.fsdecode(raw)) as obj:
        assert obj.path is not None and os.fsencode(obj.path) == raw
        assert obj.name == "obj\udcff"


def test_a_file_opened_nonblocking_is_read_whole(minimal_o: Path) -> None:
    assert read_object_file(minimal_o) == minimal_o.read_bytes()
