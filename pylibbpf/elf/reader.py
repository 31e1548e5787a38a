"""The raw ELF layer: validated sections, symbols and relocation entries read with pyelftools.

Everything input-controlled is checked here before pyelftools sees it (class, byte order,
machine, header and section bounds, string and symbol tables), and any exception pyelftools
might still raise is turned into :class:`ElfError`; the layers above work on plain data.

:func:`read_elf` is public for callers that need the ELF as it is rather than as libbpf sees
it: ``read_elf(data, strict=False)`` checks only the ELF structure (either class, any machine
and type, no section headers at all is allowed), so a caller can apply rules of its own, such as
a legacy loader's errno for a wrong ``e_machine``, to objects libbpf would never open::

    raw = read_elf(data, strict=False)
    if raw.machine != EM_BPF: ...
    text = raw.section_by_name(".text")
    for rel_sec in raw.rel_sections():
        for entry in raw.rels(rel_sec):
            sym = raw.symbols[entry.sym]
"""

from __future__ import annotations

import io
import os
import stat
import struct
from dataclasses import dataclass
from typing import Literal

from elftools.elf.elffile import ELFFile

from .errors import ElfError

__all__ = ["EM_BPF", "MAX_OBJECT_SIZE", "R_BPF_64_64", "R_BPF_64_32", "RawElf", "Rel", "Section",
           "Symbol", "read_elf", "read_object_file"]

EM_BPF = 247
R_BPF_64_64, R_BPF_64_ABS64, R_BPF_64_ABS32, R_BPF_64_NODYLD32, R_BPF_64_32 = 1, 2, 3, 4, 10
ET_REL = 1
SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_REL, SHT_NOBITS = 0, 1, 2, 3, 9, 8
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
SHN_UNDEF, SHN_LORESERVE, SHN_ABS, SHN_COMMON, SHN_XINDEX = 0, 0xFF00, 0xFFF1, 0xFFF2, 0xFFFF
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE = 0, 1, 2, 3, 4
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STV_DEFAULT, STV_INTERNAL, STV_HIDDEN = 0, 1, 2
SYM_SIZE = 24
REL_SIZE = 16
# ELF32 (accepted by ``read_elf(strict=False)`` only)
SHDR32_SIZE, SYM32_SIZE, REL32_SIZE = 40, 16, 8

MAX_OBJECT_SIZE = 1 << 30
"""The largest object file read (1 GiB): real BPF objects, debug info included, are far
smaller; a bigger file is refused before anything is allocated."""

_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


@dataclass(frozen=True)
class Section:
    """One section header and its bytes (empty for SHT_NOBITS)."""

    index: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int
    data: bytes

    @property
    def is_exec(self) -> bool:
        """Holds code (SHF_EXECINSTR)."""
        return bool(self.flags & SHF_EXECINSTR)


@dataclass(frozen=True)
class Symbol:
    """One ``.symtab`` entry."""

    index: int
    name: str
    value: int
    size: int
    type: int
    bind: int
    visibility: int
    shndx: int


@dataclass(frozen=True)
class Rel:
    """One raw SHT_REL entry: byte ``offset`` in the target section, symbol index, reloc type.

    This is the entry as the ELF stores it; :class:`~pylibbpf.elf.Relocation` is the classified
    form libbpf derives for a program. ``sym`` is not range-checked: look it up in
    :attr:`RawElf.symbols` and decide what an index past the end means.
    """

    offset: int
    sym: int
    type: int


