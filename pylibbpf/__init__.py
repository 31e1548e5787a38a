"""pylibbpf: libbpf's ``bpf_object`` API for Python.

A C libbpf program ports line by line::

    obj = pylibbpf.Object.open_file("prog.bpf.o")   # bpf_object__open_file
    obj.load()                                      # bpf_object__load
    link = obj.programs["handle"].attach()          # bpf_program__attach
    counts = obj.maps["counts"]                     # bpf_object__find_map_by_name
    link.destroy(); obj.close()

``pylibbpf.elf`` reads objects without root or libbpf.
"""

from __future__ import annotations

from . import aio, hist, typed
from ._ffi import version as _libbpf_version
from .enums import (
    AttachType,
    LinkType,
    MapFlags,
    MapType,
    PinningType,
    ProgType,
    TcAttachPoint,
    UpdateFlags,
    XdpFlags,
)
from .errors import (
    BpfError,
    BpfPermissionError,
    ClosedError,
    LibbpfNotFoundError,
    NotSupportedError,
    StateError,
    VerifierError,
)
from .globals import GlobalData, Variable
from .info import (
    LinkInfo,
    MapInfo,
    ProgramInfo,
    link_ids,
    loaded_links,
    loaded_maps,
    loaded_programs,
    map_ids,
    program_ids,
)
from .link import Link
from .map import Map
from .object import Object
from .perfbuf import EventsLostWarning, PerfBuffer, PerfSample
from .program import Program, TestRunResult
from .ringbuf import RingBuffer, UserRingBuffer
from .tc import TcAttachment

__version__ = "0.1.0"


def libbpf_version() -> tuple[int, int]:
    """The (major, minor) version of the libbpf pylibbpf loaded."""
    return _libbpf_version()


def num_possible_cpus() -> int:
    """Number of possible CPUs (the length of a per-CPU map's value list)."""
    from . import _ffi

    return int(_ffi.lib().libbpf_num_possible_cpus())


__all__ = [
    "AttachType", "BpfError", "BpfPermissionError", "ClosedError", "EventsLostWarning",
    "GlobalData", "PerfBuffer", "PerfSample", "RingBuffer", "UserRingBuffer", "aio", "hist",
    "typed",
    "LibbpfNotFoundError", "Link", "LinkInfo", "LinkType", "Map", "MapFlags", "MapInfo",
    "MapType", "NotSupportedError", "Object", "PinningType", "ProgType", "Program",
    "ProgramInfo", "StateError", "TcAttachPoint", "TcAttachment", "TestRunResult",
    "UpdateFlags", "Variable", "VerifierError", "XdpFlags", "libbpf_version", "link_ids",
    "loaded_links", "loaded_maps", "loaded_programs", "map_ids", "num_possible_cpus",
    "program_ids",
]
