"""asyncio over ring and perf buffers: ``pylibbpf.aio`` is :mod:`pylibbpf.events.aio` itself.

``import pylibbpf.aio`` and ``from pylibbpf import aio`` give that very module object (not a copy
of its names), so that a setting made through either name, such as ``aio.CLOSED_CHECK_S``,
applies.  The names below are for type checkers and readers.
"""

import sys

from .events import aio as _aio
from .events.aio import BATCH_LIMIT as BATCH_LIMIT
from .events.aio import CLOSED_CHECK_S as CLOSED_CHECK_S
from .events.aio import Buffer as Buffer
from .events.aio import batches as batches
from .events.aio import iterate as iterate
from .events.aio import poll as poll
from .events.aio import wait_readable as wait_readable

__all__ = ["BATCH_LIMIT", "batches", "iterate", "poll", "wait_readable"]

sys.modules[__name__] = _aio
