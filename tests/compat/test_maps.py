"""Legacy user-side map calls (the shape of latte-c's bpf_test.c) on ARRAY and HASH maps,
with the legacy semantics of spec §5 and the Linux/legacy errno switch."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

import pytest

import compat

pytestmark = pytest.mark.kernel


@pytest.fixture
def fds() -> Iterator[list[int]]:
    opened: list[int] = []
    yield opened
    for fd in opened:
        os.close(fd)


def test_create_rules(fds: list[int]) -> None:
    for args, err in (((3, 4, 8, 4), errno.EINVAL),      # PROG_ARRAY: not a legacy type
                      ((5, 4, 8, 4), errno.EINVAL),      # PERCPU_HASH
                      ((2, 8, 8, 4), errno.EINVAL),      # ARRAY key must be 4 bytes
                      ((1, 0, 8, 4), errno.EINVAL)):     # zero key size (Linux refuses too)
        with pytest.raises(compat.LegacyError) as exc:
            compat.bpf_create_map(*args)
        assert exc.value.errno == err
    fds.append(compat.bpf_create_map(compat.BPF_MAP_TYPE_HASH, 8, 16, 4))
    assert fds[-1] > 0


def test_array_semantics(fds: list[int]) -> None:
    fd = compat.bpf_create_map(compat.BPF_MAP_TYPE_ARRAY, 4, 8, 4)
    fds.append(fd)
    assert compat.bpf_lookup_elem(fd, 2) == bytes(8)          # arrays are pre-filled
    compat.bpf_update_elem(fd, 2, 42)
    assert int.from_bytes(compat.bpf_lookup_elem(fd, 2), "little") == 42
    # legacy ARRAY updates ignore flags (Linux would say EEXIST for NOEXIST)
    compat.bpf_update_elem(fd, 2, 43, compat.BPF_NOEXIST)
    assert int.from_bytes(compat.bpf_lookup_elem(fd, 2), "little") == 43
    with pytest.raises(compat.LegacyError) as exc:
        compat.bpf_delete_elem(fd, 2)
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(compat.LegacyError) as exc:
        compat.bpf_update_elem(fd, 4, 1)
    assert exc.value.errno == errno.E2BIG                      # Linux's errno by default
    with pytest.raises(compat.LegacyError) as exc:
        compat.bpf_update_elem(fd, 4, 1, strict_legacy_errors=True)
    assert exc.value.errno == errno.ENOENT                     # the legacy kernel's
    with pytest.raises(compat.MissingKeyError) as miss:
        compat.bpf_lookup_elem(fd, 9)
    assert miss.value.errno == errno.ENOENT and isinstance(miss.value, KeyError)
    keys = []
    key = None
    while (key := compat.bpf_get_next_key(fd, key)) is not None:
        keys.append(int.from_bytes(key, "little"))
    assert keys == [0, 1, 2, 3]
    assert compat.bpf_get_next_key(fd, 77) == (0).to_bytes(4, "little")  # missing -> first


def test_hash_semantics(fds: list[int]) -> None:
    fd = compat.bpf_create_map(compat.BPF_MAP_TYPE_HASH, 4, 8, 2)
    fds.append(fd)
    with pytest.raises(compat.MissingKeyError):
        compat.bpf_lookup_elem(fd, 1)
    compat.bpf_update_elem(fd, 1, 10, compat.BPF_NOEXIST)
    with pytest.raises(compat.LegacyError) as exc:
        compat.bpf_update_elem(fd, 1, 11, compat.BPF_NOEXIST)
    assert exc.value.errno == errno.EEXIST
    with pytest.raises(compat.LegacyError) as exc:
        compat.bpf_update_elem(fd, 5, 11, compat.BPF_EXIST)
    assert exc.value.errno == errno.ENOENT
    with pytest.raises(compat.LegacyError) as exc:
        compat.bpf_update_elem(fd, 1, 11, 4)                     # flags must be 0, 1 or 2
    assert exc.value.errno == errno.EINVAL
    compat.bpf_update_elem(fd, 2, 20)
    with pytest.raises(compat.LegacyError) as exc:
        compat.bpf_update_elem(fd, 3, 30)
    assert exc.value.errno == errno.E2BIG
    with pytest.raises(compat.LegacyError) as exc:
        compat.bpf_update_elem(fd, 3, 30, strict_legacy_errors=True)
    assert exc.value.errno == errno.ENOMEM
    first = compat.bpf_get_next_key(fd)
    assert first is not None
    second = compat.bpf_get_next_key(fd, first)
    assert {first, second} == {(1).to_bytes(4, "little"), (2).to_bytes(4, "little")}
    assert compat.bpf_get_next_key(fd, second) is None
    assert compat.bpf_get_next_key(fd, 99) == first              # missing key -> first key
    compat.bpf_delete_elem(fd, 1)
    with pytest.raises(compat.MissingKeyError):
        compat.bpf_delete_elem(fd, 1)
    with pytest.raises(ValueError):
        compat.bpf_update_elem(fd, b"\0" * 3, 1)
    with pytest.raises(TypeError):
        compat.bpf_lookup_elem(fd, "1")  # type: ignore[arg-type]


def test_not_a_map() -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(compat.LegacyError) as exc:
            compat.bpf_lookup_elem(r, 0)
        assert exc.value.errno in (errno.EINVAL, errno.EBADF)
    finally:
        os.close(r)
        os.close(w)
