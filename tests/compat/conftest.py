"""Fixtures for the compat tests: legacy objects compiled as legacy code was, and a guard that
every test leaves no attachment, no legacy program and no fd behind."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.bpfbuild import compile_bpf
from tests.support.leftovers import open_fds, release_and_check
from tests.support.legacy_maps import Maps

HERE = Path(__file__).resolve().parent
BPF = HERE / "bpf"


def _header_digest() -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(BPF.glob("*.h")))).hexdigest()


@pytest.fixture(scope="session")
def legacy_object() -> Callable[..., bytes]:
    """``legacy_object("map.c", "-DX", opt="-O1")``: the bytes of a legacy object (no BTF,
    clang -target bpf, as the latte-c samples were built)."""

    def build(name: str, *cflags: str, opt: str = "-O2") -> bytes:
        # bpfbuild's cache key covers tests/bpf headers only: add ours to the flags
        flags = (*cflags, f"-DLEGACY_HEADER_DIGEST={_header_digest()[:12]}")
        return compile_bpf(BPF / name, cflags=flags, btf=False, opt=opt).read_bytes()

    return build


@pytest.fixture(scope="session")
def modern_object() -> Callable[[str], Path]:
    """A libbpf-style object from ``tests/compat/bpf`` (BTF, vmlinux.h)."""

    def build(name: str) -> Path:
        return compile_bpf(BPF / name, cflags=(f"-DLEGACY_HEADER_DIGEST="
                                               f"{_header_digest()[:12]}",))

    return build


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail a test that leaves attachments, legacy programs or fds behind (and clean up)."""
    before = open_fds()
    yield
    release_and_check(before)


@pytest.fixture
def maps() -> Iterator[Maps]:
    """Legacy maps for one test (see ``tests.support.legacy_maps.Maps``)."""
    made = Maps()
    yield made
    made.close()
