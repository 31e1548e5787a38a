"""pylibbpf.build: BPF C compiled with clang, cached by content and by the headers it read."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from pylibbpf.build import BuildError, build_object, cache_root, read_depfile
from pylibbpf.elf import ObjectFile

pytestmark = pytest.mark.skipif(shutil.which("clang") is None, reason="needs clang")

SOURCE = """\
#include "limits.h"

#define SEC(name) __attribute__((section(name), used))

const volatile int limit = LIMIT;

SEC("socket")
int keep(void *ctx)
{
\treturn limit;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture
def counting_clang(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clang that appends a line to ``calls`` per run, named by $PYLIBBPF_CLANG."""
    calls = tmp_path / "calls"
    wrapper = tmp_path / "clang-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho run >> "{calls}"\nexec {shutil.which("clang")} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PYLIBBPF_CLANG", str(wrapper))
    return calls


def _runs(calls: Path) -> int:
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def _project(tmp_path: Path, limit: int) -> tuple[Path, Path]:
    src, inc = tmp_path / "src", tmp_path / "include"
    src.mkdir(exist_ok=True)
    inc.mkdir(exist_ok=True)
    (src / "keep.bpf.c").write_text(SOURCE)
    (inc / "limits.h").write_text(f"#define LIMIT {limit}\n")
    return src / "keep.bpf.c", inc


def _limit(obj: Path) -> int:
    rodata = ObjectFile.from_path(obj).section_by_name(".rodata")
    assert rodata is not None
    return int.from_bytes(rodata.data[:4], "little")


def test_compiled_once_and_again_when_an_included_header_changes(
        tmp_path: Path, counting_clang: Path) -> None:
    source, include = _project(tmp_path, 7)
    cache = tmp_path / "cache"
    first = build_object(source, [include], cache=cache)
    assert first.parent == cache and first.name.startswith("keep-")
    assert _limit(first) == 7 and _runs(counting_clang) == 1
    assert build_object(source, [include], cache=cache) == first
    assert _runs(counting_clang) == 1  # fresh: clang not run
    (include / "limits.h").write_text("#define LIMIT 9\n")
    again = build_object(source, [include], cache=cache)
    assert again == first and _limit(again) == 9 and _runs(counting_clang) == 2
    # other flags are another entry
    other = build_object(source, [include], ["-DUNUSED=1"], cache=cache)
    assert other != first and _runs(counting_clang) == 3


def test_clang_refusal_carries_its_diagnostics(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bpf.c"
    bad.write_text("int broken(void) { return undeclared_name; }\n")
    with pytest.raises(BuildError, match="undeclared_name") as info:
        build_object(bad, cache=tmp_path / "cache")
    assert "error" in info.value.diagnostics
    assert not list((tmp_path / "cache").glob("*.o"))


def test_missing_clang_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, include = _project(tmp_path, 1)
    monkeypatch.setenv("PYLIBBPF_CLANG", str(tmp_path / "no-such-clang"))
    with pytest.raises(FileNotFoundError, match="apt-get install clang"):
        build_object(source, [include], cache=tmp_path / "cache")


def test_unwritable_cache_still_builds(tmp_path: Path) -> None:
    source, include = _project(tmp_path, 4)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = build_object(source, [include], cache=blocker / "cache")
    try:
        assert _limit(out) == 4
    finally:
        out.unlink()


def test_default_cache_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "pylibbpf"
    source, include = _project(tmp_path, 5)
    assert build_object(source, [include]).parent == tmp_path / "xdg" / "pylibbpf" / "objects"


def test_depfile_with_escaped_spaces(tmp_path: Path) -> None:
    dep = tmp_path / "x.d"
    dep.write_text("x.o: /a/b.c /inc/with\\ space.h \\\n  /inc/other.h\n")
    assert read_depfile(dep, exclude=[Path("/a/b.c")]) == ["/inc/other.h", "/inc/with space.h"]
