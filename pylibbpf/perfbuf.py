"""The perf buffer under its original import path: it lives in :mod:`pylibbpf.events.perf` and
is re-exported from :mod:`pylibbpf`."""

from .events._common import Decoder
from .events.perf import (
    EventsLostWarning,
    LostCallback,
    PerfBuffer,
    PerfSample,
    SampleCallback,
)

__all__ = ["Decoder", "EventsLostWarning", "LostCallback", "PerfBuffer", "PerfSample",
           "SampleCallback"]
