"""Opening an object again skips the Python validation of bytes that passed it before.

The verdict is remembered for the exact bytes (with the validator's and libbpf's versions): the
same bytes are parsed once, changed bytes are validated afresh (a crafted change is still
refused), a refusal is never remembered and the cache keeps a bounded number of verdicts.  What
the cache saves must not change what an open gives: the object still loads and its program
still counts in the kernel, libbpf's messages still reach ``logging`` when someone listens, and
the wrappers made on first use behave as the eager ones did.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pylibbpf import ClosedError, MalformedObjectError, NotSupportedError, Object, _verdicts
from pylibbpf.elf import BtfKind, ObjectFile
from pylibbpf.elf import validate as validate_module
from tests.elf.test_elf_validate import _patched
from tests.support.attach import getpid_loop
from tests.support.bpfbuild import compile_bpf


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """An empty verdict cache, and the length of every object the validator parsed."""
    seen: list[int] = []
    real = validate_module.validate_object

    def counting(data: bytes, name: str = "") -> ObjectFile:
        seen.append(len(data))
        return real(data, name)

    monkeypatch.setattr(validate_module, "validate_object", counting)
    _verdicts.clear()
    yield seen
    _verdicts.clear()


def _cycle(data: bytes) -> bytes:
    """``data`` with its first typedef pointing at itself: libbpf's parser would loop."""
    obj = ObjectFile.from_bytes(data)
    assert obj.btf is not None
    typedef = next(t for t in obj.btf.types if t.kind == BtfKind.TYPEDEF)
    return _patched(data, typedef.id, 2, typedef.id)


def test_the_same_bytes_are_validated_once(minimal_o: Path, validations: list[int]) -> None:
    data = minimal_o.read_bytes()
    for _ in range(3):
        with Object.open_file(minimal_o) as obj:
            assert list(obj.programs) == ["on_getpid"]
    with Object.open_mem(data) as obj:  # the same bytes from memory: the same verdict
        assert "hits" in obj.maps
    assert validations == [len(data)]
    assert _verdicts.size() == 1


def test_changed_bytes_are_validated_again_and_a_crafted_change_refused(
        counters_o: Path, tmp_path: Path, validations: list[int]) -> None:
    data = counters_o.read_bytes()
    path = tmp_path / "obj.bpf.o"
    path.write_bytes(data)
    Object.open_file(path).close()
    assert len(validations) == 1
    path.write_bytes(_cycle(data))  # the same file, modified in place
    for _ in range(2):  # a refusal is not remembered: checked, and refused, each time
        with pytest.raises(MalformedObjectError, match="cyclic") as info:
            Object.open_file(path)
        assert info.value.errno == errno.ENOEXEC
    with pytest.raises(MalformedObjectError, match="cyclic"):
        Object.open_mem(_cycle(data))
    assert len(validations) == 4
    assert _verdicts.size() == 1
    appended = data + b"\0"  # one more byte, harmless: still a new key, so validated
    Object.open_mem(appended).close()
    assert len(validations) == 5
    assert _verdicts.size() == 2


