"""The fuzz targets: one function per target taking the fuzzer's bytes.

Each target calls one of pylibbpf's parsers or loaders on the input and lets through only the
exceptions the API documents for bad input (an ``OSError`` subclass carrying ``errno``, or a
``ValueError`` such as :class:`pylibbpf.elf.ElfError`).  Anything else escaping, a wrong
round-trip, or a crash of the process (a segfault in libbpf) is a finding.

Run one under atheris with ``python -m fuzz.targets TARGET [libFuzzer options] [corpus...]``
(the runner ``python -m fuzz`` does that for you), or replay saved inputs without atheris with
``python -m fuzz.targets TARGET --replay FILE...``.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import struct
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["TARGETS", "Finding", "guarded", "main", "replay", "signature"]


class Finding(AssertionError):
    """The target broke a documented guarantee (wrong result, undocumented exception)."""


def _documented(exc: BaseException, allowed: tuple[type[BaseException], ...], what: str) -> None:
    if isinstance(exc, allowed):
        if isinstance(exc, OSError) and not exc.errno:
            raise Finding(f"{what} raised {type(exc).__name__} without an errno: {exc}") from exc
        return
    raise Finding(f"{what} raised an undocumented {type(exc).__name__}: {exc!r}") from exc


# ------------------------------------------------------------------------------ open_mem

def fuzz_open_mem(data: bytes) -> None:
    """``pylibbpf.Object.open_mem`` (libbpf's own parser, in C), then every getter."""
    import pylibbpf

    if not data:
        return
    try:
        obj = pylibbpf.Object.open_mem(data, object_name="fuzz")
    except BaseException as exc:  # noqa: BLE001 - classified below
        _documented(exc, (pylibbpf.BpfError, ValueError), "Object.open_mem")
        return
    with obj:
        for prog in obj.programs.values():
            _ = (prog.name, prog.section_name, prog.type, prog.expected_attach_type,
                 prog.autoload, prog.insn_cnt)
            bytes(prog.insns)
        for m in obj.maps.values():
            _ = (m.name, m.type, m.key_size, m.value_size, m.max_entries, m.flags,
                 m.is_internal, m.pin_path)
            if m.is_internal:
                _initial_value(m)


_COPY_LIMIT = 64 << 20


def _initial_value(m: Any) -> None:
    """``Map.initial_value``: a section declaring more than a map value can hold (a tiny
    ``.bss`` header claiming gigabytes) raises its documented E2BIG instead of copying.

    A section within that bound but larger than :data:`_COPY_LIMIT` is checked through
    ``initial_value_buffer`` (a view, no copy): copying a ``.bss`` of a gigabyte or two is what
    ``initial_value`` is documented to do, and takes seconds that libFuzzer reports as a slow
    unit, not a finding."""
    import pylibbpf

    try:
        if m.value_size > _COPY_LIMIT:
            try:
                view = m.initial_value_buffer()
            except pylibbpf.BpfError as exc:
                if exc.errno == errno.ENOENT:
                    return  # no initial image: initial_value would be b""
                raise
            if len(view) != m.value_size:
                raise Finding(f"initial_value_buffer is {len(view)} bytes, the map's value "
                              f"{m.value_size}")
        else:
            m.initial_value  # noqa: B018 - reads libbpf's copy of the section
    except pylibbpf.BpfError as exc:
        if exc.errno != errno.E2BIG:
            raise Finding(f"Map.initial_value raised {exc!r}, not its documented E2BIG"
                          ) from exc


# ------------------------------------------------------------------------------ elf

def fuzz_elf(data: bytes) -> None:
    """``pylibbpf.elf.ObjectFile.from_bytes`` and everything that walks the parsed object."""
    from pylibbpf.elf import ElfError, ObjectFile

    try:
        obj = ObjectFile.from_bytes(data, name="fuzz")
    except BaseException as exc:  # noqa: BLE001
        _documented(exc, (ElfError,), "ObjectFile.from_bytes")
        return
    obj.to_json()
    try:
        obj.disassemble()
    except BaseException as exc:  # noqa: BLE001
        _documented(exc, (ElfError,), "ObjectFile.disassemble")
    if obj.btf is None:
        return
    # Each type on its own: format_c() refuses some kinds by design (a DATASEC or DECL_TAG
    # has no C definition), and that must not end the walk over the types after it.
    for t in obj.btf.types[:200]:
        for what, func in (("format_c", obj.btf.format_c), ("size_of", obj.btf.size_of),
                           ("type_name", obj.btf.type_name)):
            try:
                func(t)
            except BaseException as exc:  # noqa: BLE001
                _documented(exc, (ElfError,), f"Btf.{what}")


# ------------------------------------------------------------------------------ insn

def fuzz_insn(data: bytes) -> None:
    """The instruction codec: decode/encode round trip, disassembly, insertion."""
    from pylibbpf.elf import ElfError, decode, encode, format_instruction, insert_instructions
    from pylibbpf.elf.insn import Instruction, slot_offsets

    if len(data) < 2:
        return
    order: Any = "big" if data[0] & 1 else "little"
    where_byte = data[1]
    body = data[2:][: (len(data) - 2) // 8 * 8]
    try:
        insns = decode(body, order)
    except BaseException as exc:  # noqa: BLE001
        _documented(exc, (ElfError,), "decode")
        return
    if encode(insns, order) != body:
        raise Finding("encode(decode(x)) != x")
    for insn in insns:
        if not isinstance(format_instruction(insn), str):
            raise Finding("format_instruction did not return a str")
    if not insns:
        return
    starts = slot_offsets(insns)
    where = starts[where_byte % len(starts)]
    nop = Instruction(0xBF, 9, 9, 0, 0)  # r9 = r9
    try:
        grown = insert_instructions(insns, {where: [nop]})
    except BaseException as exc:  # noqa: BLE001
        _documented(exc, (ElfError,), "insert_instructions")
        return
    if len(grown) != len(insns) + 1:
        raise Finding("insert_instructions did not add exactly one instruction")
    encode(grown, order)


# ------------------------------------------------------------------------------ attr

_ATTR_STATE: dict[str, Any] = {}


def _attr_state() -> dict[str, Any]:
    if not _ATTR_STATE:
        import compat

        _ATTR_STATE["array"] = compat.bpf_create_map(compat.BPF_MAP_TYPE_ARRAY, 4, 8, 4)
        _ATTR_STATE["hash"] = compat.bpf_create_map(compat.BPF_MAP_TYPE_HASH, 8, 16, 4)
        _ATTR_STATE["key"] = ctypes.create_string_buffer(64)
        _ATTR_STATE["value"] = ctypes.create_string_buffer(4096)
        _ATTR_STATE["text"] = ctypes.create_string_buffer(256)
        names = [ctypes.create_string_buffer(n) for n in (b"map_fd", b"config", b"dump")]
        _ATTR_STATE["names"] = names
        entries = (compat.BpfMapFdEntryStruct * 3)()
        for entry, name in zip(entries, names, strict=True):
            entry.name = ctypes.addressof(name)
            entry.fd = _ATTR_STATE["array"]
        _ATTR_STATE["entries"] = entries
    return _ATTR_STATE


def _pointer(selector: int, state: dict[str, Any], buffer: str) -> int:
    """A pointer the kernel may write through safely: ours, NULL or never mapped."""
    choice = selector % 4
    if choice == 0:
        return ctypes.addressof(state[buffer])
    if choice == 1:
        return 0
    if choice == 2:
        return 0x10  # the first page is never mapped
    return ctypes.addressof(state[buffer]) + (selector >> 2) % 32


def fuzz_attr(data: bytes) -> None:
    """compat's attr codecs (every variant against ``struct``), then ``compat.sys_bpf`` on the
    decoded attr with its pointers redirected to buffers the kernel may write."""
    import compat
    from compat.attr import ATTR_SIZE, attr_bytes

    raw = data[:ATTR_SIZE].ljust(ATTR_SIZE, b"\0")
    attr = compat.LegacyBpfAttr.from_buffer_copy(raw)
    if attr_bytes(attr) != raw:
        raise Finding("attr_bytes(LegacyBpfAttr(x)) != x")
    checks = [
        (attr.map_create, "=IIII", ("map_type", "key_size", "value_size", "max_entries")),
        (attr.map_elem, "=IIQQQ", ("map_fd", "_pad", "key", "value", "flags")),
        (attr.prog_load_ex, "=QIIQ", ("prog", "prog_size", "map_array_len", "map_array")),
        (attr.rcore_attach, "=QII", ("target", "prog_fd", "_pad")),
        (attr.zcore_attach, "=QII", ("target", "str_len", "prog_fd")),
    ]
    for variant, fmt, names in checks:
        expected = struct.unpack_from(fmt, raw)
        got = tuple(getattr(variant, n) for n in names)
        if got != expected:
            raise Finding(f"{type(variant).__name__} decodes {got}, struct says {expected}")
        if attr_bytes(variant) != raw[:ctypes.sizeof(variant)]:
            raise Finding(f"attr_bytes({type(variant).__name__}) differs from its bytes")
    if attr.map_elem.next_key != attr.map_elem.value:
        raise Finding("MapElemAttr.next_key is not the value pointer")
    if len(data) <= ATTR_SIZE:
        return
    # sys_bpf on the same attr, made safe: fds and pointers are ours
    state = _attr_state()
    tail = data[ATTR_SIZE:]
    sel = tail[0]
    cmds = [c.value for c in compat.BpfCmd] + [sel]
    cmd = cmds[sel % len(cmds)]
    dialect = compat.Dialect.ZCORE if sel & 0x80 else compat.Dialect.RCORE
    extra = tail[1:]
    if cmd == compat.BpfCmd.MAP_CREATE:
        mc = attr.map_create
        # bound the kernel memory a created map may take: a hash map preallocates
        # max_entries * (key + value), and a 4 MB key made one create take 6 s (20 s under
        # memory pressure: libFuzzer's timeout)
        mc.key_size &= 0xFFF
        mc.value_size &= 0xFFF
        mc.max_entries &= 0x3FF
    elif cmd in (compat.BpfCmd.MAP_LOOKUP_ELEM, compat.BpfCmd.MAP_UPDATE_ELEM,
                 compat.BpfCmd.MAP_DELETE_ELEM, compat.BpfCmd.MAP_GET_NEXT_KEY):
        me = attr.map_elem
        me.map_fd = state["array"] if me.map_fd & 1 else state["hash"]
        me.key = _pointer(me.key, state, "key")
        me.value = _pointer(me.value, state, "value")
        ctypes.memmove(state["key"], extra[:64], min(64, len(extra)))
    elif cmd == compat.BpfCmd.PROG_LOAD_EX:
        pl = attr.prog_load_ex
        blob = ctypes.create_string_buffer(extra, len(extra) or 1)
        state["blob"] = blob
        pl.prog = 0 if pl.prog & 3 == 3 else ctypes.addressof(blob)
        pl.prog_size = pl.prog_size % (len(extra) + 1)
        pl.map_array_len %= 4
        pl.map_array = _pointer(pl.map_array, state, "entries")
    elif cmd == compat.BpfCmd.PROG_ATTACH:
        ra = attr.rcore_attach
        text = state["text"]
        ctypes.memmove(text, extra[:255], min(255, len(extra)))
        ra.target = _pointer(ra.target, state, "text")
    try:
        rc = compat.sys_bpf(cmd, attr, dialect)
    except BaseException as exc:  # noqa: BLE001
        raise Finding(f"sys_bpf raised {type(exc).__name__}: {exc!r} (it must return -errno)"
                      ) from exc
    if not isinstance(rc, int):
        raise Finding(f"sys_bpf returned {rc!r}, not an int")
    if dialect is compat.Dialect.ZCORE and rc < 0 and rc != -errno.ENOEXEC:
        raise Finding(f"zcore sys_bpf returned {rc}, not -ENOEXEC")
    if rc > 0 and cmd == compat.BpfCmd.MAP_CREATE:
        os.close(rc)
    elif rc > 0 and cmd == compat.BpfCmd.PROG_LOAD_EX:
        compat.release_program(rc)
    compat.detach_all()


# ------------------------------------------------------------------------------ legacy load

_LEGACY_NAMES = ("map_fd", "config", "dump", "time_counters", "records")
_LEGACY_MAPS: dict[str, int] = {}


def fuzz_legacy_load(data: bytes) -> None:
    """``compat.bpf_prog_load_ex`` on a legacy object: the ELF rules, the rewriter and the
    Linux load.  The first byte picks which map names map_array gives."""
    import compat

    if not data:
        return
    if not _LEGACY_MAPS:
        for name in _LEGACY_NAMES:
            _LEGACY_MAPS[name] = compat.bpf_create_map(compat.BPF_MAP_TYPE_ARRAY, 4, 64, 512)
    mask, elf = data[0], data[1:]
    pairs = [(n, _LEGACY_MAPS[n]) for k, n in enumerate(_LEGACY_NAMES) if mask >> k & 1]
    try:
        fd = compat.bpf_prog_load_ex(elf, pairs)
    except BaseException as exc:  # noqa: BLE001
        _documented(exc, (compat.LegacyError, compat.LegacyVerifierError),
                    "bpf_prog_load_ex")
        return
    compat.release_program(fd)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "open_mem": fuzz_open_mem,
    "elf": fuzz_elf,
    "insn": fuzz_insn,
    "attr": fuzz_attr,
    "legacy_load": fuzz_legacy_load,
}

# What each target instruments for coverage feedback (atheris), beyond the entry module.
_INSTRUMENT = {
    "open_mem": ("pylibbpf",),
    "elf": ("pylibbpf.elf",),
    "insn": ("pylibbpf.elf",),
    "attr": ("compat",),
    "legacy_load": ("compat", "pylibbpf.elf"),
}


def _quiet() -> None:
    logging.getLogger("pylibbpf").setLevel(logging.CRITICAL + 1)
    logging.getLogger("pylibbpf").propagate = False
    import warnings

    warnings.simplefilter("ignore")


def _import_instrumented(target: str) -> None:
    import importlib

    import atheris  # type: ignore[import-untyped]

    with atheris.instrument_imports(include=list(_INSTRUMENT[target])):
        for module in _INSTRUMENT[target]:
            importlib.import_module(module)
        if target in ("elf", "insn", "legacy_load"):
            importlib.import_module("pylibbpf.elf.disasm")
            importlib.import_module("pylibbpf.elf.objectfile")
        if target in ("attr", "legacy_load"):
            for sub in ("compat.api", "compat.loader", "compat.rewrite", "compat.maps"):
                importlib.import_module(sub)


def signature(exc: BaseException) -> str:
    """A finding's identity: the original exception type and the innermost frame raising it
    (``IndexError@rewrite.py:_analyse``), so one bug found twice counts once."""
    cause = exc.__cause__ if isinstance(exc, Finding) and exc.__cause__ is not None else exc
    tb = cause.__traceback__
    where = "?"
    while tb is not None:
        code = tb.tb_frame.f_code
        where = f"{os.path.basename(code.co_filename)}:{code.co_name}"
        tb = tb.tb_next
    kind = type(cause).__name__ if cause is not exc else type(exc).__name__
    return f"{kind}@{where}"


def _known() -> frozenset[str]:
    raw = os.environ.get("PYLIBBPF_FUZZ_KNOWN", "")
    return frozenset(s for s in raw.split(",") if s)


def guarded(func: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """``func`` that tolerates the findings named in ``$PYLIBBPF_FUZZ_KNOWN`` (so a run goes
    on past a bug already reported) and prints ``FUZZ-SIGNATURE: ...`` before any other."""
    known = _known()

    def run(data: bytes) -> None:
        try:
            func(data)
        except Exception as exc:
            sig = signature(exc)
            if sig in known:
                return
            print(f"FUZZ-SIGNATURE: {sig}", file=sys.stderr, flush=True)
            raise

    return run


def replay(target: str, paths: list[str]) -> int:
    """Run ``target`` once on each file; print one line each; 1 if any failed."""
    _quiet()
    func = TARGETS[target]
    failed = 0
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        try:
            func(data)
        except Exception as exc:  # noqa: BLE001 - reported
            failed += 1
            print(f"FAIL {path}: {signature(exc)}: {type(exc).__name__}: {exc}", flush=True)
        else:
            print(f"OK {path}", flush=True)
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    """``python -m fuzz.targets TARGET [--replay FILE... | libFuzzer args...]``."""
    if len(argv) < 2 or argv[1] not in TARGETS:
        print(f"usage: python -m fuzz.targets {{{','.join(TARGETS)}}} [--replay FILE... | "
              "libFuzzer options and corpus folders]", file=sys.stderr)
        return 2
    target = argv[1]
    if len(argv) > 2 and argv[2] == "--replay":
        return replay(target, argv[3:])
    import atheris

    _quiet()
    _import_instrumented(target)
    func = guarded(TARGETS[target])
    atheris.Setup([argv[0], *argv[2:]], func)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
