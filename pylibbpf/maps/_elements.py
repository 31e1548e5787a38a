"""The element operations of a map over (fd, layout), written once.

Everything an operation on a map fd must get right lives here: how keys and values are encoded
and checked (:func:`to_bytes`; no key or value of the wrong length ever reaches the kernel),
the per-CPU layout (the number of possible CPUs and a CPU's slot, computed only here), the
error a failed call raises, and output buffers that no two threads share.  :class:`Elements`
holds the operations; :class:`~pylibbpf.Map` inherits them, and :mod:`pylibbpf.lowlevel` runs
them on a plain fd through :class:`FdElements`.  Lookup, update and delete on a bound map with
no flags take a fast path (:data:`Hot`) that keeps every check of the checked path but costs
about what a bare ctypes call does.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
import struct
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Union

from .. import _args, _ffi
from ..enums import PER_CPU_MAP_TYPES, UpdateFlags
from ..errors import ClosedError, error_from_errno

KeyLike = Union[bytes, bytearray, memoryview, int, "ctypes._CData"]
ValueLike = Union[bytes, bytearray, memoryview, int, "ctypes._CData", Sequence[Any]]

_BYTEORDER = sys.byteorder
_U64_MAX = _args.U64_MAX


def to_bytes(value: Any, size: int, what: str) -> bytes:
    """Encode a key or value of exactly ``size`` bytes; ValueError/TypeError otherwise.

    Accepts ``bytes``-like objects of that length, ints (native byte order, negative ones as
    two's complement) and ctypes objects.
    """
    kind = type(value)
    if kind is bytes:
        data = value
    elif kind is int:
        if size.__class__ is not int or not 0 <= size <= _args.MAX_VALUE_SIZE:
            _args.in_range(size, "size", 0, _args.MAX_VALUE_SIZE)
        try:
            return int(value).to_bytes(size, _BYTEORDER, signed=value < 0)
        except OverflowError:
            raise ValueError(f"{what} {value} does not fit in {size} bytes") from None
    elif isinstance(value, (bytearray, memoryview)):
        data = bytes(value)
    elif isinstance(value, (ctypes.Structure, ctypes.Union, ctypes.Array, ctypes._SimpleCData)):
        data = bytes(memoryview(value).cast("B"))
    elif isinstance(value, bool):
        data = int(value).to_bytes(size, _BYTEORDER)
    else:
        raise TypeError(f"{what} must be bytes-like, an int or a ctypes object, "
                        f"not {kind.__name__}")
    if len(data) != size:
        raise ValueError(f"{what} is {len(data)} bytes; this map needs exactly {size}")
    return data  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------- layout

def possible_cpus() -> int:
    """Number of possible CPUs: how many slots a per-CPU map's value has."""
    return int(_ffi.lib().libbpf_num_possible_cpus())


def cpu_slot(value_size: int) -> int:
    """The bytes one CPU's value takes in a per-CPU map's buffer (the kernel aligns each to 8)."""
    return (value_size + 7) & ~7


class MapLayout(NamedTuple):
    """What an element call on a map needs to know: ``value_bytes`` is the size of the buffer
    one value occupies (per-CPU maps: one 8-byte aligned slot per possible CPU)."""

    type: int
    key_size: int
    value_size: int
    value_bytes: int


def layout_of(map_type: int, key_size: int, value_size: int) -> MapLayout:
    """The layout of a map of this type and sizes."""
    value_bytes = value_size
    if map_type in PER_CPU_MAP_TYPES:
        value_bytes = cpu_slot(value_size) * possible_cpus()
    return MapLayout(map_type, key_size, value_size, value_bytes)


# A map's fd with its layout as the hot path unpacks it: (fd, key_size, value_size,
# value_bytes, stride, percpu).  A plain tuple, not a NamedTuple: unpacking a tuple subclass
# takes CPython's generic path, which costs the hot path a few percent.  ``stride`` is a CPU's
# slot; ``percpu`` False (lowlevel) treats a per-CPU value as one raw buffer of value_bytes.
Bound = tuple[int, int, int, int, int, bool]


def bind(fd: int, layout: MapLayout, *, split_cpus: bool = True) -> Bound:
    """``layout`` on ``fd``; ``split_cpus``: per-CPU values as one item per CPU."""
    percpu = split_cpus and layout.type in PER_CPU_MAP_TYPES
    stride = cpu_slot(layout.value_size) if percpu else layout.value_bytes
    return (fd, layout.key_size, layout.value_size, layout.value_bytes, stride, percpu)


@functools.lru_cache(maxsize=256)
def cutter(size: int, skip: int, count: int) -> struct.Struct:
    """A format compiled once that cuts ``count`` pieces of ``size`` bytes, each followed by
    ``skip`` bytes of padding, out of a buffer as ``bytes`` (in C: no Python step per piece)."""
    return struct.Struct(f"{size}s{skip}x" * count if skip else f"{size}s" * count)


def per_cpu(raw: bytes, value_size: int, stride: int) -> list[bytes]:
    """A per-CPU map's value buffer as one value per possible CPU."""
    return [*cutter(value_size, stride - value_size, len(raw) // stride).unpack_from(raw)]


# ------------------------------------------------------------------------------------- C calls

class _Functions:
    """The element-operation functions, resolved once (the hot path skips every lookup)."""

    def __getattr__(self, name: str) -> Any:
        lib = _ffi.lib()
        self.lookup = lib.bpf_map_lookup_elem
        self.update = lib.bpf_map_update_elem
        self.delete = lib.bpf_map_delete_elem
        return self.__dict__[name]


_fns = _Functions()
_tls = threading.local()


def _value_buffer(size: int) -> Any:
    """A per-thread, per-size output buffer: ctypes releases the GIL during the syscall, so a
    buffer shared between threads could be overwritten before its contents are copied out."""
    try:
        return _tls.buffers[size]
    except AttributeError:
        _tls.buffers = {}
    except KeyError:
        pass
    buf = _tls.buffers[size] = ctypes.create_string_buffer(size)
    return buf


# ------------------------------------------------------------------------------------- hot path

# What the element calls of one bound map need, built once per binding (:func:`_hot_path`):
# (bound, fd, key_size, key_pack, value_pack, value_repeat, value_bytes, percpu_unpack, buffers,
# lookup, update, delete).  ``bound`` is the map's ``_bound`` tuple it was built from: a call uses
# it only while ``self._bound`` is still that very tuple, so a closed (``None``) or re-bound map
# falls through to the checked path.  ``key_pack``/``value_pack`` encode an int key/value of a
# common size (None otherwise); ``value_repeat`` copies one per-CPU slot to every CPU (1 when the
# value is not per CPU).  ``buffers`` is the map's pool of output buffers: a call pops one and
# puts it back, so two threads never share one while ctypes has released the GIL for the
# syscall (``list.pop``/``append`` are atomic).  The three functions are libbpf's with no
# argtypes: ctypes then converts the fd (a Python int), the key and value (``bytes``) and the
# buffer straight from their types, which costs less than going through ``argtypes``; 64-bit
# flags go as a ``c_uint64`` (a bare Python int would be passed as a 32-bit C int).
Hot = tuple[Bound, int, int, Any, Any, int, int, Any, list[Any], Any, Any, Any]

_NOT_BOUND: Bound = (-1, 0, 0, 0, 0, False)  # no map's _bound is this very tuple
_COLD: Hot = (_NOT_BOUND, -1, 0, None, None, 1, 0, None, [], None, None, None)
_NO_FLAGS = ctypes.c_uint64(0)
_ANY = UpdateFlags.ANY
_StructError = struct.error
_new_buffer = ctypes.create_string_buffer

# struct codes of the sizes an int is packed at inline (native order and standard sizes)
_INT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


class _BareFunctions:
    """libbpf's element functions without argtypes (each its own function pointer, so the
    argtyped ones that every other caller uses are untouched)."""

    def __getattr__(self, name: str) -> Any:
        cdll = _ffi.lib().cdll
        self.lookup = cdll["bpf_map_lookup_elem"]
        self.update = cdll["bpf_map_update_elem"]
        self.delete = cdll["bpf_map_delete_elem"]
        for fn in (self.lookup, self.update, self.delete):
            fn.restype = ctypes.c_int
        return self.__dict__[name]


_bare = _BareFunctions()


def _hot_path(bound: Bound) -> Hot:
    """The hot-path tuple of ``bound`` (see :data:`Hot`)."""
    fd, ks, vs, total, stride, percpu = bound
    key_code = _INT_CODES.get(ks)
    key_pack = struct.Struct("=" + key_code).pack if key_code else None
    value_code = _INT_CODES.get(vs)
    value_pack = unpack = None
    repeat = 1
    if percpu:
        ncpu = total // stride
        if value_code:
            value_pack = struct.Struct("=" + value_code + "x" * (stride - vs)).pack
            repeat = ncpu
        unpack = cutter(vs, stride - vs, ncpu).unpack_from
    elif value_code and total == vs:
        value_pack = struct.Struct("=" + value_code).pack
    return (bound, fd, ks, key_pack, value_pack, repeat, total, unpack, [],
            _bare.lookup, _bare.update, _bare.delete)


# ------------------------------------------------------------------------------------- operations

class Elements:
    """The element operations: one system call each, every size checked before it.

    A subclass provides ``_bound`` (the map's ``Bound`` tuple, ``None`` until :meth:`_bind` has
    computed it and again once the map is closed, so one attribute read guards the hot path),
    :meth:`_bind` and ``_label`` (how messages name the map).
    """

    _what = "BPF map"
    _bound: Bound | None

    def _bind(self) -> Bound:
        raise NotImplementedError

    @property
    def _label(self) -> str:
        raise NotImplementedError

    def _fail(self, rc: int, what: str) -> OSError:
        if self._bound is None:  # closed by another thread while this call was in flight
            return ClosedError(self._what)
        err = -rc if rc < 0 else (ctypes.get_errno() or _errno.EINVAL)
        return error_from_errno(err, f"{what} in {self._label} failed")

    def _key(self, key: Any, ks: int) -> bytes | None:
        if ks == 0:  # queue, stack, bloom filter: the kernel wants a NULL key
            if key is not None and key != b"":
                raise ValueError(f"{self._label} has no keys (queue, stack or bloom filter): "
                                 "pass None")
            return None
        if type(key) is bytes and len(key) == ks:
            return key
        return to_bytes(key, ks, "key")

    def _value(self, value: Any, bound: Bound) -> bytes:
        _fd, _ks, vs, total, stride, percpu = bound
        if type(value) is bytes and len(value) == total:
            return value
        if not percpu:
            return to_bytes(value, total, "value")
        ncpu = total // stride
        if isinstance(value, (list, tuple)):
            if len(value) != ncpu:
                raise ValueError(f"per-CPU {self._label} needs {ncpu} values (one per possible "
                                 f"CPU), got {len(value)}")
            parts = value
        else:
            parts = [value] * ncpu
        pad = b"\0" * (stride - vs)
        return b"".join(to_bytes(v, vs, "value") + pad for v in parts)

    # The three hot operations: a fast path for a bound map with no flags (``_hot``, see
    # :data:`Hot`: every size still checked, ints packed by a compiled format) and the checked
    # path for everything else (first call, closed map, flags, queue/stack maps, lowlevel fds).
    # A ``bytes`` key of the right size is taken as it is, with no call; any other key goes
    # through :meth:`_hot_key`.

    _hot: Hot = _COLD
    _keeps_hot = True  # False: a throwaway object (lowlevel) that would rebuild it every call

    def _warm(self, bound: Bound) -> None:
        if self._keeps_hot and bound[1] != 0:
            self._hot = _hot_path(bound)

    def _hot_key(self, key: Any, ks: int, key_pack: Any) -> bytes | None:
        """A key on the fast path that is not ``bytes`` of the key size: an int through the
        map's compiled packer (negative or too large: :func:`to_bytes` says which), anything
        else through :meth:`_key`."""
        if type(key) is int and key_pack is not None:
            try:
                return key_pack(key)  # type: ignore[no-any-return]
            except _StructError:
                return to_bytes(key, ks, "key")
        return self._key(key, ks)

    def lookup(self, key: KeyLike | None, flags: int = 0) -> Any:
        """The value at ``key`` (``bytes``; a list of ``bytes`` per CPU for per-CPU maps;
        ``None`` peeks at a queue or stack).

        Raises :class:`KeyError` when the key is absent.
        """
        bound, fd, ks, key_pack, _vp, _vr, total, unpack, buffers, call, _u, _d = self._hot
        if bound is not self._bound or flags.__class__ is not int or flags:
            return self._lookup_checked(key, flags)
        kb = key if type(key) is bytes and len(key) == ks else self._hot_key(key, ks, key_pack)
        try:
            buf = buffers.pop()
        except IndexError:
            buf = _new_buffer(total)
        rc = call(fd, kb, buf)
        if rc < 0:
            buffers.append(buf)
            if rc == -_errno.ENOENT:
                raise KeyError(key)
            raise self._fail(rc, "lookup")
        value = buf.raw if unpack is None else [*unpack(buf)]  # [*...]: cheaper than list()
        buffers.append(buf)
        return value

    def _lookup_decoded(self, key: KeyLike | None, decode: Callable[[Any], Any],
                        general: Callable[[Any], Any]) -> Any:
        """``decode`` of the value at ``key`` read straight from the lookup's buffer, with no
        ``bytes`` made (typed views whose decoder copies all it takes out of the buffer: a
        flat codec's); off the hot path (per-CPU maps, a map not bound yet) ``general`` of
        what :meth:`lookup` returns.  Raises as :meth:`lookup` does."""
        bound, fd, ks, key_pack, _vp, _vr, total, unpack, buffers, call, _u, _d = self._hot
        if bound is not self._bound or unpack is not None:
            return general(self.lookup(key))
        kb = key if type(key) is bytes and len(key) == ks else self._hot_key(key, ks, key_pack)
        try:
            buf = buffers.pop()
        except IndexError:
            buf = _new_buffer(total)
        try:
            rc = call(fd, kb, buf)
            if rc < 0:
                if rc == -_errno.ENOENT:
                    raise KeyError(key)
                raise self._fail(rc, "lookup")
            return decode(buf)
        finally:
            buffers.append(buf)

    def _lookup_checked(self, key: KeyLike | None, flags: int) -> Any:
        bound = self._bound or self._bind()
        self._warm(bound)
        fd, ks, vs, total, stride, percpu = bound
        kb = key if type(key) is bytes and len(key) == ks != 0 else self._key(key, ks)
        buf = _value_buffer(total)
        if flags.__class__ is not int or not 0 <= flags <= _U64_MAX:
            flags = _args.u64(flags, "flags")
        rc = (_fns.lookup(fd, kb, buf) if not flags
              else _ffi.lib().bpf_map_lookup_elem_flags(fd, kb, buf, flags))
        if rc < 0:
            if rc == -_errno.ENOENT:
                raise KeyError(key)
            raise self._fail(rc, "lookup")
        return buf.raw if not percpu else per_cpu(buf.raw, vs, stride)

    def update(self, key: KeyLike | None, value: ValueLike,
               flags: UpdateFlags | int = UpdateFlags.ANY) -> None:
        """Store ``value`` at ``key``.  ``flags``: ANY, NOEXIST (create only), EXIST (replace only).

        A full map raises :class:`~pylibbpf.BpfError` with errno E2BIG; NOEXIST on a present
        key EEXIST; EXIST on an absent key ENOENT.
        """
        bound, fd, ks, key_pack, value_pack, repeat, total, _up, _b, _l, call, _d = self._hot
        if bound is not self._bound or flags is not _ANY and (flags.__class__ is not int
                                                              or flags):
            return self._update_checked(key, value, flags)
        kb = key if type(key) is bytes and len(key) == ks else self._hot_key(key, ks, key_pack)
        if type(value) is bytes and len(value) == total:
            vb = value
        elif type(value) is int and value_pack is not None:
            try:
                vb = value_pack(value) * repeat
            except _StructError:
                vb = self._value(value, bound)
        else:
            vb = self._value(value, bound)
        rc = call(fd, kb, vb, _NO_FLAGS)
        if rc < 0:
            raise self._fail(rc, "update")
        return None

    def _update_checked(self, key: KeyLike | None, value: ValueLike,
                        flags: UpdateFlags | int) -> None:
        bound = self._bound or self._bind()
        self._warm(bound)
        fd, ks, _vs, total, _stride, _percpu = bound
        kb = key if type(key) is bytes and len(key) == ks != 0 else self._key(key, ks)
        vb = value if type(value) is bytes and len(value) == total else self._value(value, bound)
        if (flags.__class__ is not int and flags.__class__ is not UpdateFlags
                or not 0 <= flags <= _U64_MAX):
            flags = _args.u64(flags, "flags")
        rc = _fns.update(fd, kb, vb, flags)
        if rc < 0:
            raise self._fail(rc, "update")

    def delete(self, key: KeyLike) -> None:
        """Remove ``key``; :class:`KeyError` when absent."""
        bound, fd, ks, key_pack, _vp, _vr, _t, _up, _b, _l, _u, call = self._hot
        if bound is not self._bound:
            return self._delete_checked(key)
        kb = key if type(key) is bytes and len(key) == ks else self._hot_key(key, ks, key_pack)
        rc = call(fd, kb)
        if rc < 0:
            if rc == -_errno.ENOENT:
                raise KeyError(key)
            raise self._fail(rc, "delete")
        return None

    def _delete_checked(self, key: KeyLike) -> None:
        bound = self._bound or self._bind()
        self._warm(bound)
        fd, ks, _vs, _total, _stride, _percpu = bound
        rc = _fns.delete(fd, self._key(key, ks))
        if rc < 0:
            if rc == -_errno.ENOENT:
                raise KeyError(key)
            raise self._fail(rc, "delete")

    def lookup_and_delete(self, key: KeyLike | None = None) -> Any:
        """Atomically read and remove ``key`` (queue/stack maps: pop, with ``key=None``)."""
        fd, ks, vs, total, stride, percpu = self._bound or self._bind()
        kb = None if key is None else self._key(key, ks)
        buf = ctypes.create_string_buffer(total)
        rc = _ffi.lib().bpf_map_lookup_and_delete_elem(fd, kb, buf)
        if rc < 0:
            if rc == -_errno.ENOENT:
                raise KeyError(key)
            raise self._fail(rc, "lookup_and_delete")
        return buf.raw if not percpu else per_cpu(buf.raw, vs, stride)

    def get_next_key(self, key: KeyLike | None = None) -> bytes | None:
        """The key after ``key`` (the first key for ``None``), or ``None`` at the end.

        A key that is not in the map also gives the first key (the kernel's rule).
        """
        fd, ks, _vs, _total, _stride, _percpu = self._bound or self._bind()
        if ks == 0:
            raise ValueError(f"{self._label} has no keys (queue, stack or bloom filter)")
        kb = None if key is None else self._key(key, ks)
        out = ctypes.create_string_buffer(ks)
        rc = _ffi.lib().bpf_map_get_next_key(fd, kb, out)
        if rc < 0:
            if rc == -_errno.ENOENT:
                return None
            raise self._fail(rc, "get_next_key")
        return out.raw


class FdElements(Elements):
    """The element operations on a plain map fd, as :mod:`pylibbpf.lowlevel` offers them: a
    per-CPU value is the kernel's raw buffer (one 8-byte aligned slot per possible CPU)."""

    _keeps_hot = False

    def __init__(self, fd: int, layout: MapLayout) -> None:
        self._fd = fd
        self._bound = bind(fd, layout, split_cpus=False)

    @property
    def _label(self) -> str:
        return f"map fd {self._fd}"
