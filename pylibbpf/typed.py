"""BTF-typed views of BPF data, with no code generation.

Typed views are opt-in; everything stays raw ``bytes`` by default:

* :func:`typed` / :class:`TypedMap`: a map whose keys and values are decoded (``Map.typed()``);
* :func:`decoder`: ``RingBuffer(m, cb, decode=decoder(obj, "struct event"))``;
* :class:`TypedGlobals`: ``.bss``/``.data``/``.rodata`` variables as Python values;
* :func:`numpy_dtype`: a NumPy structured dtype for the batch ring reader.

Values are decoded and encoded by :mod:`pylibbpf.elf.codec` (:class:`Codec`, :func:`codec`,
:func:`numpy_dtype`, re-exported here) over the object's BTF from :func:`pylibbpf.btf.object_btf`
(``btf_of`` here, its former name); a ring's record type is told from the object's instructions
by :mod:`pylibbpf.elf.records`.

This module sits below :mod:`pylibbpf.map`: ``Map.typed()`` builds a :class:`TypedMap`, which
reads the map only through the methods :class:`_RawMap` lists, so nothing here names ``Map``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from .btf import object_btf
from .elf import records
from .elf.btf import Btf, BtfKind
from .elf.codec import Codec, codec, numpy_dtype
from .elf.objectfile import ObjectFile

if TYPE_CHECKING:
    from .global_data import GlobalData
    from .object import Object

__all__ = ["Codec", "TypedGlobals", "TypedMap", "btf_of", "codec", "decoder",
           "infer_event_type", "numpy_dtype", "typed"]

btf_of = object_btf  # the name this module gave pylibbpf.btf.object_btf


def decoder(obj: Object, type_name: str | None = None, *, ring: str | None = None) -> Codec:
    """A codec usable as ``RingBuffer(..., decode=)``: for ``type_name`` in ``obj``'s BTF, or,
    with ``ring="map name"``, for the type :func:`infer_event_type` finds for that ring."""
    if type_name is None:
        if ring is None:
            raise ValueError("decoder() needs a type name or ring=<ring buffer map name>")
        type_name = infer_event_type(obj, ring)
    return codec(object_btf(obj), type_name)


def infer_event_type(obj: Object, ring: str) -> str:
    """The C name (``"struct event"``) of the records the object's programs write to the ring
    buffer map ``ring``, found from the record size they pass to ``bpf_ringbuf_reserve`` or
    ``bpf_ringbuf_output`` and the object's BTF (:func:`pylibbpf.elf.records.infer_event_type`
    on the object's ELF image).

    Raises :class:`LookupError` when it cannot be told: no constant size, no struct or union of
    that size in the BTF (a type used only by a local variable is not emitted: keep one in BTF,
    e.g. ``const struct event *unused __attribute__((unused));``), or several candidates.
    """
    obj.find_map_by_name(ring)
    return records.infer_event_type(ObjectFile.from_bytes(obj.elf_bytes(), name=obj.name), ring)


class _RawMap(Protocol):
    """What a :class:`TypedMap` uses of a :class:`~pylibbpf.Map`."""

    @property
    def name(self) -> str: ...
    @property
    def object(self) -> Object | None: ...
    @property
    def key_size(self) -> int: ...
    @property
    def value_size(self) -> int: ...
    @property
    def btf_key_type_id(self) -> int: ...
    @property
    def btf_value_type_id(self) -> int: ...
    def lookup(self, key: Any) -> Any: ...
    def update(self, key: Any, value: Any, flags: int = ...) -> None: ...
    def delete(self, key: Any) -> None: ...
    def items(self) -> list[tuple[bytes, Any]]: ...
    def __len__(self) -> int: ...


_M = TypeVar("_M", bound=_RawMap)


class TypedMap(Generic[_M]):
    """A :class:`~pylibbpf.Map` whose keys and values are BTF-decoded Python values.

    ``TypedMap(m)`` uses the map's BTF key/value types (maps of an object);
    ``key_type``/``value_type`` (names or ids in ``btf``) override them.  Sizes are checked
    against the map's key and value sizes.
    """

    def __init__(self, m: _M, btf: Btf | None = None, *, key_type: int | str | None = None,
                 value_type: int | str | None = None) -> None:
        self.map = m
        obj = m.object
        if btf is None:
            if obj is None:
                raise ValueError(f"map {m.name!r} has no object: pass its btf and types")
            btf = object_btf(obj)
        key_id: int | str | None = key_type
        value_id: int | str | None = value_type
        if key_id is None and obj is not None:
            key_id = m.btf_key_type_id or None
        if value_id is None and obj is not None:
            value_id = m.btf_value_type_id or None
        if value_id is None:
            raise ValueError(f"map {m.name!r} has no BTF value type (declare it with "
                             "__type(value, ...)) and none was given")
        self.key = codec(btf, key_id) if key_id is not None else None
        self.value = codec(btf, value_id)
        if self.key is not None and self.key.size != m.key_size:
            raise ValueError(f"key type {self.key.name} is {self.key.size} bytes; map "
                             f"{m.name!r} has {m.key_size}-byte keys")
        if self.value.size != m.value_size:
            raise ValueError(f"value type {self.value.name} is {self.value.size} bytes; map "
                             f"{m.name!r} has {m.value_size}-byte values")

    def _k(self, key: Any) -> Any:
        return key if self.key is None else self.key.encode(key)

    def _decode_value(self, raw: Any) -> Any:
        if isinstance(raw, list):
            return [self.value.decode(v) for v in raw]
        return self.value.decode(raw)

    def lookup(self, key: Any) -> Any:
        """The decoded value at ``key``; :class:`KeyError` when absent."""
        return self._decode_value(self.map.lookup(self._k(key)))

    def get(self, key: Any, default: Any = None) -> Any:
        """The decoded value, or ``default``."""
        try:
            return self.lookup(key)
        except KeyError:
            return default

    def update(self, key: Any, value: Any, flags: int = 0) -> None:
        """Encode and store (per-CPU maps: a list of values, or one value for every CPU)."""
        if isinstance(value, list) and self.value.type.kind != BtfKind.ARRAY:
            encoded: Any = [self.value.encode(v) for v in value]
        else:
            encoded = self.value.encode(value)
        self.map.update(self._k(key), encoded, flags)

    def delete(self, key: Any) -> None:
        """Remove ``key``."""
        self.map.delete(self._k(key))

    def items(self) -> list[tuple[Any, Any]]:
        """Decoded (key, value) pairs."""
        key = self.key
        return [(k if key is None else key.decode(k), self._decode_value(v))
                for k, v in self.map.items()]

    def keys(self) -> list[Any]:
        """Decoded keys."""
        return [k for k, _v in self.items()]

    def values(self) -> list[Any]:
        """Decoded values."""
        return [v for _k, v in self.items()]

    def __getitem__(self, key: Any) -> Any:
        return self.lookup(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.update(key, value)

    def __delitem__(self, key: Any) -> None:
        self.delete(key)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.map)

    def __repr__(self) -> str:
        key = self.key.name if self.key is not None else "bytes"
        return f"<TypedMap {self.map.name!r} {key} -> {self.value.name}>"


def typed(m: _M, **kwargs: Any) -> TypedMap[_M]:
    """``TypedMap(m, ...)``: what ``Map.typed()`` returns."""
    return TypedMap(m, **kwargs)


class TypedGlobals:
    """The variables of one global-data section as Python values:
    ``TypedGlobals(obj.bss)["config"]`` → ``dict``; assignment encodes."""

    def __init__(self, data: GlobalData) -> None:
        self.data = data
        btf = object_btf(data.object)
        self._codecs = {name: codec(btf, var.type_id)
                        for name, var in data.variables.items()}
        for name, var in data.variables.items():
            if self._codecs[name].size != var.size:
                raise ValueError(f"variable {name!r}: BTF says {self._codecs[name].size} bytes, "
                                 f"the section {var.size}")

    def __getitem__(self, name: str) -> Any:
        return self._codecs[name].decode(self.data.read(name)) if name in self._codecs else (
            self.data.read(name))

    def __setitem__(self, name: str, value: Any) -> None:
        self.data.write(name, self._codecs[name].encode(value) if name in self._codecs
                        else value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._codecs)

    def __len__(self) -> int:
        return len(self._codecs)

    def as_dict(self) -> dict[str, Any]:
        """Every variable, decoded."""
        return {name: self[name] for name in self._codecs}

