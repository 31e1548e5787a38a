"""pytest plugin the runner loads (``-p vmtest.pytest_plugin``) on every tier.

It writes into the junit XML what the matrix table needs: each test's ``needs(...)`` features
and ``kernel`` marker as testcase properties, and the kernel release and libbpf version as
testsuite properties.  It changes no outcome.

``--vmtest-needs-any=F1,F2,...`` keeps only the tests whose ``needs`` name one of those features
(``libbpf`` stands for any ``libbpf>=X.Y``) and deselects the rest: the matrix's guest libbpf
tier runs only what no other tier can (see ``vmtest.schedule.GUEST_LIBBPF_FEATURES``).
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


NEEDS_ANY = "--vmtest-needs-any"


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--vmtest-needs-any``: see the module's docstring."""
    parser.addoption(NEEDS_ANY, default="", metavar="FEATURES",
                     help="run only tests whose needs(...) name one of these (comma-separated; "
                          "'libbpf' for any libbpf>=X.Y)")


def _needs(item: pytest.Item) -> list[str]:
    return [str(f) for mark in item.iter_markers("needs") for f in mark.args]


def needs_any(needs: list[str], wanted: set[str]) -> bool:
    """Whether ``needs`` names a feature of ``wanted`` (``libbpf``: any libbpf requirement)."""
    return any(f in wanted or ("libbpf" in wanted and f.startswith("libbpf>=")) for f in needs)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Record ``needs`` features and the ``kernel`` marker on each test; apply
    ``--vmtest-needs-any``."""
    wanted = {f.strip() for f in str(config.getoption(NEEDS_ANY)).split(",") if f.strip()}
    if wanted:
        kept: list[pytest.Item] = []
        dropped: list[pytest.Item] = []
        for item in items:
            (kept if needs_any(_needs(item), wanted) else dropped).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept
    for item in items:
        features = _needs(item)
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