@dataclass
class RawElf:
    """Validated sections and symbols of an ELF object (see :func:`read_elf`).

    ``machine`` is ``e_machine``, ``elf_type`` ``e_type`` and ``elf_class`` 32 or 64; with
    ``read_elf(strict=True)`` (the default) they are EM_BPF or 0, ET_REL and 64. ``symbols`` is
    the one SHT_SYMTAB section's entries in index order (empty without one; ``symtab_index`` is
    then -1), so ``Rel.sym`` indexes it directly.
    """

    byteorder: Literal["little", "big"]
    machine: int
    sections: list[Section]
    symbols: list[Symbol]
    symtab_index: int
    elf_class: int = 64
    elf_type: int = ET_REL

    def section_by_name(self, name: str) -> Section | None:
        """The first section called ``name`` (as ``pyelftools``' lookup), or None."""
        for sec in self.sections:
            if sec.name == name:
                return sec
        return None

    def rel_sections(self) -> list[Section]:
        """Every SHT_REL section, in section order (``.rela`` sections are SHT_RELA: not here)."""
        return [sec for sec in self.sections if sec.type == SHT_REL]

    def rels(self, sec: Section) -> list[Rel]:
        """Entries of a SHT_REL section, in order.

        Raises :class:`ElfError` when ``sec`` is not SHT_REL or its size is not a whole number
        of entries. Its ``info`` (target section) and ``link`` (symbol table) are checked by
        ``read_elf(strict=True)`` only: a lenient caller reads them from ``sec`` itself.
        """
        if sec.type != SHT_REL:
            raise ElfError(f"section {sec.name}: type {sec.type} is not SHT_REL")
        size = REL_SIZE if self.elf_class == 64 else REL32_SIZE
        if len(sec.data) % size:
            raise ElfError(f"section {sec.name}: size {len(sec.data)} is not a multiple of "
                           f"{size}")
        e = "<" if self.byteorder == "little" else ">"
        out = []
        if self.elf_class == 64:
            for offset, info in struct.iter_unpack(e + "QQ", sec.data):
                out.append(Rel(offset, info >> 32, info & 0xFFFFFFFF))
        else:
            for offset, info in struct.iter_unpack(e + "II", sec.data):
                out.append(Rel(offset, info >> 8, info & 0xFF))
        return out


def _cstr(blob: bytes, off: int, what: str, strict: bool = True) -> str:
    if off >= len(blob) and not (off == 0 and not blob):
        if not strict:
            return ""
        raise ElfError(f"{what}: name offset {off} is outside its string table")
    end = blob.find(b"\0", off)
    if end < 0:
        if not strict:
            end = len(blob)
        else:
            raise ElfError(f"{what}: name at offset {off} is not NUL-terminated")
    return blob[off:end].decode("utf-8", "replace")


