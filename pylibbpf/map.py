"""The maps under their original import path: they live in the :mod:`pylibbpf.maps` package
(:class:`Map` in :mod:`pylibbpf.maps.base`, :class:`ObjectMap` in :mod:`pylibbpf.maps.of_object`,
:class:`StandaloneMap` in :mod:`pylibbpf.maps.standalone`) and are re-exported from
:mod:`pylibbpf`.  :mod:`pylibbpf` and :class:`~pylibbpf.Object` import them from here, so that
the three are loaded together (a standalone map's ``/dev/null`` placeholder then opens at
import, not at the first ``Map.create()``)."""

from .maps._elements import KeyLike, ValueLike
from .maps.base import Map
from .maps.of_object import ObjectMap
from .maps.standalone import StandaloneMap

__all__ = ["KeyLike", "Map", "ObjectMap", "StandaloneMap", "ValueLike"]
