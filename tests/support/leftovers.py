"""The check both compat test folders run around each test: no legacy attachment, legacy
program or fd may outlive it.  Whatever compat still holds is released first, so one failing
test does not fail the next."""

from __future__ import annotations

import os

import compat
import pylibbpf.map  # noqa: F401 - its process-wide /dev/null fd opens on import: before counting


def open_fds() -> set[int]:
    """The fds open in this process."""
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def release_and_check(fds_before: set[int]) -> None:
    """Detach and release what compat still holds; fail if there was anything, or if fds
    beyond ``fds_before`` (:func:`open_fds` before the test) are still open."""
    left_attached = compat.attachments()
    left_programs = compat.loaded_programs()
    compat.detach_all()
    for fd in left_programs:
        compat.release_program(fd)
    assert not left_attached, f"test left attachments: {left_attached}"
    assert not left_programs, f"test left legacy programs: {left_programs}"
    leaked = open_fds() - fds_before
    assert not leaked, f"test leaked fds: {sorted(leaked)}"
