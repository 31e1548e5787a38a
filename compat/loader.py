"""``BPF_PROG_LOAD_EX``: the legacy ELF rules (spec §4), then the Linux load.

A legacy object is checked exactly as the legacy kernel did (``EM_BPF``, ``.symtab``, the
name-count rule, ``.rel<X>`` targets, ``.text``), rewritten (:mod:`compat.rewrite`), and loaded
with the standard ``BPF_PROG_LOAD``.  The program type and the context layout depend on the
attach backend, which is only known at attach time: the load verifies a tracepoint variant
(the backend of syscall targets) and :meth:`LegacyProgram.variant` loads the variant each
attachment needs.  Objects libbpf can open (``.maps``, ``SEC()`` names) go through
:class:`pylibbpf.Object` with :meth:`pylibbpf.ObjectMap.reuse_fd` for each map_array entry.
"""

from __future__ import annotations

import errno as _errno
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pylibbpf import BpfError, Object, VerifierError, lowlevel
from pylibbpf.elf import EM_BPF, R_BPF_64_64, ElfError, find_section_def, read_elf
from pylibbpf.elf import insn as I
from pylibbpf.elf.insn import Instruction

from .context import (
    LEGACY_CTX_SIZE,
    Backend,
    TracedFunction,
    ctx_sources,
    regs_load,
    synthetic_prologue,
)
from .errors import LegacyError, LegacyVerifierError, RewriteError
from .rewrite import Rewritten, mov_imm, rewrite
from .targets import Phase

__all__ = ["BpfMapFdEntry", "LegacyProgram", "load_legacy", "normalize_map_array",
           "program_for_fd", "unregister_program", "loaded_programs"]

BPF_PROG_TYPE_KPROBE, BPF_PROG_TYPE_TRACEPOINT, BPF_PROG_TYPE_TRACING = 2, 5, 26
BPF_TRACE_FENTRY, BPF_TRACE_FEXIT = 24, 25
BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY = 2, 6


@dataclass(frozen=True)
class BpfMapFdEntry:
    """``struct bpf_map_fd_entry``: a map name in the ELF and the fd it stands for."""

    name: str
    fd: int


MapArray = (Mapping[str, int] | Iterable[tuple[str, int]] | Iterable[BpfMapFdEntry])


def normalize_map_array(map_array: Any) -> list[tuple[str, int]]:
    """``map_array`` as ``(name, fd)`` pairs, in order (duplicates kept: the count rule sees
    them)."""
    if map_array is None:
        return []
    items = map_array.items() if isinstance(map_array, Mapping) else map_array
    out: list[tuple[str, int]] = []
    for entry in items:
        if isinstance(entry, BpfMapFdEntry):
            name, fd = entry.name, entry.fd
        else:
            try:
                name, fd = entry
            except (TypeError, ValueError):
                raise TypeError("map_array entries must be (name, fd) pairs or BpfMapFdEntry, "
                                f"not {entry!r}") from None
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        if not isinstance(name, str) or isinstance(fd, bool) or not isinstance(fd, int):
            raise TypeError(f"map_array entry ({name!r}, {fd!r}) must be (str, int)")
        out.append((name, fd))
    return out


# ------------------------------------------------------------------------------ the ELF rules

@dataclass
class LegacyElf:
    """What the legacy kernel took from the ELF: ``.text`` and its map relocations."""

    text: bytes
    map_relocs: dict[int, str]  # slot of the ld_imm64 -> symbol name
    byteorder: Literal["little", "big"]


