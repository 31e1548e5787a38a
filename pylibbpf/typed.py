"""BTF-typed views of BPF data, with no code generation.

Typed views are opt-in; everything stays raw ``bytes`` by default:

* :func:`typed` / :class:`TypedMap`: a map whose keys and values are decoded (``Map.typed()``);
* :func:`decoder`: ``RingBuffer(m, cb, decode=decoder(obj, "struct event"))``;
* :class:`TypedGlobals`: ``.bss``/``.data``/``.rodata`` variables as Python values;
* :func:`numpy_dtype`: a NumPy structured dtype for the batch ring reader;
* :class:`Types`: types from a C header or string, a ``ctypes.Structure`` or a NumPy dtype, for
  records whose type is not in the object's BTF (``decoder(obj, "struct event",
  header="event.h")``, ``decoder(obj, Event)``), with ``sizeof``/``offsetof``.

Values are decoded and encoded by :mod:`pylibbpf.elf.codec` (:class:`Codec`, :func:`codec`,
:func:`numpy_dtype`, re-exported here) over the object's BTF from :func:`pylibbpf.btf.object_btf`
(``btf_of`` here, its former name); a ring's record type is told from the object's instructions
by :mod:`pylibbpf.elf.records`.

This module sits below :mod:`pylibbpf.map`: ``Map.typed()`` builds a :class:`TypedMap`, which
reads the map only through the methods :class:`_RawMap` lists, so nothing here names ``Map``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from .btf import object_btf
from .elf import records
from .elf.btf import Btf, BtfKind, BtfType
from .elf.codec import Codec, FieldError, codec, numpy_dtype
from .elf.csource import CompileError
from .elf.objectfile import ObjectFile
from .elf.pytypes import BtfWriter
from .enums import MapType
from .typesource import Types

if TYPE_CHECKING:
    from .global_data import GlobalData
    from .object import Object

__all__ = ["Codec", "CompileError", "FieldError", "TypedGlobals", "TypedMap", "Types", "btf_of",
           "codec", "decoder", "infer_event_type", "numpy_dtype", "offsetof", "sizeof", "typed",
           "type_codec"]

btf_of = object_btf  # the name this module gave pylibbpf.btf.object_btf

PathLike = str | os.PathLike[str]
TypeSpec = Any  # a C name, a BTF id or type, a Codec, a ctypes type or a NumPy dtype

HINT = ("name the type from a source that has it: decoder(obj, \"struct event\", "
        "header=\"event.h\"), decoder(obj, \"struct event\", source=\"struct event {...};\"), "
        "or a ctypes.Structure or NumPy dtype: decoder(obj, Event)")


def _is_dtype(spec: Any) -> bool:
    return type(spec).__module__.startswith("numpy") and hasattr(spec, "fields")


def type_codec(spec: TypeSpec, btf: Btf | Types | None = None, *,
               header: PathLike | None = None, source: str | None = None,
               include_dirs: Sequence[PathLike] = (), cflags: Sequence[str] = ()) -> Codec:
    """The :class:`Codec` for ``spec``, from whichever source describes it:

    * a C name (``"struct event"``) or BTF id in ``btf``; or, with ``header=``/``source=``,
      compiled from that header or C text (:meth:`Types.from_header`, :meth:`Types.from_c`);
    * a ``ctypes.Structure``/``Union`` (or any ctypes type), a NumPy structured dtype;
    * a :class:`Codec` (returned as it is).
    """
    if isinstance(spec, Codec):
        return spec
    if isinstance(spec, str) and (header is not None or source is not None):
        dirs = list(include_dirs)
        types = (Types.from_header(header, spec, include_dirs=dirs, cflags=cflags)
                 if header is not None else
                 Types.from_c(source or "", spec, include_dirs=dirs, cflags=cflags))
        return types.codec(spec)
    if _is_dtype(spec):
        return Types.from_dtype(spec).codec("struct record")
    if isinstance(spec, type) and hasattr(spec, "_type_") or hasattr(spec, "_fields_"):
        types = Types.from_ctypes(spec)
        return types.codec(types.btf.types[-1])  # the class itself: made after its parts
    if isinstance(spec, (str, int, BtfType)):
        if btf is None:
            raise ValueError(f"type {spec!r} needs the BTF (or header=/source=) it is in")
        if isinstance(btf, Types):
            return btf.codec(spec)
        try:
            return codec(btf, spec)
        except KeyError:
            raise KeyError(f"no type {spec!r} in this BTF (clang emits a type only when a "
                           f"global, map or function uses it); {HINT}") from None
    raise TypeError(f"cannot make a codec of {spec!r}: give a C type name, a ctypes type, a "
                    "NumPy dtype or a Codec")


def decoder(obj: Object | None, type_name: TypeSpec = None, *, ring: str | None = None,
            header: PathLike | None = None, source: str | None = None,
            include_dirs: Sequence[PathLike] = (), cflags: Sequence[str] = ()) -> Codec:
    """A codec usable as ``RingBuffer(..., decode=)`` or ``PerfBuffer`` samples.

    ``type_name`` is a type in ``obj``'s BTF (``"struct event"``), or any :func:`type_codec`
    source: a name with ``header=``/``source=``, a ctypes class, a NumPy dtype.  With
    ``ring="map name"`` and no type, the type is the one :func:`infer_event_type` finds (in
    ``header``/``source`` when given: the struct of the size the programs pass).
    """
    if type_name is None:
        if ring is None or obj is None:
            raise ValueError("decoder() needs a type, or an object and ring=<ring buffer map>")
        if header is None and source is None:
            return codec(object_btf(obj), infer_event_type(obj, ring))
        dirs = list(include_dirs)
        types = (Types.from_header(header, include_dirs=dirs, cflags=cflags)
                 if header is not None else
                 Types.from_c(source or "", include_dirs=dirs, cflags=cflags))
        return types.codec(_infer_in(obj, ring, types))
    btf = object_btf(obj) if obj is not None and isinstance(type_name, (str, int)) and (
        header is None and source is None) else None
    return type_codec(type_name, btf, header=header, source=source, include_dirs=include_dirs,
                      cflags=cflags)


def _infer_in(obj: Object, ring: str, types: Types) -> str:
    obj.find_map_by_name(ring)
    sizes = records.ring_record_sizes(ObjectFile.from_bytes(obj.elf_bytes(), name=obj.name),
                                      ring)
    if len(sizes) != 1:
        raise LookupError(f"cannot infer the event type of ring {ring!r}: the programs pass "
                          + ("no constant record size" if not sizes else
                             f"several sizes {sorted(sizes)}") + "; name the type")
    size = sizes.pop()
    names = types.of_size(size)
    if len(names) != 1:
        raise LookupError(f"cannot infer the event type of ring {ring!r} ({size}-byte records) "
                          f"in the types of {types.origin}: "
                          + (f"candidates {', '.join(names)}" if names else
                             "no struct or union of that size") + "; name the type")
    return names[0]


def infer_event_type(obj: Object, ring: str) -> str:
    """The C name (``"struct event"``) of the records the object's programs write to the ring
    buffer map ``ring``, found from the record size they pass to ``bpf_ringbuf_reserve`` or
    ``bpf_ringbuf_output`` and the object's BTF (:func:`pylibbpf.elf.records.infer_event_type`
    on the object's ELF image).

    Raises :class:`LookupError` when it cannot be told: no constant size, no struct or union of
    that size in the BTF (a type used only through a local pointer is not emitted), or several
    candidates; the message says how to name the type from a header, C text or ctypes class.
    """
    obj.find_map_by_name(ring)
    try:
        return records.infer_event_type(ObjectFile.from_bytes(obj.elf_bytes(), name=obj.name),
                                        ring)
    except KeyError:
        raise
    except LookupError as exc:
        raise LookupError(str(exc).replace("name the type instead", HINT)) from None


def sizeof(types: Btf | Types, type_: TypeSpec) -> int:
    """``sizeof(type)`` in bytes, for a type of ``types``."""
    return (types if isinstance(types, Types) else Types(types)).sizeof(type_)


def offsetof(types: Btf | Types, type_: TypeSpec, path: str) -> int:
    """``offsetof(type, path)`` in bytes (``"hdr.pid"``, ``"args[2]"``)."""
    return (types if isinstance(types, Types) else Types(types)).offsetof(type_, path)


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
    @property
    def btf(self) -> Btf | None: ...
    def lookup(self, key: Any, flags: int = ...) -> Any: ...
    def update(self, key: Any, value: Any, flags: int = ...) -> None: ...
    def delete(self, key: Any) -> None: ...
    def lookup_and_delete(self, key: Any = ...) -> Any: ...
    def get_next_key(self, key: Any = ...) -> bytes | None: ...
    def items(self) -> list[tuple[bytes, Any]]: ...
    def keys(self) -> list[bytes]: ...
    def lookup_batch(self, batch_size: int | None = ...) -> list[tuple[bytes, Any]]: ...
    def lookup_and_delete_batch(self, batch_size: int | None = ...) -> list[tuple[bytes, Any]]:
        ...
    def update_batch(self, keys: Sequence[Any], values: Sequence[Any], flags: int = ...) -> int:
        ...
    def delete_batch(self, keys: Sequence[Any]) -> int: ...
    def clear(self) -> None: ...
    def __len__(self) -> int: ...


_M = TypeVar("_M", bound=_RawMap)

def _is_stack_trace_map(m: _RawMap) -> bool:
    return getattr(m, "type", None) == MapType.STACK_TRACE


def _stack_trace_codecs(key_size: int, value_size: int) -> tuple[Codec, Codec]:
    """A stack trace map's key (``__u32``) and value (``__u64[value_size / 8]``) codecs."""
    if key_size != 4 or value_size % 8:
        raise ValueError(f"a stack trace map has 4-byte keys and 8-byte frames, not "
                         f"{key_size}-byte keys and {value_size}-byte values")
    w = BtfWriter()
    key = w.integer(4, False)
    frames = w.array(w.integer(8, False), value_size // 8)
    btf = w.btf()
    return codec(btf, key), codec(btf, frames)


class TypedMap(Generic[_M]):
    """A :class:`~pylibbpf.Map` whose keys and values are decoded Python values.

    ``TypedMap(m)`` uses the map's BTF key/value types (:attr:`Map.btf <pylibbpf.Map.btf>`:
    the object's BTF, or for a standalone map the kernel's copy of the BTF it was created
    with);
    ``key_type``/``value_type`` override them with anything :func:`type_codec` takes: a name
    or id in ``btf`` (a :class:`~pylibbpf.elf.Btf` or :class:`Types`), a ctypes type, a NumPy
    dtype, a :class:`Codec`.  Sizes are checked against the map's key and value sizes.

    Every operation of the map is here with typed keys and values: ``lookup``/``get``/
    ``update``/``delete``/``lookup_and_delete``/``get_next_key``, ``keys``/``values``/
    ``items``, the batches (``lookup_batch``, ``lookup_and_delete_batch``, ``update_batch``,
    ``delete_batch``), ``clear``, and the dict protocol.  Per-CPU values are a list per key
    (one value per possible CPU); an update takes such a list, or one value for every CPU.
    A missing key raises :class:`KeyError` with the key as given.
    """

    def __init__(self, m: _M, btf: Btf | Types | None = None, *,
                 key_type: TypeSpec = None, value_type: TypeSpec = None) -> None:
        self.map = m
        obj = m.object
        needs_btf = any(isinstance(t, (str, int)) for t in (key_type, value_type)) or (
            value_type is None or key_type is None and m.key_size)
        own_ids = obj is not None  # do the map's type ids index into ``btf``?
        if btf is None and needs_btf:
            if obj is not None:
                btf = object_btf(obj)
            else:
                btf = m.btf  # a standalone map: the kernel's copy of its BTF, if any
                own_ids = btf is not None
        key_id: TypeSpec = key_type
        value_id: TypeSpec = value_type
        if key_id is None and own_ids:
            key_id = m.btf_key_type_id or None
        if value_id is None and own_ids:
            value_id = m.btf_value_type_id or None
        if value_id is None and key_id is None and _is_stack_trace_map(m):
            # the kernel defines these: u32 stack ids -> u64 instruction pointers (zero after
            # the last frame); libbpf-tools declare them by size, and the kernel refuses BTF
            # for them anyway
            key_id, value_id = _stack_trace_codecs(m.key_size, m.value_size)
        if value_id is None:
            raise ValueError(f"map {m.name!r} has no BTF value type (declare it with "
                             "__type(value, ...)) and none was given")
        self.key = type_codec(key_id, btf) if key_id is not None else None
        self.value = type_codec(value_id, btf)
        if self.key is not None and self.key.size != m.key_size:
            raise ValueError(f"key type {self.key.name} is {self.key.size} bytes; map "
                             f"{m.name!r} has {m.key_size}-byte keys")
        if self.value.size != m.value_size:
            raise ValueError(f"value type {self.value.name} is {self.value.size} bytes; map "
                             f"{m.name!r} has {m.value_size}-byte values")

        # the codecs' own functions, bound once: these are the per-call hot path
        self._encode_key = None if self.key is None else self.key.encoder
        self._decode_key = None if self.key is None else self.key.decoder
        self._encode_value = self.value.encoder
        self._decode_value = self.value.decoder
        self._value_is_array = self.value.type.kind == BtfKind.ARRAY
        # a flat value decodes straight from the lookup's buffer (it copies what it takes)
        self._lookup_decoded: Callable[..., Any] | None = getattr(
            m, "_lookup_decoded", None) if self.value.flat is not None else None
        # an integer key packs with no call of its own (range errors: the codec's message)
        flat = None if self.key is None else self.key.flat
        self._pack_int_key = flat.struct.pack if flat is not None and flat.struct.format in (
            "=b", "=B", "=h", "=H", "=i", "=I", "=q", "=Q") else None

    # ----------------------------------------------------------------------------- conversions

    def _k(self, key: Any) -> Any:
        pack = self._pack_int_key
        if pack is not None and type(key) is int:
            try:
                return pack(key)
            except struct.error:
                pass  # out of range: the codec says so in its words
        encode = self._encode_key
        return key if encode is None or key is None else encode(key)

    def _key_out(self, raw: bytes) -> Any:
        decode = self._decode_key
        return raw if decode is None else decode(raw)

    def _v(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)) and not self._value_is_array:
            encode = self._encode_value
            return [encode(v) for v in value]  # one per CPU
        return self._encode_value(value)

    def _value_out(self, raw: Any) -> Any:
        decode = self._decode_value
        if type(raw) is list:
            return [decode(v) for v in raw]
        return decode(raw)

    def _pairs(self, pairs: list[tuple[bytes, Any]]) -> list[tuple[Any, Any]]:
        return [(self._key_out(k), self._value_out(v)) for k, v in pairs]

    # ----------------------------------------------------------------------------- elements

    def lookup(self, key: Any, flags: int = 0) -> Any:
        """The decoded value at ``key``; :class:`KeyError` when absent."""
        direct = self._lookup_decoded
        try:
            if direct is not None and type(flags) is int and not flags:
                return direct(self._k(key), self._decode_value, self._value_out)
            raw = self.map.lookup(self._k(key), flags)
        except KeyError:
            raise KeyError(key) from None
        if type(raw) is list:  # per-CPU: one value per CPU
            return self._value_out(raw)
        return self._decode_value(raw)

    def get(self, key: Any, default: Any = None) -> Any:
        """The decoded value, or ``default``."""
        try:
            return self.lookup(key)
        except KeyError:
            return default

    def update(self, key: Any, value: Any, flags: int = 0) -> None:
        """Encode and store (per-CPU maps: a list of values, or one value for every CPU)."""
        if type(value) is dict:  # a struct: the common case, no per-CPU list to tell apart
            self.map.update(self._k(key), self._encode_value(value), flags)
        else:
            self.map.update(self._k(key), self._v(value), flags)

    def delete(self, key: Any) -> None:
        """Remove ``key``; :class:`KeyError` when absent."""
        try:
            self.map.delete(self._k(key))
        except KeyError:
            raise KeyError(key) from None

    def lookup_and_delete(self, key: Any = None) -> Any:
        """Read and remove ``key`` (queue/stack maps: pop, with ``key=None``)."""
        try:
            return self._value_out(self.map.lookup_and_delete(self._k(key)))
        except KeyError:
            raise KeyError(key) from None

    def get_next_key(self, key: Any = None) -> Any:
        """The key after ``key`` (the first for ``None``), decoded; ``None`` at the end."""
        raw = self.map.get_next_key(self._k(key))
        return None if raw is None else self._key_out(raw)

    # ----------------------------------------------------------------------------- bulk

    def items(self) -> list[tuple[Any, Any]]:
        """Decoded (key, value) pairs."""
        return self._pairs(self.map.items())

    def keys(self) -> list[Any]:
        """Decoded keys."""
        return [self._key_out(k) for k in self.map.keys()]

    def values(self) -> list[Any]:
        """Decoded values."""
        return [v for _k, v in self.items()]

    def lookup_batch(self, batch_size: int | None = None) -> list[tuple[Any, Any]]:
        """Every decoded (key, value) pair, read with ``BPF_MAP_LOOKUP_BATCH``."""
        return self._pairs(self.map.lookup_batch(batch_size))

    def lookup_and_delete_batch(self, batch_size: int | None = None) -> list[tuple[Any, Any]]:
        """Drain the map: every decoded (key, value) pair, removed as it is read."""
        return self._pairs(self.map.lookup_and_delete_batch(batch_size))

    def update_batch(self, keys: Sequence[Any], values: Sequence[Any], flags: int = 0) -> int:
        """Encode and store many pairs in one call; returns how many were stored."""
        return self.map.update_batch([self._k(k) for k in keys], [self._v(v) for v in values],
                                     flags)

    def delete_batch(self, keys: Sequence[Any]) -> int:
        """Remove many keys in one call; an absent key raises :class:`KeyError` naming it."""
        encoded = [self._k(k) for k in keys]
        try:
            return self.map.delete_batch(encoded)
        except KeyError as exc:
            given = {id(e): k for e, k in zip(encoded, keys, strict=True)}
            raise KeyError(given.get(id(exc.args[0]), exc.args[0]) if exc.args else None) from None

    def clear(self) -> None:
        """Remove every entry (array maps: zero every value)."""
        self.map.clear()

    # ----------------------------------------------------------------------------- dict protocol

    def __getitem__(self, key: Any) -> Any:
        return self.lookup(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.update(key, value)

    def __delitem__(self, key: Any) -> None:
        self.delete(key)

    def __contains__(self, key: Any) -> bool:
        try:
            self.map.lookup(self._k(key))
        except KeyError:
            return False
        return True

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

