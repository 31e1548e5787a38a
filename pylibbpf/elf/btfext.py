"""Decoder for ``.BTF.ext``: func_info, line_info and CO-RE relocation records.

Records are grouped by ELF section name; ``insn_off`` values are converted to instruction (slot)
indices within that section, as libbpf does.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .btf import Btf
from .errors import ElfError

__all__ = ["BtfExt", "FuncInfo", "LineInfo", "CoreRelo"]

BTF_MAGIC = 0xEB9F
_MAX_RECORDS = 1 << 22


@dataclass(frozen=True)
class FuncInfo:
    """A function starts at ``insn`` (slot index in its section) with BTF FUNC ``type_id``."""

    insn: int
    type_id: int


@dataclass(frozen=True)
class LineInfo:
    """Instruction ``insn`` comes from ``file_name``:``line``:``column`` (text ``line_text``)."""

    insn: int
    file_name: str
    line_text: str
    line: int
    column: int


@dataclass(frozen=True)
class CoreRelo:
    """A CO-RE relocation of instruction ``insn`` (``kind`` is ``enum bpf_core_relo_kind``)."""

    insn: int
    type_id: int
    access: str
    kind: int


@dataclass
class BtfExt:
    """Decoded ``.BTF.ext``: per section name, sorted records."""

    func_info: dict[str, list[FuncInfo]]
    line_info: dict[str, list[LineInfo]]
    core_relos: dict[str, list[CoreRelo]]

    @classmethod
    def from_bytes(cls, data: bytes, btf: Btf) -> BtfExt:
        """Decode ``.BTF.ext`` whose strings live in ``btf``; :class:`ElfError` if malformed."""
        data = bytes(data)
        if len(data) < 24:
            raise ElfError(".BTF.ext: too short for its header")
        if struct.unpack_from("<H", data)[0] == BTF_MAGIC:
            e = "<"
        elif struct.unpack_from(">H", data)[0] == BTF_MAGIC:
            e = ">"
        else:
            raise ElfError(".BTF.ext: bad magic")
        _m, version, _f, hdr_len = struct.unpack_from(e + "HBBI", data)
        if version != 1:
            raise ElfError(f".BTF.ext: unsupported version {version}")
        if hdr_len < 24 or hdr_len > len(data):
            raise ElfError(f".BTF.ext: header length {hdr_len} out of bounds")
        fi_off, fi_len, li_off, li_len = struct.unpack_from(e + "IIII", data, 8)
        core_off = core_len = 0
        if hdr_len >= 32:
            core_off, core_len = struct.unpack_from(e + "II", data, 24)
        body = data[hdr_len:]

        def blob(off: int, length: int, what: str) -> bytes:
            if off + length > len(body):
                raise ElfError(f".BTF.ext: {what} out of bounds")
            return body[off:off + length]

        func_info: dict[str, list[FuncInfo]] = {}
        for sec, recs in _records(blob(fi_off, fi_len, "func_info"), e, 8, btf, "func_info"):
            func_info[sec] = [FuncInfo(off // 8, type_id)
                              for off, type_id in (struct.unpack_from(e + "II", r) for r in recs)]
        line_info: dict[str, list[LineInfo]] = {}
        for sec, recs in _records(blob(li_off, li_len, "line_info"), e, 16, btf, "line_info"):
            out = []
            for r in recs:
                off, file_off, line_off, line_col = struct.unpack_from(e + "IIII", r)
                out.append(LineInfo(off // 8, btf.string_at(file_off), btf.string_at(line_off),
                                    line_col >> 10, line_col & 0x3FF))
            line_info[sec] = out
        core: dict[str, list[CoreRelo]] = {}
        if core_len:
            for sec, recs in _records(blob(core_off, core_len, "core_relo"), e, 16, btf,
                                      "core_relo"):
                outc = []
                for r in recs:
                    off, type_id, acc, kind = struct.unpack_from(e + "IIII", r)
                    outc.append(CoreRelo(off // 8, type_id, btf.string_at(acc), kind))
                core[sec] = outc
        return cls(func_info, line_info, core)

    def lines_for(self, section: str) -> dict[int, LineInfo]:
        """``insn -> LineInfo`` for one section (the first record wins per instruction)."""
        out: dict[int, LineInfo] = {}
        for li in self.line_info.get(section, ()):
            out.setdefault(li.insn, li)
        return out


def _records(data: bytes, e: str, min_size: int, btf: Btf,
             what: str) -> list[tuple[str, list[bytes]]]:
    if not data:
        return []
    if len(data) < 4:
        raise ElfError(f".BTF.ext: {what} too short")
    (rec_size,) = struct.unpack_from(e + "I", data)
    if rec_size < min_size or rec_size % 4:
        raise ElfError(f".BTF.ext: {what} record size {rec_size} is invalid")
    pos = 4
    out: list[tuple[str, list[bytes]]] = []
    while pos < len(data):
        if pos + 8 > len(data):
            raise ElfError(f".BTF.ext: {what} section header truncated")
        sec_off, count = struct.unpack_from(e + "II", data, pos)
        pos += 8
        if count > _MAX_RECORDS or pos + count * rec_size > len(data):
            raise ElfError(f".BTF.ext: {what} has {count} records past its end")
        recs = [data[pos + i * rec_size:pos + (i + 1) * rec_size] for i in range(count)]
        pos += count * rec_size
        out.append((btf.string_at(sec_off), recs))
    return out
