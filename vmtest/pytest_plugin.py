"""pytest plugin the runner loads (``-p vmtest.pytest_plugin``) on every tier.

It writes into the junit XML what the matrix table needs: each test's ``needs(...)`` features
and ``kernel`` marker as testcase properties, and the kernel release and libbpf version as
testsuite properties.  It changes no outcome.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Callable

import pytest


def libbpf_version() -> str:
    """``major.minor`` of the libbpf pylibbpf would load (``PYLIBBPF_LIBBPF`` or the system's)."""
    name = os.environ.get("PYLIBBPF_LIBBPF") or "libbpf.so.1"
    try:
        lib = ctypes.CDLL(name)
        return f"{lib.libbpf_major_version()}.{lib.libbpf_minor_version()}"
    except (OSError, AttributeError) as e:
        return f"unloadable ({e})"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Record ``needs`` features and the ``kernel`` marker on each test."""
    for item in items:
        features = [str(f) for mark in item.iter_markers("needs") for f in mark.args]
        if features:
            item.user_properties.append(("needs", ",".join(dict.fromkeys(features))))
        if item.get_closest_marker("kernel") is not None:
            item.user_properties.append(("kernel", "1"))


@pytest.fixture(scope="session", autouse=True)
def _vmtest_suite_properties(
    record_testsuite_property: Callable[[str, object], None],
) -> None:
    record_testsuite_property("kernel_release", platform.release())
    record_testsuite_property("libbpf", libbpf_version())
    record_testsuite_property("vm_guest", os.environ.get("PYLIBBPF_VM_GUEST", "0"))
