"""pylibbpf: libbpf's ``bpf_object`` API for Python.

A C libbpf program ports line by line::

    obj = pylibbpf.Object.open_file("prog.bpf.o")   # bpf_object__open_file
    obj.load()                                      # bpf_object__load
    link = obj.programs["handle"].attach()          # bpf_program__attach
    counts = obj.maps["counts"]                     # bpf_object__find_map_by_name
    link.destroy(); obj.close()

``pylibbpf.probe`` asks the kernel what it supports before choosing what to load;
``pylibbpf.elf`` reads objects without root or libbpf.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import exports as _lazy_exports

# The public names, each with the module that defines it: this block is the one list.  Type
# checkers and IDEs read it (``X as X`` marks a re-export); at run time it does not run, so that
# ``import pylibbpf`` loads neither libbpf nor the ctypes layer and ``pylibbpf.elf`` stays pure
# Python.  __getattr__ (pylibbpf._lazy) imports a name's module on first use, reading this block
# from the source, and ``__all__`` is these names and the functions defined below.
if TYPE_CHECKING:
    from . import aio as aio
    from . import elf as elf
    from . import hist as hist
    from . import lowlevel as lowlevel
    from . import perf_event as perf_event
    from . import probe as probe
    from . import socket_filter as socket_filter
    from . import typed as typed
    from .btf import KernelBtf as KernelBtf
    from .elf.datasec import Variable as Variable
    from .enums import AttachType as AttachType
    from .enums import LinkType as LinkType
    from .enums import MapFlags as MapFlags
    from .enums import MapType as MapType
    from .enums import PinningType as PinningType
    from .enums import ProgType as ProgType
    from .enums import TcAttachPoint as TcAttachPoint
    from .enums import UpdateFlags as UpdateFlags
    from .enums import XdpFlags as XdpFlags
    from .errors import BpfError as BpfError
    from .errors import BpfPermissionError as BpfPermissionError
    from .errors import ClosedError as ClosedError
    from .errors import LibbpfNotFoundError as LibbpfNotFoundError
    from .errors import MalformedObjectError as MalformedObjectError
    from .errors import NotSupportedError as NotSupportedError
    from .errors import StateError as StateError
    from .errors import VerifierError as VerifierError
    from .events.perf import EventsLostWarning as EventsLostWarning
    from .events.perf import PerfBuffer as PerfBuffer
    from .events.perf import PerfSample as PerfSample
    from .events.ring import Ring as Ring
    from .events.ring import RingBuffer as RingBuffer
    from .events.user_ring import UserRingBuffer as UserRingBuffer
    from .global_data import GlobalData as GlobalData
    from .info import LinkInfo as LinkInfo
    from .info import MapInfo as MapInfo
    from .info import ProgramInfo as ProgramInfo
    from .info import link_ids as link_ids
    from .info import loaded_links as loaded_links
    from .info import loaded_maps as loaded_maps
    from .info import loaded_programs as loaded_programs
    from .info import map_ids as map_ids
    from .info import program_ids as program_ids
    from .ksyms import Ksym as Ksym
    from .ksyms import Ksyms as Ksyms
    from .link import Link as Link
    from .link import StructOpsLink as StructOpsLink
    from .map import Map as Map
    from .map import ObjectMap as ObjectMap
    from .map import StandaloneMap as StandaloneMap
    from .map_attachment import MapAttachment as MapAttachment
    from .maps._numpy import MapArrays as MapArrays
    from .object import Object as Object
    from .perf_event import PerfEventLink as PerfEventLink
    from .program import Program as Program
    from .program import TestRunResult as TestRunResult
    from .tc import TcAttachment as TcAttachment
    from .tc import TcHook as TcHook

__version__ = "0.1.0"


def libbpf_version() -> tuple[int, int]:
    """The (major, minor) version of the libbpf pylibbpf loaded."""
    from ._ffi import version

    return version()


def num_possible_cpus() -> int:
    """Number of possible CPUs (the length of a per-CPU map's value list)."""
    from .maps._elements import possible_cpus

    return possible_cpus()


__getattr__, __dir__ = _lazy_exports(__name__, __file__, globals())