def test_a_new_validator_or_libbpf_does_not_trust_old_verdicts(
        minimal_o: Path, validations: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    from pylibbpf import _ffi

    Object.open_file(minimal_o).close()
    monkeypatch.setattr(validate_module, "VALIDATOR_VERSION",
                        validate_module.VALIDATOR_VERSION + 1)
    Object.open_file(minimal_o).close()
    real = _ffi.version()
    monkeypatch.setattr(_ffi, "version", lambda: (real[0], real[1] + 1))
    Object.open_file(minimal_o).close()
    assert len(validations) == 3


def test_the_cache_is_bounded(minimal_o: Path, validations: list[int]) -> None:
    data = minimal_o.read_bytes()
    # bytes after the last section change the key, not the object
    blobs = [data + b"\0" * i for i in range(_verdicts.MAX_ENTRIES + 3)]
    for blob in blobs:
        Object.open_mem(blob).close()
    assert _verdicts.size() == _verdicts.MAX_ENTRIES
    assert len(validations) == len(blobs)
    Object.open_mem(blobs[-1]).close()  # the newest is remembered
    assert len(validations) == len(blobs)
    Object.open_mem(blobs[0]).close()  # the oldest was dropped: validated again
    assert len(validations) == len(blobs) + 1
    assert _verdicts.size() == _verdicts.MAX_ENTRIES


def test_validate_false_neither_consults_nor_fills_the_cache(minimal_o: Path,
                                                            validations: list[int]) -> None:
    with Object.open_file(minimal_o, validate=False) as obj:
        assert list(obj.programs) == ["on_getpid"]
    Object.open_mem(minimal_o.read_bytes(), validate=False).close()
    assert validations == [] and _verdicts.size() == 0


def test_the_struct_ops_link_check_uses_the_verdict(monkeypatch: pytest.MonkeyPatch,
                                                   validations: list[int]) -> None:
    """libbpf < 1.2 cannot load ``.struct_ops.link``: the verdict of the open says whether the
    object has one, without a second parse; unvalidated objects are still parsed for it."""
    from pylibbpf import _ffi
    from pylibbpf.elf import reader

    path = compile_bpf("struct_ops.bpf.c", cflags=("-DLINK",))
    monkeypatch.setattr(_ffi, "version", lambda: (1, 1))
    with Object.open_file(path) as obj:
        def no_parse(*args: Any, **kwargs: Any) -> None:
            raise AssertionError("the ELF was parsed again")

        with monkeypatch.context() as patch:
            patch.setattr(reader, "read_elf", no_parse)
            with pytest.raises(NotSupportedError, match=r"struct_ops\.link.*need libbpf >= 1\.2"):
                obj.load()
    with Object.open_file(path, validate=False) as obj, \
            pytest.raises(NotSupportedError, match=r"struct_ops\.link"):
        obj.load()
    assert len(validations) == 1


def test_wrappers_are_made_on_first_use(minimal_o: Path) -> None:
    obj = Object.open_file(minimal_o)
    assert obj._program_wrappers is None and obj._map_wrappers is None
    hits = obj.maps["hits"]
    assert obj.maps["hits"] is hits and obj.find_map_by_name("hits") is hits
    assert obj.programs["on_getpid"] is obj.find_program_by_name("on_getpid")
    assert obj.path == minimal_o
    obj.close()
    fresh = Object.open_file(minimal_o)
    fresh.close()
    with pytest.raises(ClosedError):
        fresh.programs  # noqa: B018 - never built: the closed object is not walked
    with pytest.raises(ClosedError):
        fresh.find_map_by_name("hits")
    assert repr(fresh) == "<Object closed>"


@pytest.mark.kernel
def test_an_object_opened_from_a_remembered_verdict_runs(minimal_o: Path,
                                                        validations: list[int]) -> None:
    Object.open_file(minimal_o).close()
    with Object.open_file(minimal_o) as obj:  # from the cache
        obj.load()
        assert len(validations) == 1
        link = obj.programs["on_getpid"].attach()
        try:
            getpid_loop(25)
        finally:
            link.destroy()
        assert int.from_bytes(obj.maps["hits"][0], "little") >= 25


@pytest.mark.kernel
def test_libbpf_messages_reach_logging_only_when_someone_listens(
        minimal_o: Path, caplog: pytest.LogCaptureFixture, validations: list[int]) -> None:
    Object.open_file(minimal_o).close()  # the next opens use the verdict
    caplog.set_level(logging.WARNING, logger="pylibbpf.libbpf")
    with Object.open_file(minimal_o) as obj:
        obj.load()
    assert not [r for r in caplog.records if r.name == "pylibbpf.libbpf"]
    caplog.set_level(logging.DEBUG, logger="pylibbpf.libbpf")
    with Object.open_file(minimal_o) as obj:
        obj.load()
    debug = [r for r in caplog.records
             if r.name == "pylibbpf.libbpf" and r.levelno == logging.DEBUG]
    assert any("minimal" in r.getMessage() or "on_getpid" in r.getMessage() for r in debug)


def _same_size_same_end(data: bytes) -> bytes:
    """``data`` with one byte of its ELF header's padding (``EI_PAD``, read by no one)
    changed: the same size and the same last bytes, other content."""
    changed = bytearray(data)
    changed[9] ^= 0xFF  # e_ident padding (EI_PAD): ignored by every reader
    return bytes(changed)


def test_objects_of_one_size_and_ending_do_not_share_a_verdict(
        minimal_o: Path, validations: list[int]) -> None:
    data = minimal_o.read_bytes()
    twin = _same_size_same_end(data)
    assert len(twin) == len(data) and twin[-64:] == data[-64:] and twin != data
    Object.open_mem(data).close()
    Object.open_mem(twin).close()  # same key, other bytes: validated, not trusted
    Object.open_mem(twin).close()  # now remembered
    Object.open_mem(data).close()  # the twin took its place: validated again
    assert validations == [len(data)] * 3


def test_a_malformed_twin_is_refused_after_its_sibling_passed(
        counters_o: Path, validations: list[int]) -> None:
    data = counters_o.read_bytes()
    bad = _cycle(data)
    assert len(bad) == len(data) and bad[-32:] == data[-32:]
    Object.open_mem(data).close()
    with pytest.raises(MalformedObjectError, match="cyclic"):
        Object.open_mem(bad)
    assert len(validations) == 2


def test_large_objects_are_remembered_by_digest(minimal_o: Path, validations: list[int],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    data = minimal_o.read_bytes()
    monkeypatch.setattr(_verdicts, "KEEP_MAX", len(data) - 1)
    Object.open_mem(data).close()
    Object.open_mem(bytes(bytearray(data))).close()  # equal bytes, another object: a hit
    assert validations == [len(data)]
    stored = next(iter(_verdicts._verdicts.values()))[0]
    assert len(stored) == 32  # a SHA-256, not the object
    Object.open_mem(_same_size_same_end(data)).close()
    assert len(validations) == 2
