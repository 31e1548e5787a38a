"""Every hardening test runs under the fd tracer (see ``tests/support/fdtracer.py``): a handle
the garbage collector had to close fails the test, naming where the handle was created."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fdtracer import FdTracer, report


@pytest.fixture(autouse=True)
def fd_tracer(monkeypatch: pytest.MonkeyPatch) -> Iterator[FdTracer]:
    """The tracer, installed for this test; checked (after a GC pass) at teardown."""
    from tests.support import fdtracer

    # the whole session is traced already (-p tests.support.fdtracer)
    if fdtracer._SESSION is not None:
        yield fdtracer._SESSION
        return
    tracer = FdTracer(warn=False)
    tracer.collect()  # leftovers of earlier tests are not this test's
    tracer.install(monkeypatch.setattr)
    yield tracer
    leaked = tracer.collect()
    if leaked:
        pytest.fail(report(leaked), pytrace=False)
