"""Every hardening test runs under the fd tracer (see ``fdtracer.py``): a handle the garbage
collector had to close fails the test, naming where the handle was created."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fdtracer import FdTracer, report


@pytest.fixture(autouse=True)
def fd_tracer(monkeypatch: pytest.MonkeyPatch) -> Iterator[FdTracer]:
    """The tracer, installed for this test; checked (after a GC pass) at teardown."""
    import fdtracer

    if fdtracer._SESSION is not None:  # the whole session is traced already (-p fdtracer)
        yield fdtracer._SESSION
        return
    tracer = FdTracer(warn=False)
    tracer.collect()  # leftovers of earlier tests are not this test's
    tracer.install(monkeypatch.setattr)
    yield tracer
    leaked = tracer.collect()
    if leaked:
        pytest.fail(report(leaked), pytrace=False)
