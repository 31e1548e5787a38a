"""The ctypes layer: finding libbpf, the signature table, errcheck, and libbpf's print callback."""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pylibbpf
from pylibbpf import _ffi
from pylibbpf._ffi import loader, signatures
from pylibbpf._ffi.printcb import capture
from pylibbpf.errors import BpfError, LibbpfNotFoundError

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=ROOT, timeout=60)


def test_version_detected_from_the_library() -> None:
    major, minor = pylibbpf.libbpf_version()
    raw = _ffi.lib().libbpf_version_string().decode()  # "v1.1" style
    assert raw.lstrip("v").startswith(f"{major}.{minor}")
    assert (major, minor) >= (1, 1)


def test_missing_library_names_the_package() -> None:
    proc = run_python(
        "import pylibbpf\n"
        "try:\n"
        "    pylibbpf.libbpf_version()\n"
        "except pylibbpf.LibbpfNotFoundError as e:\n"
        "    print('ERR', e.errno, e)\n",
        PYLIBBPF_LIBBPF="/nonexistent/libbpf.so.1",
    )
    assert proc.returncode == 0, proc.stderr
    assert f"ERR {errno.ENOENT}" in proc.stdout
    assert "/nonexistent/libbpf.so.1" in proc.stdout
    assert "PYLIBBPF_LIBBPF" in proc.stdout


def test_default_search_error_says_which_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYLIBBPF_LIBBPF", raising=False)
    monkeypatch.setattr(loader, "_candidates", lambda: ["libbpf-does-not-exist.so.9"])
    monkeypatch.setattr(loader, "_lib", None)
    with pytest.raises(LibbpfNotFoundError, match="apt-get install libbpf1") as info:
        loader.load()
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOENT


def test_override_selects_the_given_library() -> None:
    real = os.path.realpath(_ffi.lib().path if os.path.isabs(_ffi.lib().path)
                            else "/usr/lib/x86_64-linux-gnu/libbpf.so.1")
    proc = run_python("import pylibbpf; from pylibbpf import _ffi; "
                      "print(_ffi.lib().path, pylibbpf.libbpf_version())",
                      PYLIBBPF_LIBBPF=real)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(real)


def test_every_required_symbol_is_bound() -> None:
    lib = _ffi.lib()
    for name, sig in signatures.SIGNATURES.items():
        if sig.since <= loader.MIN_VERSION:
            func = getattr(lib, name)
            assert func.argtypes is not None or not sig.argtypes, name


def test_a_misspelt_symbol_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    table = dict(signatures.SIGNATURES)
    table["bpf_object__lod"] = signatures.Sig(ctypes.c_int, ())
    monkeypatch.setattr(loader, "SIGNATURES", table)
    cdll = ctypes.CDLL(_ffi.lib().path, use_errno=True)
    with pytest.raises(LibbpfNotFoundError, match="bpf_object__lod"):
        loader.apply_signatures(cdll, _ffi.lib().path)


def test_optional_newer_symbols_are_skipped_not_fatal() -> None:
    lib = _ffi.lib()
    newer = [n for n, s in signatures.SIGNATURES.items() if s.since > loader.MIN_VERSION]
    assert newer
    for name in newer:
        if name in lib.missing:
            assert not _ffi.has(name)
            with pytest.raises(AttributeError, match="not exported"):
                getattr(lib, name)
        else:
            assert _ffi.has(name)


def test_opaque_pointer_types_are_not_interchangeable() -> None:
    from pylibbpf._ffi import types

    lib = _ffi.lib()
    with pytest.raises(ctypes.ArgumentError):
        lib.bpf_object__name(types.bpf_map_p())


def test_neg_errno_becomes_oserror_with_errno() -> None:
    with pytest.raises(BpfError) as info:
        _ffi.lib().bpf_obj_get(b"/nonexistent/pin")
    assert isinstance(info.value, OSError)
    assert info.value.errno == errno.ENOENT
    assert "bpf_obj_get" in str(info.value)


def test_null_errno_becomes_oserror_with_errno(tmp_path: Path) -> None:
    with pytest.raises(BpfError) as info:
        _ffi.lib().bpf_object__open_file(str(tmp_path / "missing.o").encode(), None)
    assert info.value.errno == errno.ENOENT


def test_libbpf_messages_go_to_logging(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad = tmp_path / "bad.o"
    bad.write_bytes(b"\x7fELF" + b"\0" * 60)
    caplog.set_level(logging.DEBUG, logger="pylibbpf.libbpf")
    with pytest.raises(BpfError):
        pylibbpf.Object.open_file(bad, validate=False)  # libbpf itself must see it
    messages = [r.getMessage() for r in caplog.records if r.name == "pylibbpf.libbpf"]
    assert any("bad.o" in m or "elf" in m.lower() for m in messages), messages
    assert all(not m.endswith("\n") for m in messages)


def test_long_messages_are_formatted_whole(caplog: pytest.LogCaptureFixture) -> None:
    """The print trampoline sizes its buffer exactly: a 200 KB message arrives intact."""
    from pylibbpf._ffi import printcb

    big = b"x" * 200_000
    # A format without conversions never reads its va_list, so any record will do here; the
    # verifier-log test proves real va_lists with a 1000-line log.
    va = (ctypes.c_char * 32)()
    text = printcb._format(big, ctypes.addressof(va))
    assert text == big.decode()


def test_capture_collects_warnings_per_thread(tmp_path: Path) -> None:
    bad = tmp_path / "junk.o"
    bad.write_bytes(b"not an elf at all")
    with capture() as sink:
        with pytest.raises(BpfError):
            pylibbpf.Object.open_file(bad, validate=False)  # libbpf itself must see it
    assert sink, "libbpf's warnings were not captured"


def test_every_public_name_resolves_and_is_listed() -> None:
    # __all__ against the export list itself: tests/test_imports.py
    assert set(pylibbpf.__all__) <= set(dir(pylibbpf))
    for name in pylibbpf.__all__:
        assert getattr(pylibbpf, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = pylibbpf.nope


def test_importing_the_elf_reader_does_not_load_ctypes() -> None:
    proc = run_python("import sys, pylibbpf.elf; "
                      "print('pylibbpf._ffi' in sys.modules, 'ctypes' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


def test_one_variable_class_without_ctypes() -> None:
    proc = run_python("import sys, pylibbpf, pylibbpf.elf; "
                      "print(pylibbpf.Variable is pylibbpf.elf.Variable, "
                      "'pylibbpf._ffi' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "False"]


def test_variable_btf_type_id_is_a_deprecated_type_id() -> None:
    var = pylibbpf.Variable("hits", 8, 8, 3)
    assert (var.type_name, var.linkage) == ("", "")
    with pytest.warns(DeprecationWarning, match="use Variable.type_id"):
        assert var.btf_type_id == 3
