"""Suite-wide rules.

* ``@pytest.mark.kernel`` tests need root and a BPF-capable kernel.  Outside CI they skip when
  that is missing; with ``CI=true`` a skipped kernel test is turned into a failure, so a broken
  environment can never pass as green.
* ``@pytest.mark.needs("kprobe", ...)`` names kernel features (see ``tests/support/features.py``):
  the test skips with the reason where the running kernel lacks one or its security policy
  refuses it (EPERM from a probe that does not use pylibbpf), and fails where the kernel's
  version and configuration say the feature must be there (cilium/ebpf's rule: a broken probe
  never hides).
  ``needs("libbpf>=1.5")`` does the same for the libbpf pylibbpf loads (the libbpf tiers).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pylibbpf import Object
from tests.support import features
from tests.support.attach import autoload_only, object_path, trace_loader
from tests.support.bpfbuild import EXAMPLES_CACHE, compile_bpf
from tests.support.ring_producer import loaded_producer

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# the examples the tests run build their BPF programs into the tests' cache, which the VM tiers
# fill on the host before a guest boots (vmtest.tiers.prebuild_bpf)
os.environ.setdefault("PYLIBBPF_EXAMPLES_CACHE", str(EXAMPLES_CACHE))


def _kernel_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if not os.path.exists("/sys/fs/bpf") or not os.path.ismount("/sys/fs/bpf"):
        features.ensure_mounts()
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("kernel") or item.get_closest_marker("needs"):
        reason = _kernel_unavailable()
        if reason:
            pytest.skip(reason)
    for mark in item.iter_markers("needs"):
        for feature in mark.args:
            missing = features.missing(feature)
            if missing is None:
                continue
            if features.expected(feature):
                what = ("this libbpf" if features.libbpf_need(feature)
                        else f"kernel {features.kernel_version_str()}")
                pytest.fail(f"{what} should support {feature!r} but the probe says: {missing}")
            pytest.skip(f"{feature}: {missing}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if not IN_CI or not report.skipped:
        return
    is_kernel = item.get_closest_marker("kernel") or item.get_closest_marker("needs")
    if not is_kernel:
        return
    # A feature missing on this kernel is a legitimate skip only when the feature is one the
    # kernel is *not* expected to have (the VM tier covers it); anything else fails in CI.
    reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
    if features.skip_is_legitimate(item, reason):
        return
    report.outcome = "failed"
    report.longrepr = f"kernel test skipped in CI (CI=true forbids it): {reason}"


@pytest.fixture(scope="session")
def bpf_object_path() -> Callable[..., Path]:
    """Factory: ``bpf_object_path("maps.bpf.c", cflags=[...])``: compiled (cached) Path."""
    return compile_bpf


# The objects several test files use, each compiled and opened in one place.

@pytest.fixture(scope="session")
def minimal_o() -> Path:
    """``minimal.bpf.c`` compiled (cached)."""
    return compile_bpf("minimal.bpf.c")


@pytest.fixture(scope="session")
def counters_o() -> Path:
    """``counters.bpf.c`` compiled (cached) with the simulated refusals (``object_path``)."""
    return object_path("counters.bpf.c")


@pytest.fixture
def counters(counters_o: Path) -> Iterator[Object]:
    """``counters.bpf.c`` opened, every program's autoload off: a test that runs a program turns
    it on with ``autoload_only``, which checks the test's ``needs`` marks."""
    with Object.open_file(counters_o) as obj:
        autoload_only(obj, [])
        yield obj


@pytest.fixture
def load_trace(request: pytest.FixtureRequest) -> Iterator[Callable[..., Object]]:
    """``load_trace("raw_enter", ...)``: ``attach_trace.bpf.c`` with only those programs loaded
    (the test's ``needs`` marks must cover them); every object it opened is closed after the
    test."""
    opener, close_all = trace_loader(request)
    try:
        yield opener
    finally:
        close_all()


@pytest.fixture
def producer() -> Iterator[Object]:
    """``events_ringbuf.bpf.c`` loaded: the ring buffer producer ``tests.support.ring_producer``
    drives."""
    with loaded_producer() as obj:
        yield obj
