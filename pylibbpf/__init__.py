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

import importlib
from typing import TYPE_CHECKING, Any

# Public names and the module that defines each.  They are imported on first use, so that
# ``import pylibbpf.elf`` (pure Python, no root, no libbpf) never loads the ctypes layer.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(["AttachType", "LinkType", "MapFlags", "MapType", "PinningType", "ProgType",
                     "TcAttachPoint", "UpdateFlags", "XdpFlags"], "enums"),
    **dict.fromkeys(["BpfError", "BpfPermissionError", "ClosedError", "LibbpfNotFoundError",
                     "MalformedObjectError", "NotSupportedError", "StateError", "VerifierError"],
                    "errors"),
    "GlobalData": "global_data", "Variable": "elf.datasec",
    **dict.fromkeys(["LinkInfo", "MapInfo", "ProgramInfo", "link_ids", "loaded_links",
                     "loaded_maps", "loaded_programs", "map_ids", "program_ids"], "info"),
    "Link": "link", "Map": "map", "Object": "object",
    **dict.fromkeys(["EventsLostWarning", "PerfBuffer", "PerfSample"], "events.perf"),
    **dict.fromkeys(["Program", "TestRunResult"], "program"),
    "RingBuffer": "events.ring", "UserRingBuffer": "events.user_ring",
    "TcAttachment": "tc",
    "PerfEventLink": "perf_event",
}
_SUBMODULES = {"aio", "hist", "typed", "elf", "lowlevel", "perf_event"}

if TYPE_CHECKING:
    from . import aio, elf, hist, lowlevel, perf_event, typed
    from .elf.datasec import Variable
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
        MalformedObjectError,
        NotSupportedError,
        StateError,
        VerifierError,
    )
    from .events.perf import EventsLostWarning, PerfBuffer, PerfSample
    from .events.ring import RingBuffer
    from .events.user_ring import UserRingBuffer
    from .global_data import GlobalData
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
    from .perf_event import PerfEventLink
    from .program import Program, TestRunResult
    from .tc import TcAttachment

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pylibbpf' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, *_SUBMODULES])


def libbpf_version() -> tuple[int, int]:
    """The (major, minor) version of the libbpf pylibbpf loaded."""
    from ._ffi import version

    return version()


def num_possible_cpus() -> int:
    """Number of possible CPUs (the length of a per-CPU map's value list)."""
    from . import _ffi

    return int(_ffi.lib().libbpf_num_possible_cpus())


__all__ = [
    "AttachType", "BpfError", "BpfPermissionError", "ClosedError", "EventsLostWarning",
    "GlobalData", "LibbpfNotFoundError", "Link", "LinkInfo", "LinkType", "MalformedObjectError",
    "Map", "MapFlags", "MapInfo", "MapType", "NotSupportedError", "Object", "PerfBuffer",
    "PerfEventLink", "PerfSample", "PinningType", "ProgType", "Program", "ProgramInfo",
    "RingBuffer", "StateError", "TcAttachPoint", "TcAttachment", "TestRunResult", "UpdateFlags",
    "UserRingBuffer", "Variable", "VerifierError", "XdpFlags", "aio", "elf", "hist",
    "libbpf_version", "link_ids", "loaded_links", "loaded_maps", "loaded_programs", "lowlevel",
    "map_ids", "num_possible_cpus", "perf_event", "program_ids", "typed",
]