def parse_legacy_elf(data: bytes, names: list[str]) -> LegacyElf:
    """Apply the legacy kernel's rules; LegacyError with its errno on failure."""
    if not data.startswith(b"\x7fELF"):
        raise LegacyError(_errno.EINVAL, "the program is not an ELF file: pass the bytes of a "
                          "clang -target bpf object (.o)")
    try:
        # strict=False: the legacy kernel checked neither class nor type, only e_machine
        raw = read_elf(bytes(data), strict=False)
        if raw.machine != EM_BPF:
            raise LegacyError(_errno.EINVAL, f"ELF machine is {raw.machine}, not EM_BPF: "
                              "compile with clang -target bpf")
        symtab = raw.section_by_name(".symtab")
        if symtab is None or symtab.index != raw.symtab_index:
            raise LegacyError(_errno.ENOENT, "the ELF has no .symtab: do not strip the object")
        wanted = set(names)
        matched = {sym.index: sym.name for sym in raw.symbols if sym.name in wanted}
        if len(matched) != len(names):
            found = set(matched.values())
            missing = [n for n in names if n not in found]
            detail = (f"names not in the ELF: {', '.join(missing)}" if missing else
                      f"{len(matched)} symbols match {len(names)} map_array entries "
                      "(duplicate names?)")
            raise LegacyError(_errno.ENOENT, f"map_array does not match the ELF's symbols: "
                              f"{detail}; map_array must name each map symbol exactly once")
        text = raw.section_by_name(".text")
        relocs: dict[int, str] = {}
        for section in raw.rel_sections():
            if section.name.startswith(".rela"):
                continue
            target_name = section.name[len(".rel"):]
            if raw.section_by_name(target_name) is None:
                raise LegacyError(_errno.ENOENT, f"relocation section {section.name} has no "
                                  f"target section {target_name}")
            if target_name != ".text":
                continue
            for rel in raw.rels(section):
                if rel.type != R_BPF_64_64:
                    continue
                name = matched.get(rel.sym)
                if name is not None:
                    relocs[rel.offset // I.INSN_SIZE] = name
        if text is None:
            raise LegacyError(_errno.ENOENT, "the ELF has no .text section: legacy programs are "
                              "plain functions (no SEC()), entered at offset 0 of .text")
    except ElfError as exc:
        raise LegacyError(_errno.EINVAL, f"malformed ELF: {exc}") from None
    return LegacyElf(text.data, relocs, raw.byteorder)


# ------------------------------------------------------------------------------ loading

_HINTS = [
    (re.compile(r"invalid mem access '(map_value_or_null|mem_or_null)'|_or_null"),
     "a map lookup result is dereferenced without a NULL check that compat could add"),
    (re.compile(r"invalid zero-sized read|R2 min value is"),
     "a length from bpf_get_current_comm (0 on Linux, the string length on the legacy "
     "kernel) is passed on as a size"),
    (re.compile(r"expected=map_ptr|type=scalar expected=map_ptr|fd \d+ is not pointing"),
     "an extern map fd reaches a map helper in a way compat could not rewrite into a map "
     "reference"),
    (re.compile(r"invalid bpf_context access|dereference of modified ctx ptr|"
                r"variable ctx access"),
     "the legacy kprobe context is read in a way compat could not remap"),
    (re.compile(r"unreachable insn"),
     "the legacy program contains code no path reaches"),
    (re.compile(r"back-edge|infinite loop|BPF program is too large"),
     "a loop the Linux verifier cannot bound (the legacy kernel ran programs unverified)"),
    (re.compile(r"invalid indirect read from stack|invalid read from stack"),
     "a stack buffer is read before it is written (the legacy kernel did not check)"),
    (re.compile(r"unknown func|invalid func"),
     "a helper the legacy kernel had but Linux does not offer to this program type"),
]


def _hint(log: str, origin: dict[int, int]) -> str:
    text = next((hint for pattern, hint in _HINTS if pattern.search(log)), "")
    lines = [ln for ln in log.splitlines() if re.match(r"^\d+: \(", ln)]
    if lines:
        index = int(lines[-1].split(":", 1)[0])
        slots = [k for k in sorted(origin) if k <= index]
        # verifier indexes are slots of the new program; origin maps instruction indexes
        if slots:
            where = f" (near legacy instruction {origin[slots[-1]]})"
            text = (text or "the verifier refused the translated program") + where
    return text


def _create_map(map_type: int, key_size: int, value_size: int, max_entries: int) -> int:
    try:
        return lowlevel.map_create(map_type, key_size, value_size, max_entries)
    except BpfError as exc:
        raise LegacyError(exc.errno or _errno.EINVAL, "cannot create compat's helper map "
                          "(RLIMIT_MEMLOCK or CAP_BPF?)") from None


class LegacyProgram:
    """A legacy program after the rewrite; loads one Linux program per backend variant.

    ``fd`` is the fd :func:`compat.bpf_prog_load_ex` returned (a verified tracepoint variant).
    Attachments load their own variants (:meth:`variant`); :meth:`close` releases everything.
    """

    def __init__(self, name: str, rewritten: Rewritten | None, *, obj: Any = None,
                 prog_fd: int = -1, modern_type: int | None = None) -> None:
        self.name = name
        self.rewritten = rewritten
        self.fd = prog_fd
        self._obj = obj  # pylibbpf.Object for libbpf-openable objects
        self.modern_type = modern_type
        self._helper_fds: list[int] = []
        self._fmt_fd = -1
        self._ctx_fd = -1
        self._lock = threading.Lock()
        self.closed = False

    @property
    def is_modern(self) -> bool:
        """True when libbpf loaded the object (no rewrite, one program type)."""
        return self._obj is not None

    def _prepare_maps(self) -> None:
        rw = self.rewritten
        assert rw is not None
        if rw.formats and self._fmt_fd < 0:
            total = sum((len(linux) + 7) & ~7 for _legacy, linux in rw.formats)
            fd = _create_map(BPF_MAP_TYPE_ARRAY, 4, total, 1)
            self._helper_fds.append(fd)
            blob = b"".join(linux.ljust((len(linux) + 7) & ~7, b"\0")
                            for _legacy, linux in rw.formats)
            try:
                lowlevel.map_update_elem(fd, 0, blob)
            except BpfError as exc:
                raise LegacyError(exc.errno or _errno.EINVAL, "cannot store the translated "
                                  "trace_printk formats") from None
            self._fmt_fd = fd
        if rw.needs_synthetic_ctx and self._ctx_fd < 0:
            self._ctx_fd = _create_map(BPF_MAP_TYPE_PERCPU_ARRAY, 4, LEGACY_CTX_SIZE, 1)
            self._helper_fds.append(self._ctx_fd)

    def code(self, backend: Backend, phase: Phase, tp_args: int = 6,
             function: TracedFunction | None = None) -> tuple[bytes, dict[int, int]]:
        """The Linux instructions of the variant for ``backend``/``phase`` (``function``: the
        fentry/fexit target), with the map from new instruction index to legacy slot."""
        rw = self.rewritten
        assert rw is not None
        self._prepare_maps()
        insns = list(rw.insns)
        for index, offset in rw.fmt_patches:
            old = insns[index]
            insns[index] = Instruction(old.code, old.dst, old.src, 0, self._fmt_fd, offset, 0)
        sources = ctx_sources(backend, phase, tp_args, function)
        origin = dict(rw.origin)
        if rw.needs_synthetic_ctx:
            prologue = synthetic_prologue(self._ctx_fd, sources)
            insns = I.insert_instructions(insns, {0: prologue})
            origin = {k + len(prologue): v for k, v in origin.items()}
        else:
            before: dict[int, list[Instruction]] = {}
            for index, offset in rw.ctx_loads.items():
                old = insns[index]
                if offset % 8 or not 0 <= offset < LEGACY_CTX_SIZE:
                    raise RewriteError(_errno.EINVAL, f"context read at offset {offset} is "
                                       f"outside the {LEGACY_CTX_SIZE}-byte legacy context "
                                       "(or not 8-byte aligned)")
                kind, value = sources[offset]
                if kind == "const":
                    insns[index] = mov_imm(old.dst, value)
                elif kind == "regs":
                    # the pointer load runs first (branches to index land on it), then this
                    first, insns[index] = regs_load(old.dst, old.src, value)
                    before[index] = [first]
                else:
                    size = I.SIZE_W if kind == "field32" else I.SIZE_DW
                    insns[index] = Instruction(I.LDX | size | I.MODE_MEM, old.dst, old.src,
                                               value, 0)
            if before:
                starts = I.slot_offsets(insns)
                insns = I.insert_instructions(insns, {starts[k]: v for k, v in before.items()})
                shift = sorted(before)
                origin = {k + sum(1 for b in shift if b <= k): v for k, v in origin.items()}
        slot_origin: dict[int, int] = {}
        starts = I.slot_offsets(insns)
        for k, v in origin.items():
            slot_origin[starts[k]] = v
        return I.encode(insns), slot_origin

    def variant(self, backend: Backend, phase: Phase, tp_args: int = 6,
                function: TracedFunction | None = None) -> int:
        """Load the variant for ``backend``/``phase`` (``tp_args``: syscall arguments in the
        tracepoint record; ``function``: the fentry/fexit target, whose BTF id the program is
        loaded for); returns a new program fd (the caller's)."""
        if self.closed:
            raise LegacyError(_errno.EBADF, f"legacy program {self.name!r} was released")
        if self._obj is not None:
            return os.dup(self.fd)
        attach_type = btf_id = 0
        if backend is Backend.FENTRY:
            if function is None:
                raise ValueError("the fentry backend needs the traced function")
            prog_type = BPF_PROG_TYPE_TRACING
            attach_type = BPF_TRACE_FEXIT if phase.at_exit else BPF_TRACE_FENTRY
            btf_id = function.btf_id
        elif backend is Backend.KPROBE:
            prog_type = BPF_PROG_TYPE_KPROBE
        else:
            prog_type = BPF_PROG_TYPE_TRACEPOINT
        with self._lock:
            code, origin = self.code(backend, phase, tp_args, function)
        try:
            return lowlevel.prog_load(prog_type, code, license="GPL", name=self.name,
                                      expected_attach_type=attach_type,
                                      attach_btf_id=btf_id)
        except BpfError as exc:
            if backend is Backend.FENTRY and exc.errno == _errno.EPERM:
                raise LegacyError(_errno.EPERM, f"Linux refused the fentry/fexit program "
                                  f"{self.name!r} (EPERM){lockdown_note()}") from None
            text = exc.log if isinstance(exc, VerifierError) else ""
            raise LegacyVerifierError(exc.errno or _errno.EINVAL, f"Linux refused legacy "
                                      f"program {self.name!r} ({backend.value} backend)",
                                      self.name, text, _hint(text, origin)) from None

    def close(self) -> None:
        """Release the program fd, compat's helper maps and the libbpf object."""
        if self.closed:
            return
        self.closed = True
        if self._obj is not None:
            self._obj.close()
            self._obj = None
        elif self.fd >= 0:
            os.close(self.fd)
        for fd in self._helper_fds:
            os.close(fd)
        self._helper_fds.clear()
        self.fd = -1


def lockdown_note() -> str:
    """``": kernel lockdown is '<mode>' ..."`` when the lockdown LSM is active, else ``""``."""
    try:
        with open("/sys/kernel/security/lockdown", encoding="ascii") as f:
            text = f.read()
    except OSError:
        return ""
    found = re.search(r"\[(\w+)\]", text)
    if found is None or found.group(1) == "none":
        return ""
    return (f": kernel lockdown is in {found.group(1)!r} mode, which refuses BPF "
            "trampolines; use the 'kprobe' or 'tracepoint' backend")


_PROGRAMS: dict[int, LegacyProgram] = {}
_REGISTRY_LOCK = threading.Lock()


def program_for_fd(fd: int) -> LegacyProgram | None:
    """The legacy program behind a fd :func:`load_legacy` returned, or ``None``."""
    return _PROGRAMS.get(fd)


def loaded_programs() -> list[int]:
    """The fds of the legacy programs compat holds."""
    return list(_PROGRAMS)


def unregister_program(fd: int) -> LegacyProgram:
    """Take the program behind ``fd`` out of the registry and return it (the caller closes it,
    after detaching it: :func:`compat.release_program`); ENOENT when ``fd`` is not one."""
    with _REGISTRY_LOCK:
        program = _PROGRAMS.pop(fd, None)
    if program is None:
        raise LegacyError(_errno.ENOENT, f"fd {fd} is not a program bpf_prog_load_ex returned")
    return program


def _is_modern(data: bytes) -> bool:
    try:
        names = [s.name for s in read_elf(bytes(data), strict=False).sections]
    except ElfError:
        return False  # parse_legacy_elf reports malformed ELFs
    if ".maps" in names:
        return True
    return any(find_section_def(n) is not None and n not in (".text",) and
               not n.startswith((".rel", ".BTF", ".debug", ".llvm")) for n in names
               if not n.startswith(".") and n not in ("license", "version", "maps"))


def _load_modern(data: bytes, pairs: list[tuple[str, int]]) -> LegacyProgram:
    try:
        obj = Object.open_mem(data)
    except BpfError as exc:
        raise LegacyError(exc.errno or _errno.EINVAL, f"libbpf cannot open the object: "
                          f"{exc.strerror}") from None
    try:
        for name, fd in pairs:
            if name not in obj.maps:
                raise LegacyError(_errno.ENOENT, f"map_array names {name!r}, which is not a "
                                  "map of this object")
            obj.maps[name].reuse_fd(fd)
        programs = list(obj.programs.values())
        if len(programs) != 1:
            raise LegacyError(_errno.EINVAL, f"the object has {len(programs)} programs; the "
                              "legacy interface loads exactly one")
        obj.load()
        program = programs[0]
        return LegacyProgram(program.name, None, obj=obj, prog_fd=program.fd,
                             modern_type=int(program.type))
    except LegacyError:
        obj.close()
        raise
    except BpfError as exc:
        obj.close()
        if isinstance(exc, VerifierError):
            raise LegacyVerifierError(exc.errno or _errno.EINVAL, "Linux refused the program",
                                      exc.program, exc.log, "") from None
        raise LegacyError(exc.errno or _errno.EINVAL, exc.strerror or str(exc)) from None


def load_legacy(data: bytes, map_array: Any) -> int:
    """``BPF_PROG_LOAD_EX``: the program fd, registered for :func:`compat.bpf_prog_attach`."""
    pairs = normalize_map_array(map_array)
    if _is_modern(data):
        program = _load_modern(data, pairs)
    else:
        names = [name for name, _fd in pairs]
        elf = parse_legacy_elf(data, names)
        fds = dict(pairs)
        for name, fd in pairs:
            try:
                lowlevel.map_layout(fd)
            except (BpfError, ValueError, TypeError):
                raise LegacyError(_errno.EBADF, f"map_array entry {name!r}: fd {fd} is not a "
                                  "BPF map") from None
        try:
            insns = I.decode(elf.text, elf.byteorder)
        except ElfError as exc:
            raise LegacyError(_errno.EINVAL, f".text is not BPF code: {exc}") from None
        rewritten = rewrite(insns, elf.map_relocs, fds)
        program = LegacyProgram("legacy_prog", rewritten)
        try:
            program.fd = program.variant(Backend.TRACEPOINT, Phase.KPROBE)
        except BaseException:
            program.close()
            raise
    with _REGISTRY_LOCK:
        _PROGRAMS[program.fd] = program
    return program.fd
