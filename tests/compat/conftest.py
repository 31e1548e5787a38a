"""Fixtures for the compat tests: legacy objects compiled as legacy code was, and a guard that
every test leaves no attachment, no legacy program and no fd behind."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from bpfbuild import compile_bpf
from legacy_maps import Maps

import compat

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


def open_fds() -> set[int]:
    """The fds open in this process."""
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail a test that leaves attachments or legacy programs behind (and clean them up)."""
    yield
    left_attached = compat.attachments()
    left_programs = compat.loaded_programs()
    compat.detach_all()
    for fd in left_programs:
        compat.release_program(fd)
    assert not left_attached, f"test left attachments: {left_attached}"
    assert not left_programs, f"test left legacy programs: {left_programs}"


@pytest.fixture
def maps() -> Iterator[Maps]:
    """Legacy maps for one test (see ``legacy_maps.Maps``)."""
    made = Maps()
    yield made
    made.close()
