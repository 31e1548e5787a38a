"""Attaching a BPF program to perf events: :class:`PerfEventLink` (a BPF link, or the
``PERF_EVENT_IOC_SET_BPF`` ioctl before Linux 5.15) and :class:`PerfEventLinks`, one per CPU."""

from __future__ import annotations

import errno as _errno
import os
import threading

from .. import _args
from .._handle import Handle
from ..enums import AttachType
from ..errors import BpfError, NotSupportedError
from ..info import LinkInfo
from ..lowlevel import link_create
from ._open import (
    PERF_EVENT_IOC_ENABLE,
    PERF_EVENT_IOC_SET_BPF,
    _ioctl,
    open_cpu_clock,
    open_kprobe,
    open_tracepoint,
    open_uprobe,
)
from .attr import PerfEventAttr
from .counters import CounterValue, _require_sampling, open_event, read_counter

# ------------------------------------------------------------------------------------- attaching

class PerfEventLink(Handle):
    """A program attached to a perf event; owns the perf event fd and, where the kernel has
    perf links (>= 5.15), the BPF link fd.  ``close()`` (or ``detach()``) detaches."""

    _what = "perf event attachment"

    def __init__(self, perf_fd: int, link_fd: int | None) -> None:
        super().__init__()
        self._perf_fd = perf_fd
        self._link_fd = link_fd

        def release() -> None:
            for fd in (link_fd, perf_fd):
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass

        kind = f"link fd {link_fd}" if link_fd is not None else "ioctl"
        self._own(release, f"perf event attachment (perf fd {perf_fd}, {kind})")

    @property
    def fd(self) -> int:
        """The BPF link fd, or the perf event fd when the kernel has no perf links."""
        self._check()
        return self._perf_fd if self._link_fd is None else self._link_fd

    @property
    def perf_fd(self) -> int:
        """The perf event fd."""
        self._check()
        return self._perf_fd

    @property
    def link_fd(self) -> int | None:
        """The BPF link fd; ``None`` when attached with ``PERF_EVENT_IOC_SET_BPF``."""
        self._check()
        return self._link_fd

    def info(self) -> LinkInfo:
        """The kernel's view of the BPF link (NotSupportedError without one)."""
        self._check()
        if self._link_fd is None:
            raise NotSupportedError("this attachment has no BPF link (attached by ioctl)")
        return LinkInfo.from_fd(self._link_fd)

    def read(self) -> CounterValue:
        """The perf event's counter (:func:`read_counter`)."""
        self._check()
        return read_counter(self._perf_fd)

    def detach(self) -> None:
        """Detach the program: the same as :meth:`close`."""
        self.close()

    def __repr__(self) -> str:
        if self._closed:
            return "<PerfEventLink closed>"
        kind = "ioctl" if self._link_fd is None else f"link fd {self._link_fd}"
        return f"<PerfEventLink perf fd {self._perf_fd} ({kind})>"


_perf_links: bool | None = None  # learnt from the first attach: does the kernel have them?
_perf_links_lock = threading.Lock()


def attach(prog_fd: int, perf_fd: int, *, cookie: int = 0,
           force_ioctl: bool = False) -> PerfEventLink:
    """Attach program ``prog_fd`` to the perf event ``perf_fd`` and enable the event.

    On success the returned link owns ``perf_fd``; on failure it stays the caller's.
    ``cookie`` is what ``bpf_get_attach_cookie()`` returns (needs a BPF link).
    ``force_ioctl`` skips the BPF link and uses ``PERF_EVENT_IOC_SET_BPF``, as kernels
    before 5.15 must.
    """
    global _perf_links
    prog_fd = _args.fd(prog_fd, "prog_fd")
    perf_fd = _args.fd(perf_fd, "perf_fd")
    cookie = _args.u64(cookie, "cookie")
    link_fd: int | None = None
    if not force_ioctl and _perf_links is not False:
        try:
            link_fd = link_create(prog_fd, perf_fd, AttachType.PERF_EVENT, cookie=cookie)
        except BpfError as exc:
            # EINVAL from a kernel without perf links; anything else is a real refusal
            if _perf_links or exc.errno != _errno.EINVAL:
                raise
        else:
            with _perf_links_lock:
                _perf_links = True
    if link_fd is None:
        if cookie:
            raise NotSupportedError("BPF cookies on perf events need a BPF link (Linux 5.15)")
        _ioctl(perf_fd, PERF_EVENT_IOC_SET_BPF, prog_fd,
               f"cannot attach program fd {prog_fd} to perf event fd {perf_fd}")
        if not force_ioctl:
            with _perf_links_lock:
                _perf_links = False
    try:
        _ioctl(perf_fd, PERF_EVENT_IOC_ENABLE, 0, f"cannot enable perf event fd {perf_fd}")
    except BpfError:
        if link_fd is not None:
            os.close(link_fd)
        raise
    return PerfEventLink(perf_fd, link_fd)


def _attach_new(prog_fd: int, perf_fd: int, cookie: int) -> PerfEventLink:
    try:
        return attach(prog_fd, perf_fd, cookie=cookie)
    except BaseException:
        os.close(perf_fd)
        raise


def attach_tracepoint(prog_fd: int, category: str, name: str, *,
                      cookie: int = 0) -> PerfEventLink:
    """Open tracepoint ``category:name`` and attach ``prog_fd`` (a TRACEPOINT program)."""
    return _attach_new(prog_fd, open_tracepoint(category, name), cookie)


def attach_kprobe(prog_fd: int, function: str, offset: int = 0, *, retprobe: bool = False,
                  cookie: int = 0) -> PerfEventLink:
    """Create a kprobe (kretprobe) on ``function`` and attach ``prog_fd`` (a KPROBE program)."""
    return _attach_new(prog_fd, open_kprobe(function, offset, retprobe=retprobe), cookie)


def attach_uprobe(prog_fd: int, path: str | os.PathLike[str], offset: int, *,
                  retprobe: bool = False, pid: int = -1, cookie: int = 0) -> PerfEventLink:
    """Create a uprobe (uretprobe) at ``path``'s file offset ``offset`` and attach ``prog_fd``
    (a KPROBE program)."""
    return _attach_new(prog_fd, open_uprobe(path, offset, retprobe=retprobe, pid=pid), cookie)


def attach_cpu_clock(prog_fd: int, cpu: int, *, period_ns: int | None = None,
                     frequency: int | None = None, cookie: int = 0) -> PerfEventLink:
    """Sample ``cpu`` with a cpu-clock event and attach ``prog_fd`` (a PERF_EVENT program)."""
    fd = open_cpu_clock(cpu, period_ns=period_ns, frequency=frequency)
    return _attach_new(prog_fd, fd, cookie)


def attach_event(prog_fd: int, attr: PerfEventAttr, *, pid: int = -1, cpu: int = -1,
                 cookie: int = 0) -> PerfEventLink:
    """Open one event of ``attr`` (:func:`open_event`) and attach ``prog_fd`` (a PERF_EVENT
    program) to it; ``attr`` must sample (``period`` or ``frequency``)."""
    _require_sampling(attr)
    return _attach_new(prog_fd, open_event(attr, pid=pid, cpu=cpu), cookie)


