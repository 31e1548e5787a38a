"""``Object``: a BPF ELF object (libbpf's ``struct bpf_object``) with its programs and maps.

The life of an object follows libbpf's: :meth:`Object.open_file`/:meth:`Object.open_mem` give an
*opened* object whose programs and maps can still be configured; :meth:`Object.load` creates the
maps and loads the programs into the kernel, in place; :meth:`Object.close` frees it all.  With
libbpf >= 1.6, :meth:`Object.prepare` does the first half of the load alone: the object is then
*prepared*, its maps exist (their fds, elements and global data can be used) and its programs
can still be configured until :meth:`Object.load`.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from . import _ffi
from ._args import cpath
from ._ffi.printcb import capture
from ._handle import Handle
from ._open import call_open, check_regular, name_from_path, open_opts, validate_blob
from .elf.errors import ElfError
from .elf.validate import read_object_file
from .errors import (
    BpfError,
    MalformedObjectError,
    NotSupportedError,
    StateError,
    error_from_errno,
)
from .link import Link
from .load_errors import last_warning, load_error
from .map import ObjectMap
from .program import Program

if TYPE_CHECKING:
    from ._verdicts import Verdict
    from .global_data import GlobalData

_W = TypeVar("_W", Program, ObjectMap)



def _close_object(ptr: Any, links: dict[str, Link]) -> None:
    # the links attach() made go first: a USDT link uses the object's USDT manager
    for link in links.values():
        link.destroy()
    links.clear()
    _ffi.lib().bpf_object__close(ptr)


class Object(Handle):
    """A BPF object file opened with libbpf: many programs and many maps.

    Create one with :meth:`open_file` or :meth:`open_mem`; configure programs and maps; then
    :meth:`load`.  Use it as a context manager, or call :meth:`close`.
    """

    _what = "BPF object"

    def __init__(self, ptr: Any, *, source: str | bytes | None, data: bytes | None,
                 log_buf: Any = None, verdict: Verdict | None = None) -> None:
        super().__init__()
        self._verdict = verdict  # the validator's findings (None: opened without validation)
        self._ptr = ptr
        self._source = source  # the path (str, or bytes decoded when asked for)
        self._data = data  # open_mem: libbpf keeps pointers into it until close
        self._log_buf = log_buf  # kernel_log_buf: libbpf keeps the pointer until load
        self._globals: dict[str, GlobalData] | None = None  # made by the first global_data()
        links: dict[str, Link] = {}  # what attach() made, by program name; freed with us
        self._links = links
        self._life.name = self._read_name()
        self._own(lambda: _close_object(ptr, links), f"BPF object {self._life.name!r}")
        # The Program and ObjectMap wrappers are made on first use: an open + load + close
        # that never looks at them does not pay for them.
        self._program_wrappers: MappingProxyType[str, Program] | None = None
        self._map_wrappers: MappingProxyType[str, ObjectMap] | None = None

    @property
    def _programs(self) -> MappingProxyType[str, Program]:
        if self._program_wrappers is None:
            found = self._wrap_all("bpf_object__next_program",
                                   lambda p: Program(self, self._life, p))
            if self._program_wrappers is None:  # another thread may have been first
                self._program_wrappers = found
        return self._program_wrappers

    @property
    def _maps(self) -> MappingProxyType[str, ObjectMap]:
        if self._map_wrappers is None:
            found = self._wrap_all("bpf_object__next_map",
                                   lambda p: ObjectMap(self, self._life, p))
            if self._map_wrappers is None:  # another thread may have been first
                self._map_wrappers = found
        return self._map_wrappers

    def _wrap_all(self, next_fn: str, wrap: Callable[[Any], _W]) -> MappingProxyType[str, _W]:
        """Every program or map of the object (libbpf's ``next_fn`` walk), wrapped and keyed
        by name, in ELF order."""
        ptr = self._p  # ClosedError rather than a walk of freed memory
        step = getattr(_ffi.lib(), next_fn)
        found: dict[str, _W] = {}
        item = step(ptr, None)
        while item:
            wrapper = wrap(item)
            found[wrapper.name] = wrapper
            item = step(ptr, item)
        return MappingProxyType(found)

    # ----------------------------------------------------------------------------- opening

    @classmethod
    def open_file(
        cls,
        path: str | os.PathLike[str],
        *,
        object_name: str | None = None,
        btf_custom_path: str | os.PathLike[str] | None = None,
        kconfig: str | None = None,
        pin_root_path: str | os.PathLike[str] | None = None,
        kernel_log_level: int = 0,
        kernel_log_buf: int | bytearray | None = None,
        validate: bool = True,
    ) -> Object:
        """Open a BPF ELF object file (``bpf_object__open_file``).

        ``kernel_log_buf`` is a size in bytes (pylibbpf allocates the buffer) or a ``bytearray``
        that receives the kernel's verifier and BTF logs during :meth:`load`; read it back with
        :attr:`kernel_log`.  ``kernel_log_level`` is libbpf's (1, 2, or 4 for stats).

        The file must be a regular file (a FIFO or device raises
        :class:`MalformedObjectError` with errno EINVAL instead of blocking or reading without
        end) of at most :data:`~pylibbpf.elf.validate.MAX_OBJECT_SIZE` bytes.  With
        ``validate`` (the default) pylibbpf reads it once, checks it with
        :func:`pylibbpf.elf.validate.validate_object` (a malformed object raises
        :class:`MalformedObjectError`, errno ENOEXEC, where libbpf's parser could crash) and
        hands libbpf those same bytes; ``validate=False`` lets libbpf read and parse the file
        alone.
        """
        fspath = cpath(path)

        def context() -> str:
            return f"failed to open BPF object {os.fsdecode(fspath)!r}"

        if not validate:
            check_regular(fspath, context())
            opts, log_buf = open_opts(object_name, btf_custom_path, kconfig,
                                      pin_root_path, kernel_log_level, kernel_log_buf)
            ptr = call_open(context, "bpf_object__open_file", fspath, ctypes.byref(opts))
            return cls(ptr, source=fspath, data=None, log_buf=log_buf)
        try:
            blob = read_object_file(fspath)
        except ElfError as exc:
            raise MalformedObjectError(_errno.EINVAL, f"{context()}: {exc}") from None
        except OSError as exc:
            raise error_from_errno(exc.errno, f"{context()}: {exc.strerror}") from None
        name: str | bytes = object_name if object_name is not None else \
            name_from_path(fspath)
        verdict = validate_blob(blob, name, context)
        opts, log_buf = open_opts(name, btf_custom_path, kconfig, pin_root_path,
                                  kernel_log_level, kernel_log_buf)
        ptr = call_open(context, "bpf_object__open_mem", blob, len(blob), ctypes.byref(opts))
        return cls(ptr, source=fspath, data=blob, log_buf=log_buf, verdict=verdict)

    @classmethod
    def open_mem(
        cls,
        data: bytes | bytearray | memoryview,
        *,
        object_name: str | None = None,
        btf_custom_path: str | os.PathLike[str] | None = None,
        kconfig: str | None = None,
        pin_root_path: str | os.PathLike[str] | None = None,
        kernel_log_level: int = 0,
        kernel_log_buf: int | bytearray | None = None,
        validate: bool = True,
    ) -> Object:
        """Open a BPF ELF object from bytes in memory (``bpf_object__open_mem``).

        With ``validate`` (the default) the bytes are checked first, as :meth:`open_file`
        does; ``validate=False`` gives them to libbpf's parser alone.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"open_mem needs bytes, a bytearray or a memoryview, not "
                            f"{type(data).__name__}")
        blob = bytes(data)
        if not blob:
            raise ValueError("open_mem needs a non-empty ELF image")
        opts, log_buf = open_opts(object_name, btf_custom_path, kconfig, pin_root_path,
                                  kernel_log_level, kernel_log_buf)

        def context() -> str:
            return f"failed to open BPF object {object_name or f'<{len(blob)} bytes in memory>'}"

        verdict = validate_blob(blob, object_name or "", context) if validate else None
        ptr = call_open(context, "bpf_object__open_mem", blob, len(blob), ctypes.byref(opts))
        return cls(ptr, source=None, data=blob, log_buf=log_buf, verdict=verdict)

    # ----------------------------------------------------------------------------- state

    @property
    def _p(self) -> Any:
        if self._closed:
            self._check()
        return self._ptr

    def close(self) -> None:
        """Free the object, its programs and its maps (links the object owns are destroyed)."""
        if self._life.closed:
            return
        if self._globals:
            for view in self._globals.values():
                view.close()
        super().close()  # runs the close callbacks of what borrows from it (maps, USDT links)
        self._ptr = None
        self._log_buf = None

    def _read_name(self) -> str:
        raw = _ffi.lib().bpf_object__name(self._ptr)
        return raw.decode("utf-8", "surrogateescape") if raw else ""

    @property
    def name(self) -> str:
        """The object's name (the file's base name without ``.o``, or ``object_name``)."""
        self._check()
        return self._read_name()

    @property
    def path(self) -> Path | None:
        """The file the object was opened from (``None`` for :meth:`open_mem`)."""
        source = self._source
        return None if source is None else Path(
            source if type(source) is str else os.fsdecode(source))

    @property
    def loaded(self) -> bool:
        """True after a successful :meth:`load`."""
        return self._life.loaded

    @property
    def kversion(self) -> int:
        """The kernel version the object declares (its ``version`` section), or 0."""
        return int(_ffi.lib().bpf_object__kversion(self._p))

    @property
    def btf_fd(self) -> int:
        """The fd of the object's BTF in the kernel (after load), or -1."""
        return int(_ffi.lib().bpf_object__btf_fd(self._p))

    @property
    def kernel_log(self) -> str:
        """What the kernel wrote into ``kernel_log_buf`` (empty when none was given)."""
        if self._log_buf is None:
            return ""
        return bytes(self._log_buf).split(b"\0", 1)[0].decode("utf-8", "replace")

    def elf_bytes(self) -> bytes:
        """The ELF image the object was opened from (read from disk for :meth:`open_file`)."""
        if self._data is not None:
            return self._data
        path = self.path
        assert path is not None
        return path.read_bytes()

    # ----------------------------------------------------------------------------- contents

    @property
    def programs(self) -> Mapping[str, Program]:
        """Read-only mapping of program name to :class:`Program`, in ELF order."""
        self._check()
        return self._programs

    @property
    def maps(self) -> Mapping[str, ObjectMap]:
        """Read-only mapping of map name to :class:`ObjectMap` (internal maps included), in ELF
        order."""
        self._check()
        return self._maps

    def __iter__(self) -> Iterator[Program]:
        return iter(self.programs.values())

    def find_program_by_name(self, name: str) -> Program:
        """The program called ``name``; :class:`KeyError` (listing the names) if none is."""
        self._check()
        try:
            return self._programs[name]
        except KeyError:
            raise KeyError(f"no program {name!r} in object {self.name!r}; "
                           f"it has: {', '.join(self._programs) or 'none'}") from None

    def find_map_by_name(self, name: str) -> ObjectMap:
        """The map called ``name``; :class:`KeyError` (listing the names) if none is.

        Internal maps can be found by their libbpf name (``"obj.bss"``) or their section
        name (``".bss"``), as ``bpf_object__find_map_by_name`` allows.
        """
        self._check()
        found = self._maps.get(name)
        if found is None:
            for m in self._maps.values():
                if m.is_internal and m.name.endswith(name) and name.startswith("."):
                    return m
            raise KeyError(f"no map {name!r} in object {self.name!r}; "
                           f"it has: {', '.join(self._maps) or 'none'}")
        return found

    def find_map_fd_by_name(self, name: str) -> int:
        """The fd of the map called ``name`` (after load)."""
        return self.find_map_by_name(name).fd

    # ----------------------------------------------------------------------------- load

    def load(self) -> Object:
        """Create the maps and load the programs into the kernel (``bpf_object__load``).

        Returns the object itself.  A program the verifier rejects raises
        :class:`~pylibbpf.errors.VerifierError` carrying the complete verifier log.
        """
        life = self._life
        if life.closed:
            self._check()
        if life.loaded:
            raise StateError(_errno.EBUSY, f"BPF object {self.name!r} is already loaded")
        verdict = self._verdict
        if (not life.prepared and (verdict is None or verdict.struct_ops_link)
                and _ffi.version() < (1, 2)):
            self._check_struct_ops_link()  # a validated object without the section passes
        with capture() as messages:
            try:
                _ffi.lib().bpf_object__load(self._ptr)
            except BpfError as exc:
                life.loaded = True  # libbpf refuses a second load of a failed object
                raise self._load_error(exc.errno or _errno.EINVAL, messages) from None
        life.loaded = True
        return self

    def prepare(self) -> Object:
        """The first half of :meth:`load` (``bpf_object__prepare``, libbpf >= 1.6): resolve
        externs, apply CO-RE relocations, load the BTF and create the maps, but load no
        program yet; :meth:`load` then loads the programs.

        Between the two, programs can still be configured (autoload, log level...), and a
        failure is reported as :meth:`load` reports it.  Without libbpf 1.6 it raises
        :class:`~pylibbpf.NotSupportedError`.  Returns the object itself.
        """
        ptr = self._p
        if self._life.loaded or self._life.prepared:
            raise StateError(_errno.EBUSY, f"BPF object {self.name!r} is already "
                             f"{self._life.state}")
        if not _ffi.has("bpf_object__prepare"):
            raise NotSupportedError(f"Object.prepare() needs libbpf >= 1.6 "
                                    f"(bpf_object__prepare); the loaded libbpf is "
                                    f"{'.'.join(map(str, _ffi.version()))}")
        with capture() as messages:
            try:
                _ffi.lib().bpf_object__prepare(ptr)
            except BpfError as exc:
                self._life.loaded = True  # libbpf refuses a load after a failed prepare
                raise self._load_error(exc.errno or _errno.EINVAL, messages) from None
        self._life.prepared = True
        return self

    @property
    def prepared(self) -> bool:
        """True after a successful :meth:`prepare` (and before :meth:`load`)."""
        return self._life.state == "prepared"

    @property
    def state(self) -> str:
        """``"opened"``, ``"prepared"`` (after :meth:`prepare`) or ``"loaded"``."""
        self._check()
        return self._life.state

    def _check_struct_ops_link(self) -> None:
        """libbpf before 1.2 skips a ``.struct_ops.link`` section without a word, and then fails
        to load its programs (ENOTSUPP): say what is missing instead."""
        if _ffi.version() >= (1, 2):
            return
        if self._verdict is not None:  # validated at open: the same parse answers
            found = sorted(set(self._verdict.struct_ops_link))
        else:
            from .elf.reader import read_elf

            try:
                sections = {sec.name for sec in read_elf(self.elf_bytes(), strict=False).sections}
            except (ElfError, OSError):
                return
            found = sorted(name for name in sections
                           if name.lstrip("?") == ".struct_ops.link")
        if found:
            raise NotSupportedError(
                f"object {self.name!r} has struct_ops maps in SEC(\".struct_ops.link\"), which "
                f"need libbpf >= 1.2; the loaded libbpf is "
                f"{'.'.join(map(str, _ffi.version()))} (declare them in SEC(\".struct_ops\") "
                f"for an older libbpf)")

    def _load_error(self, err: int, messages: list[str]) -> BpfError:
        return load_error(err, messages, object_name=self.name,
                          kernel_log=self.kernel_log if self._log_buf is not None else "",
                          maps=self._maps, programs=self._programs)

    # ----------------------------------------------------------------------------- attach

    def attach(self) -> Object:
        """Attach every program that can auto-attach, as a libbpf skeleton's
        ``bpf_object__attach_skeleton`` does, and keep the links (:attr:`links`).

        Skipped, not failed: programs not loaded (autoload off) or with autoattach off,
        section types with no auto-attach (``xdp``, ``tc``, ``socket``, ``sk_skb`` ...), and
        sections that name no target (a bare ``SEC("uprobe")``, ``SEC("usdt")``,
        ``SEC("ksyscall")``...): attach those yourself.  A program already in :attr:`links` is
        left as it is, so calling ``attach()`` again attaches only what is new.

        Then every struct_ops map (created, autoattach on) is attached with
        :meth:`ObjectMap.attach_struct_ops`, its link kept under the map's name, as libbpf
        >= 1.5's skeleton does; pylibbpf does it with every libbpf release.

        A failing attach raises with the program's name and libbpf's reason; the links this
        call made are destroyed first, so the object is as it was.  The links are destroyed
        by :meth:`detach` or :meth:`close`.  Returns the object itself.
        """
        self._life.require_loaded(f"attaching the programs of {self.name!r}")
        made: dict[str, Link] = {}
        try:
            for name, program in self._programs.items():
                if name in self._links:
                    continue
                link = program._auto_attach()
                if link is not None:
                    made[name] = link
            for name, bpf_map in self._maps.items():
                if name not in self._links and bpf_map._auto_attaches():
                    made[name] = bpf_map.attach_struct_ops()
        except BaseException:
            for link in made.values():
                link.destroy()
            raise
        self._links.update(made)
        return self

    def detach(self) -> None:
        """Destroy the links :meth:`attach` made (``bpf_object__detach_skeleton``)."""
        self._check()
        links = list(self._links.values())
        self._links.clear()
        for link in links:
            link.destroy()

    @property
    def links(self) -> Mapping[str, Link]:
        """Read-only mapping of program name (or struct_ops map name) to the :class:`Link`
        :meth:`attach` made."""
        self._check()
        return MappingProxyType(self._links)

    # ----------------------------------------------------------------------------- pinning

    def _pin_call(self, func: str, path: str | os.PathLike[str] | None, what: str) -> None:
        if func.endswith("_maps"):
            self._life.require_maps(what)  # the maps exist once prepared
        else:
            self._life.require_loaded(what)
        arg = None if path is None else os.fsencode(path)
        with capture() as messages:
            try:
                getattr(_ffi.lib(), func)(self._p, arg)
            except BpfError as exc:
                detail = last_warning(messages)
                raise error_from_errno(
                    exc.errno, f"failed to {what} of {self.name!r}"
                    f"{' at ' + os.fsdecode(path) if path is not None else ''}"
                    f"{': ' + detail if detail else ''}") from None

    def pin_maps(self, path: str | os.PathLike[str] | None = None) -> None:
        """Pin every map under the folder ``path`` (or each map's own pin path if ``None``).

        On failure the maps pinned so far are unpinned by libbpf, and each map's pin path is
        restored to what it was, so a failed call can simply be retried elsewhere.
        """
        lib = _ffi.lib()
        ptr = self._p
        before = []
        bpf_map = lib.bpf_object__next_map(ptr, None)
        while bpf_map:
            before.append((bpf_map, lib.bpf_map__pin_path(bpf_map)))
            bpf_map = lib.bpf_object__next_map(ptr, bpf_map)
        try:
            self._pin_call("bpf_object__pin_maps", path, "pin the maps")
        except BpfError:
            for bpf_map, old in before:
                if not lib.bpf_map__is_pinned(bpf_map):  # libbpf unpinned it again: restore
                    lib.bpf_map__set_pin_path(bpf_map, old)
            raise

    def unpin_maps(self, path: str | os.PathLike[str] | None = None) -> None:
        """Remove the pins :meth:`pin_maps` made."""
        self._pin_call("bpf_object__unpin_maps", path, "unpin the maps")

    def pin_programs(self, path: str | os.PathLike[str]) -> None:
        """Pin every program under the folder ``path`` (one file per program name)."""
        self._pin_call("bpf_object__pin_programs", path, "pin the programs")

    def unpin_programs(self, path: str | os.PathLike[str]) -> None:
        """Remove the pins :meth:`pin_programs` made."""
        self._pin_call("bpf_object__unpin_programs", path, "unpin the programs")

    # ----------------------------------------------------------------------------- globals

    def global_data(self, section: str) -> GlobalData:
        """The global variables of ``section`` (``".bss"``, ``".data"``, ``".rodata"``,
        ``".data.custom"``...), readable and writable by name.  See :class:`GlobalData`."""
        self._check()
        views = self._globals
        if views is None:
            views = self._globals = {}
        view = views.get(section)
        if view is None:
            from .global_data import GlobalData

            view = GlobalData(self, self._life, section)
            views[section] = view
        return view

    @property
    def bss(self) -> GlobalData:
        """The ``.bss`` variables (shortcut for ``global_data(".bss")``)."""
        return self.global_data(".bss")

    @property
    def data(self) -> GlobalData:
        """The ``.data`` variables."""
        return self.global_data(".data")

    @property
    def rodata(self) -> GlobalData:
        """The ``.rodata`` variables (settable before load, read-only after)."""
        return self.global_data(".rodata")

    def __repr__(self) -> str:
        if self._closed:
            return "<Object closed>"
        state = self._life.state
        return (f"<Object {self.name!r} {state}: {len(self._programs)} programs, "
                f"{len(self._maps)} maps>")