def read_elf(data: bytes, *, strict: bool = True) -> RawElf:
    """Validate ``data`` as an ELF object and read its sections and symbols.

    With ``strict`` (the default, what :class:`~pylibbpf.elf.ObjectFile` uses) the object must
    be what libbpf opens: ELF64, ``e_machine`` EM_BPF or 0, ``e_type`` ET_REL, at least one
    section, and every SHT_REL section must name an existing target and the symbol table.
    ``strict=False`` checks only that the structure can be read safely (magic, byte order,
    ELF32 or ELF64, headers, sections and string/symbol tables inside the file) and leaves
    class, machine, type and relocation sections to the caller; an object without section
    headers then has no sections. It also tolerates damage a caller may never look at, reading
    lazily as pyelftools does: a section reaching past the end of the file keeps the bytes that
    exist, a name outside its string table reads as ``""`` (one without a NUL ends with the
    table), the section name table need not be SHT_STRTAB, a symbol's out-of-range section
    index is kept as stored and a partial last symbol is ignored. Problems raise
    :class:`ElfError`.
    """
    if len(data) < (64 if strict else 52):
        raise ElfError(f"not an ELF object: {len(data)} bytes is shorter than an "
                       f"{'ELF64' if strict else 'ELF'} header")
    if data[:4] != b"\x7fELF":
        raise ElfError("not an ELF object: bad magic")
    if data[4] not in (1, 2) or (strict and data[4] != 2):
        raise ElfError(f"ELF class {data[4]} is not ELF64 (eBPF objects are ELF64)")
    elf_class = 64 if data[4] == 2 else 32
    if elf_class == 64 and len(data) < 64:
        raise ElfError(f"not an ELF object: {len(data)} bytes is shorter than an ELF64 header")
    if data[5] not in (1, 2):
        raise ElfError(f"ELF data encoding {data[5]} is neither little nor big endian")
    byteorder: Literal["little", "big"] = "little" if data[5] == 1 else "big"
    e = "<" if byteorder == "little" else ">"
    if elf_class == 64:
        (e_type, e_machine, _ver, _entry, _phoff, e_shoff, _flags, _ehsize, _phentsize, _phnum,
         e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from(e + "HHIQQQIHHHHHH", data, 16)
        shdr_size, shdr_fmt = 64, e + "IIQQQQIIQQ"
    else:
        (e_type, e_machine, _ver, _entry, _phoff, e_shoff, _flags, _ehsize, _phentsize, _phnum,
         e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from(e + "HHIIIIIHHHHHH", data, 16)
        shdr_size, shdr_fmt = SHDR32_SIZE, e + "IIIIIIIIII"
    if strict and e_machine not in (0, EM_BPF):
        raise ElfError(f"ELF machine {e_machine} is not EM_BPF ({EM_BPF})")
    if strict and e_type != ET_REL:
        raise ElfError(f"ELF type {e_type} is not a relocatable object (ET_REL)")
    if e_shnum == 0:
        if strict:
            raise ElfError("ELF object has no section headers (or uses extended numbering)")
        return RawElf(byteorder, e_machine, [], [], -1, elf_class, e_type)
    if e_shentsize != shdr_size:
        raise ElfError(f"section header size {e_shentsize} is not {shdr_size}")
    if e_shoff > len(data) or e_shoff + e_shnum * shdr_size > len(data):
        raise ElfError(f"section header table ({e_shnum} x {shdr_size} at {e_shoff}) is past "
                       "the end")
    if e_shstrndx >= e_shnum:
        raise ElfError(f"section name table index {e_shstrndx} out of range ({e_shnum})")

    headers = []
    for i in range(e_shnum):
        (sh_name, sh_type, sh_flags, _addr, sh_offset, sh_size, sh_link, sh_info, _align,
         sh_entsize) = struct.unpack_from(shdr_fmt, data, e_shoff + i * shdr_size)
        if strict and sh_type not in (SHT_NOBITS, SHT_NULL) and sh_offset + sh_size > len(data):
            raise ElfError(f"section {i}: {sh_size} bytes at {sh_offset} are past the end "
                           f"of the {len(data)}-byte file")
        headers.append((sh_name, sh_type, sh_flags, sh_offset, sh_size, sh_link, sh_info,
                        sh_entsize))
    shstr = headers[e_shstrndx]
    if strict and shstr[1] != SHT_STRTAB:
        raise ElfError(f"section name table (section {e_shstrndx}) is not SHT_STRTAB")
    shstrtab = data[shstr[3]:shstr[3] + shstr[4]]

    # pyelftools reads the header and section table we validated; it must agree with us.
    try:
        elf = ELFFile(io.BytesIO(data))
        if elf.num_sections() != e_shnum:
            raise ElfError("pyelftools and the ELF header disagree on the section count")
        pyelf_names = [elf.get_section(i)["sh_name"] for i in range(e_shnum)]
    except ElfError:
        raise
    except Exception as exc:  # pyelftools raises many kinds; none may escape
        raise ElfError(f"malformed ELF: {exc}") from None

    sections: list[Section] = []
    for i, (sh_name, sh_type, sh_flags, off, size, link, info, entsize) in enumerate(headers):
        if pyelf_names[i] != sh_name:
            raise ElfError(f"section {i}: inconsistent header")
        name = _cstr(shstrtab, sh_name, f"section {i}", strict)
        blob = b"" if sh_type in (SHT_NOBITS, SHT_NULL) else data[off:off + size]
        sections.append(Section(i, name, sh_type, sh_flags, off, size, link, info, entsize,
                                blob))

    symtabs = [s for s in sections if s.type == SHT_SYMTAB]
    if len(symtabs) > 1:
        raise ElfError("more than one symbol table")
    symbols: list[Symbol] = []
    symtab_index = -1
    if symtabs:
        symtab = symtabs[0]
        symtab_index = symtab.index
        sym_size = SYM_SIZE if elf_class == 64 else SYM32_SIZE
        if strict and (symtab.entsize not in (0, sym_size) or symtab.size % sym_size):
            raise ElfError(f"symbol table size {symtab.size} is not a multiple of {sym_size}")
        if not 0 < symtab.link < len(sections) or (
                strict and sections[symtab.link].type != SHT_STRTAB):
            raise ElfError(f"symbol table links to section {symtab.link}, not a string table")
        strtab = sections[symtab.link].data
        for n, pos in enumerate(range(0, len(symtab.data) - sym_size + 1, sym_size)):
            if elf_class == 64:
                st_name, st_info, st_other, st_shndx, st_value, st_size = struct.unpack_from(
                    e + "IBBHQQ", symtab.data, pos)
            else:
                st_name, st_value, st_size, st_info, st_other, st_shndx = struct.unpack_from(
                    e + "IIIBBH", symtab.data, pos)
            if st_shndx == SHN_XINDEX:
                raise ElfError(f"symbol {n}: extended section indexes are not supported")
            if strict and SHN_LORESERVE > st_shndx >= len(sections):
                raise ElfError(f"symbol {n}: section index {st_shndx} out of range")
            symbols.append(Symbol(n, _cstr(strtab, st_name, f"symbol {n}", strict), st_value,
                                  st_size,
                                  st_info & 0xF, st_info >> 4, st_other & 0x3, st_shndx))
    if strict:
        for sec in sections:
            if sec.type == SHT_REL:
                if sec.size % REL_SIZE:
                    raise ElfError(f"section {sec.name}: size {sec.size} is not a multiple "
                                   "of 16")
                if sec.info >= len(sections):
                    raise ElfError(f"section {sec.name}: relocates missing section {sec.info}")
                if sec.link != symtab_index:
                    raise ElfError(f"section {sec.name}: not linked to the symbol table")
    return RawElf(byteorder, e_machine, sections, symbols, symtab_index, elf_class, e_type)


def read_object_file(path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
                     max_size: int = MAX_OBJECT_SIZE) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_size`` of them.

    A FIFO, device, socket or directory raises :class:`ElfError` without blocking or reading,
    and so does a file longer than ``max_size`` (also one whose size the kernel reports as 0
    but that yields more, as pseudo-files do).  A file that cannot be opened raises the usual
    :class:`OSError`; a path with a NUL character raises :class:`ValueError`.
    """
    # O_NONBLOCK: opening a FIFO without a writer would otherwise wait forever.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _FILE_KINDS if test(info.st_mode)), "")
            raise ElfError(f"not a regular file{f' ({kind})' if kind else ''}")
        if info.st_size > max_size:
            raise ElfError(f"{info.st_size} bytes is more than the {max_size} an object file "
                           "may have")
        # O_NONBLOCK changes nothing for a regular file on Linux (no fcntl calls to clear it);
        # should a filesystem still refuse a read with EAGAIN, the reads below go on blocking.
        chunks: list[bytes] = []
        total = 0
        size = info.st_size
        if size:
            try:
                first = os.read(fd, size + 1)
            except BlockingIOError:
                os.set_blocking(fd, True)
            else:
                if len(first) == size:  # the common case: it ended at its size
                    return first
                if not first:
                    return first
                chunks.append(first)
                total = len(first)
        while total <= max_size:
            # one byte more than the size left, so that one read of an unchanging file sees
            # its end (a short read at exactly the size); a pseudo-file of size 0 goes on by
            # 64 KiB reads until read() returns nothing
            want = info.st_size - total + 1 if info.st_size > total else 1 << 16
            want = min(want, max_size + 1 - total)
            try:
                chunk = os.read(fd, want)
            except BlockingIOError:
                os.set_blocking(fd, True)
                continue
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if len(chunk) < want and total == info.st_size:
                break
        if total > max_size:
            raise ElfError(f"more than the {max_size} bytes an object file may have")
        return b"".join(chunks)
    finally:
        os.close(fd)
