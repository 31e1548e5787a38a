"""``pylibbpf.elf.validate``: what an object must pass before libbpf parses it, and bounded,
regular-file-only reads (no root, no libbpf)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pylibbpf.elf import BtfKind, ElfError, ObjectFile, read_elf
from pylibbpf.elf.validate import MAX_OBJECT_SIZE, read_object_file, validate_object
from tests.support.bpfbuild import BuildError, compile_bpf

ROOT = Path(__file__).resolve().parents[2]
REGRESSIONS = ROOT / "tests" / "hardening" / "regressions" / "open_mem"


def _type_offsets(data: bytes) -> tuple[int, dict[int, int]]:
    """(file offset of the .BTF type section, {type id: offset of its record in it})."""
    sec = read_elf(data).section_by_name(".BTF")
    assert sec is not None
    btf = sec.data
    hdr_len, type_off, type_len = struct.unpack_from("<I I I", btf, 4)
    base = sec.offset + hdr_len + type_off
    sizes = {BtfKind.INT: 4, BtfKind.ARRAY: 12, BtfKind.VAR: 4, BtfKind.DECL_TAG: 4}
    per_member = {BtfKind.STRUCT: 12, BtfKind.UNION: 12, BtfKind.ENUM: 8, BtfKind.ENUM64: 12,
                  BtfKind.FUNC_PROTO: 8, BtfKind.DATASEC: 12}
    out, pos, type_id = {}, 0, 1
    while pos < type_len:
        info = struct.unpack_from("<I", data, base + pos + 4)[0]
        kind, vlen = BtfKind((info >> 24) & 0x1F), info & 0xFFFF
        out[type_id] = pos
        pos += 12 + sizes.get(kind, 0) + per_member.get(kind, 0) * vlen
        type_id += 1
    return base, out


def _patched(data: bytes, type_id: int, word: int, value: int) -> bytes:
    """``data`` with 32-bit word ``word`` of BTF type ``type_id``'s record set to ``value``."""
    base, offsets = _type_offsets(data)
    out = bytearray(data)
    struct.pack_into("<I", out, base + offsets[type_id] + 4 * word, value)
    return bytes(out)


@pytest.fixture(scope="module")
def counters_data(counters_o: Path) -> bytes:
    return counters_o.read_bytes()


def test_validate_accepts_the_suite_objects() -> None:
    checked = 0
    for src in sorted((ROOT / "tests" / "bpf").glob("*.bpf.c")):
        try:
            data = compile_bpf(src).read_bytes()
        except BuildError:
            continue  # a header this machine lacks
        obj = validate_object(data, src.name.split(".")[0])
        assert isinstance(obj, ObjectFile)
        assert obj.programs, src.name
        checked += 1
    assert checked >= 10


def test_validate_refuses_a_typedef_cycle(counters_data: bytes) -> None:
    """libbpf's skip_mods_and_typedefs() follows such a chain for ever."""
    obj = ObjectFile.from_bytes(counters_data)
    assert obj.btf is not None
    typedef = next(t for t in obj.btf.types if t.kind == BtfKind.TYPEDEF)
    looped = _patched(counters_data, typedef.id, 2, typedef.id)
    with pytest.raises(ElfError, match=rf"type \[{typedef.id}\]: .*cyclic"):
        validate_object(looped)
    const = next((t for t in obj.btf.types if t.kind in (BtfKind.CONST, BtfKind.VOLATILE)),
                 None)
    if const is not None:  # a two-step cycle: typedef -> const -> typedef
        two = _patched(_patched(counters_data, typedef.id, 2, const.id), const.id, 2, typedef.id)
        with pytest.raises(ElfError, match="cyclic"):
            validate_object(two)


def test_validate_refuses_a_datasec_entry_that_is_not_a_variable(counters_data: bytes) -> None:
    obj = ObjectFile.from_bytes(counters_data)
    assert obj.btf is not None
    datasec = next(t for t in obj.btf.types if t.kind == BtfKind.DATASEC and t.secinfos)
    int_type = next(t for t in obj.btf.types if t.kind == BtfKind.INT)
    bad = _patched(counters_data, datasec.id, 3, int_type.id)  # first secinfo's type
    with pytest.raises(ElfError, match="neither a VAR nor a FUNC"):
        validate_object(bad)


@pytest.mark.parametrize("path", sorted(REGRESSIONS.glob("*crash*.bin")), ids=lambda p: p.name)
def test_validate_refuses_inputs_that_crashed_libbpf(path: Path) -> None:
    with pytest.raises(ElfError, match=r"^\.BTF: "):
        validate_object(path.read_bytes())


def test_read_object_file_reads_regular_files(tmp_path: Path, counters_data: bytes) -> None:
    path = tmp_path / "x.o"
    path.write_bytes(counters_data)
    assert read_object_file(path) == counters_data
    assert read_object_file(os.fsencode(path)) == counters_data
    assert ObjectFile.from_path(path).data == counters_data
    with pytest.raises(ElfError, match=f"{len(counters_data)} bytes is more than the 100 "):
        read_object_file(path, max_size=100)
    assert read_object_file(path, max_size=len(counters_data)) == counters_data
    assert MAX_OBJECT_SIZE >= 1 << 28


def test_read_object_file_bounds_files_whose_size_is_not_known() -> None:
    """/proc files report st_size 0 and yield more: the bound still holds."""
    text = read_object_file("/proc/self/status")
    assert b"Name:" in text
    with pytest.raises(ElfError, match="more than the 10 bytes"):
        read_object_file("/proc/self/status", max_size=10)


@pytest.mark.parametrize("path, kind", [("/dev/zero", "a character device"),
                                        ("/", "a directory")])
def test_read_object_file_refuses_special_files(path: str, kind: str) -> None:
    with pytest.raises(ElfError, match=f"not a regular file \\({kind}\\)"):
        read_object_file(path)
    with pytest.raises(ElfError, match="not a regular file"):
        ObjectFile.from_path(path)


def test_read_object_file_does_not_block_on_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.o"
    os.mkfifo(fifo)
    raised: list[BaseException] = []

    def attempt() -> None:
        try:
            ObjectFile.from_path(fifo)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            raised.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():
        with open(fifo, "wb"):
            pass
        pytest.fail("ObjectFile.from_path blocked on a FIFO")
    assert isinstance(raised[0], ElfError) and "(a FIFO)" in str(raised[0])


def test_read_object_file_refuses_nul_in_the_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="null"):
        read_object_file(str(tmp_path / "x.o") + "\0junk")


def test_inspect_refuses_dev_zero_quickly() -> None:
    proc = subprocess.run([sys.executable, "-m", "pylibbpf", "inspect", "/dev/zero"],
                          capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1
    assert proc.stderr.strip() == \
        "pylibbpf inspect: /dev/zero: not a regular file (a character device)"
