"""One event per online CPU, as profile-style tools open them: :class:`PerfEventSet` (counters or
sampling events, :func:`open_per_cpu`) and :class:`PerfEventLinks` (a program attached to each,
:func:`attach_per_cpu`)."""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Iterator

from .. import _args
from .._handle import Handle
from ..errors import BpfError
from .attr import PerfEventAttr
from .counters import (
    CounterValue,
    _check_attr,
    _require_sampling,
    disable,
    enable,
    online_cpus,
    open_event,
    read_counter,
    reset,
)
from .links import PerfEventLink, attach


class PerfEventSet(Handle):
    """One perf event per CPU, all of one :class:`PerfEventAttr` (from :func:`open_per_cpu`):
    owns their fds.  Read them as counters, or hand them to a program with :meth:`attach`."""

    _what = "perf event set"

    def __init__(self, attr: PerfEventAttr, fds: dict[int, int], pid: int) -> None:
        super().__init__()
        self.attr = attr
        self.pid = pid
        self._fds = dict(fds)
        owned = self._fds  # attach() empties it: the links own those fds then

        def release() -> None:
            for fd in owned.values():
                try:
                    os.close(fd)
                except OSError:
                    pass
            owned.clear()

        self._own(release, f"{attr.describe()} events on {len(fds)} CPUs")

    @property
    def fds(self) -> dict[int, int]:
        """CPU -> perf event fd (still owned by this set)."""
        self._check()
        return dict(self._fds)

    @property
    def cpus(self) -> list[int]:
        """The CPUs measured."""
        return sorted(self.fds)

    def __len__(self) -> int:
        return len(self.fds)

    def read(self) -> dict[int, CounterValue]:
        """CPU -> the counter of that CPU's event."""
        return {cpu: read_counter(fd) for cpu, fd in self.fds.items()}

    def total(self) -> int:
        """The sum of every CPU's :attr:`CounterValue.scaled`."""
        return sum(value.scaled for value in self.read().values())

    def enable(self) -> None:
        """Start every event."""
        for fd in self.fds.values():
            enable(fd)

    def disable(self) -> None:
        """Stop every event."""
        for fd in self.fds.values():
            disable(fd)

    def reset(self) -> None:
        """Set every counter to 0."""
        for fd in self.fds.values():
            reset(fd)

    def attach(self, prog_fd: int, *, cookie: int = 0) -> PerfEventLinks:
        """Attach program ``prog_fd`` to every event (:func:`attach`) and enable them.

        The events move to the returned :class:`PerfEventLinks`: this set is closed
        afterwards, also when an attach fails (the events are closed then; a bad argument
        leaves the set as it was)."""
        self._check()
        prog_fd = _args.fd(prog_fd, "prog_fd")
        cookie = _args.u64(cookie, "cookie")
        _require_sampling(self.attr)
        fds = self.fds
        links: dict[int, PerfEventLink] = {}
        try:
            for cpu, fd in fds.items():
                links[cpu] = attach(prog_fd, fd, cookie=cookie)
                del self._fds[cpu]  # the link owns it now
        except BaseException:
            for link in links.values():
                link.close()
            self.close()
            raise
        self.close()
        return PerfEventLinks(links, f"{self.attr.describe()} on {len(links)} CPUs")

    def __repr__(self) -> str:
        if self._closed:
            return "<PerfEventSet closed>"
        return f"<PerfEventSet {self.attr.describe()} on cpus {self.cpus}>"


def open_per_cpu(attr: PerfEventAttr, *, pid: int = -1,
                 cpus: list[int] | None = None) -> PerfEventSet:
    """One event of ``attr`` on each online CPU (or each of ``cpus``), for every task (or
    task ``pid``): what ``perf record -a`` and the profile tools open.

    A CPU that goes offline while they are opened is left out (ENODEV), unless ``cpus``
    names it.  On any other failure the events opened so far are closed.
    """
    _check_attr(attr)
    pid = _args.in_range(pid, "pid", -1, _args.INT_MAX)
    if cpus is not None and not isinstance(cpus, (list, tuple, range)):
        raise TypeError(f"cpus must be a list of CPU numbers, not {type(cpus).__name__}")
    chosen = online_cpus() if cpus is None else [_args.in_range(c, "cpu", 0, _args.INT_MAX)
                                                 for c in cpus]
    fds: dict[int, int] = {}
    try:
        for cpu in chosen:
            try:
                fds[cpu] = open_event(attr, pid=pid, cpu=cpu)
            except BpfError as exc:
                if cpus is None and exc.errno == _errno.ENODEV:
                    continue  # went offline meanwhile
                raise
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    if not fds:
        raise BpfError(_errno.ENODEV, f"no online CPU to open {attr.describe()} on")
    return PerfEventSet(attr, fds, pid)


def attach_per_cpu(prog_fd: int, attr: PerfEventAttr, *, pid: int = -1,
                   cpus: list[int] | None = None, cookie: int = 0) -> PerfEventLinks:
    """Sample every online CPU (or ``cpus``) with ``attr`` and attach ``prog_fd`` (a
    PERF_EVENT program) to each event: the profile tools' loop.  ``pid`` limits the samples to
    one task.  Closing the result detaches the program everywhere.

    ::

        attr = perf_event.PerfEventAttr.named("cpu-clock", frequency=99)
        with perf_event.attach_per_cpu(obj.programs["do_sample"].fd, attr) as links:
            ...
    """
    _require_sampling(attr)
    prog_fd = _args.fd(prog_fd, "prog_fd")
    cookie = _args.u64(cookie, "cookie")
    return open_per_cpu(attr, pid=pid, cpus=cpus).attach(prog_fd, cookie=cookie)


class PerfEventLinks(Handle):
    """One program attached to one perf event per CPU (:func:`attach_per_cpu`); ``close()``
    (or ``detach()``) detaches it from all of them."""

    _what = "perf event attachments"

    def __init__(self, links: dict[int, PerfEventLink], what: str) -> None:
        super().__init__()
        self._links = dict(links)
        owned = list(self._links.values())

        def release() -> None:
            for link in owned:
                link.close()

        self._own(release, f"perf event attachments ({what})")

    @property
    def links(self) -> dict[int, PerfEventLink]:
        """CPU -> the attachment on that CPU."""
        self._check()
        return dict(self._links)

    @property
    def cpus(self) -> list[int]:
        """The CPUs sampled."""
        return sorted(self.links)

    def __len__(self) -> int:
        return len(self.links)

    def __iter__(self) -> Iterator[PerfEventLink]:
        return iter(self.links.values())

    def read(self) -> dict[int, CounterValue]:
        """CPU -> that CPU's counter."""
        return {cpu: link.read() for cpu, link in self.links.items()}

    def detach(self) -> None:
        """Detach the program everywhere: the same as :meth:`close`."""
        self.close()

    def __repr__(self) -> str:
        if self._closed:
            return "<PerfEventLinks closed>"
        return f"<PerfEventLinks on cpus {self.cpus}>"
