"""The ring buffers under their original import path: they live in :mod:`pylibbpf.events.ring`
(``RingBuffer``) and :mod:`pylibbpf.events.user_ring` (``UserRingBuffer``), and are
re-exported from :mod:`pylibbpf`."""

from .events._common import Callback, Decoder
from .events.ring import RingBuffer
from .events.user_ring import UserRingBuffer, UserSample

__all__ = ["Callback", "Decoder", "RingBuffer", "UserRingBuffer", "UserSample"]
