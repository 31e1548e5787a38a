"""The print gate and the one-read object reader (what makes open + load + close cheap) must
not change what they do.

libbpf's print function is a level gate (a few instructions of machine code, x86-64) in front
of the Python callback: debug lines nobody listens to never enter Python, warnings always do,
and without a gate (another machine, executable memory refused, ``PYLIBBPF_PRINT_GATE=0``)
every message reaches the callback as before.  An object file is read in one ``read()`` when
it does not change, and whole when it does.  (The verdict cache's tests are in
``test_open_cache.py``.)
"""

from __future__ import annotations

import ctypes
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pylibbpf import Object, _ffi
from pylibbpf._ffi import libc, printcb, printgate
from pylibbpf._ffi.types import libbpf_print_fn_t

ROOT = Path(__file__).resolve().parent.parent
X86_64 = os.uname().machine in ("x86_64", "amd64")
needs_gate = pytest.mark.skipif(not X86_64, reason="the print gate is x86-64 machine code")

# ------------------------------------------------------------------------------- the gate


class _Target:
    """A print function standing in for the Python callback: records what it receives."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, bytes | None, int | None]] = []
        self.fn = libbpf_print_fn_t(self._call)

    def _call(self, level: int, fmt: bytes | None, ap: int | None) -> int:
        self.seen.append((level, fmt, ap))
        return 42

    @property
    def address(self) -> int:
        return ctypes.cast(self.fn, ctypes.c_void_p).value or 0


@pytest.fixture
def target() -> _Target:
    return _Target()


@needs_gate
def test_the_gate_passes_levels_up_to_its_threshold_untouched(target: _Target) -> None:
    gate = printgate.build(target.address)
    assert gate is not None
    call = libbpf_print_fn_t(gate.address)
    assert gate.threshold.value == printgate.OPEN  # open when built
    assert call(2, b"debug %d", 0x1234) == 42
    assert call(-1, b"odd", 7) == 42  # any level passes an open gate
    gate.threshold.value = 0  # warnings only
    assert call(0, b"warn", 0xDEAD_BEEF_F00D) == 42
    assert call(1, b"info", 1) == 0 and call(2, b"debug", 2) == 0 and call(-1, b"odd", 3) == 0
    gate.threshold.value = 1
    assert call(1, b"info", 4) == 42 and call(2, b"debug", 5) == 0
    # what passed arrived as it was given: level, format and the va_list pointer
    assert target.seen == [(2, b"debug %d", 0x1234), (-1, b"odd", 7),
                           (0, b"warn", 0xDEAD_BEEF_F00D), (1, b"info", 4)]


@needs_gate
def test_the_gate_is_read_and_execute_only(target: _Target) -> None:
    gate = printgate.build(target.address)
    assert gate is not None
    with open("/proc/self/maps") as maps:
        for line in maps:
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            if start <= gate.address < end:
                assert line.split()[1].startswith("r-x"), line
                break
        else:
            pytest.fail("the gate's page is not mapped")


def test_no_gate_on_other_machines(target: _Target) -> None:
    assert printgate.build(target.address, machine="aarch64") is None
    assert printgate.build(target.address, machine="riscv64") is None


def test_no_gate_when_turned_off(target: _Target, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(printgate.ENV, "0")
    assert printgate.build(target.address) is None


@needs_gate
def test_no_gate_when_executable_memory_is_refused(target: _Target,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """SELinux execmem, PaX or a W^X policy refuse PROT_EXEC on anonymous memory: the page is
    given back and there is no gate."""
    real = libc.libc()
    unmapped: list[int] = []

    class Refusing:
        def mmap(self, *args: Any) -> Any:
            return real.mmap(*args)

        def mprotect(self, *args: Any) -> int:
            return -1

        def munmap(self, address: int, size: int) -> int:
            unmapped.append(address)
            return int(real.munmap(address, size))

    monkeypatch.setattr(printgate, "libc", Refusing)
    assert printgate.build(target.address) is None
    assert len(unmapped) == 1


class _Counting(logging.Logger):
    """The ``pylibbpf.libbpf`` logger, counting the level checks made of it."""

    def __init__(self, real: logging.Logger) -> None:
        super().__init__(real.name)
        self.real = real
        self.checks = 0

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging's name
        self.checks += 1
        return self.real.isEnabledFor(level)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        self.real.log(level, msg, *args, **kwargs)


@pytest.fixture
def counting_logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Counting]:
    counting = _Counting(printcb.logger)
    monkeypatch.setattr(printcb, "logger", counting)
    yield counting


@needs_gate
@pytest.mark.kernel
def test_debug_lines_nobody_listens_to_never_enter_python(
        minimal_o: Path, counting_logger: _Counting, caplog: pytest.LogCaptureFixture) -> None:
    _ffi.lib()
    assert printcb.gated()
    caplog.set_level(logging.WARNING, logger="pylibbpf.libbpf")
    with Object.open_file(minimal_o) as obj:
        obj.load()
        counting_logger.checks = 0
    with Object.open_file(minimal_o) as obj:
        obj.load()
    # two capture blocks (open, load) ask for DEBUG and INFO once each; without the gate the
    # callback would have asked again for each of libbpf's ~20 debug lines
    assert counting_logger.checks == 4
    assert not [r for r in caplog.records if r.name == "pylibbpf.libbpf"]
    assert printcb._gate is not None and printcb._gate.threshold.value == printgate.OPEN


@pytest.mark.kernel
def test_each_level_reaches_logging_when_someone_listens(
        minimal_o: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pylibbpf.libbpf")
    with Object.open_file(minimal_o) as obj:
        obj.load()
    assert not [r for r in caplog.records if r.levelno == logging.DEBUG]
    caplog.set_level(logging.DEBUG, logger="pylibbpf.libbpf")
    with Object.open_file(minimal_o) as obj:
        obj.load()
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("on_getpid" in m for m in debug), debug
    assert any("created successfully" in m for m in debug), debug


@needs_gate
def test_outside_a_call_the_gate_is_open(minimal_o: Path) -> None:
    """libbpf calls outside capture() blocks get every message to Python, which decides."""
    _ffi.lib()
    assert printcb._gate is not None
    with printcb.capture():
        assert printcb._gate.threshold.value != printgate.OPEN or \
            printcb.logger.isEnabledFor(logging.DEBUG)
    assert printcb._gate.threshold.value == printgate.OPEN


_SCRIPT = """
import logging, sys
import pylibbpf
from pylibbpf._ffi import printcb
seen = []
class Keep(logging.Handler):
    def emit(self, record):
        seen.append((record.levelno, record.getMessage()))
logging.getLogger("pylibbpf.libbpf").addHandler(Keep())
logging.getLogger("pylibbpf.libbpf").setLevel(logging.DEBUG)
with pylibbpf.Object.open_file(sys.argv[1]) as obj:
    obj.load()
    hits = obj.maps["hits"]
    print(printcb.gated(), any(level == logging.DEBUG for level, _ in seen), hits.value_size)
"""


@pytest.mark.kernel
@pytest.mark.parametrize("setting", ["0", "1"])
def test_without_the_gate_the_callback_takes_every_message(minimal_o: Path,
                                                           setting: str) -> None:
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(minimal_o)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, printgate.ENV: setting})
    assert proc.returncode == 0, proc.stderr
    gated = "True" if setting == "1" and X86_64 else "False"
    assert proc.stdout.split() == [gated, "True", "8"]


@needs_gate
@pytest.mark.kernel
def test_a_rejected_program_still_reports_the_verifier_log(
        caplog: pytest.LogCaptureFixture) -> None:
    """Warnings pass the gate narrowed to warnings only: the verifier's log is in the error."""
    from pylibbpf import VerifierError
    from tests.support.bpfbuild import compile_bpf

    caplog.set_level(logging.CRITICAL, logger="pylibbpf")  # the gate's narrowest setting
    _ffi.lib()
    assert printcb.gated()
    with Object.open_file(compile_bpf("rejected.bpf.c")) as obj:
        with pytest.raises(VerifierError) as info:
            obj.load()
    assert "invalid mem access 'map_value_or_null'" in str(info.value)
    assert len(info.value.log.splitlines()) > 1000


# ------------------------------------------------------------------------------- reading


def test_one_read_of_an_unchanging_file(tmp_path: Path, minimal_o: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is read in one read() asking for a byte more than its size; a short read at
    exactly the size is its end."""
    from pylibbpf.elf import reader

    data = minimal_o.read_bytes()
    reads: list[int] = []
    real = os.read

    def counting(fd: int, n: int) -> bytes:
        reads.append(n)
        return real(fd, n)

    monkeypatch.setattr("pylibbpf.elf.reader.os.read", counting)
    assert reader.read_object_file(minimal_o) == data
    assert reads == [len(data) + 1]


def test_short_reads_and_a_file_larger_than_its_size_are_read_whole(
        tmp_path: Path, minimal_o: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pylibbpf.elf import reader

    data = minimal_o.read_bytes()
    real_read, real_fstat = os.read, os.fstat

    def short(fd: int, n: int) -> bytes:  # a filesystem that returns 1000 bytes at most
        return real_read(fd, min(n, 1000))

    with monkeypatch.context() as patch:
        patch.setattr("pylibbpf.elf.reader.os.read", short)
        assert reader.read_object_file(minimal_o) == data

    class Smaller:  # the file grew after fstat
        def __init__(self, fd: int) -> None:
            self.info = real_fstat(fd)
            self.st_mode = self.info.st_mode
            self.st_size = self.info.st_size - 100

    monkeypatch.setattr("pylibbpf.elf.reader.os.fstat", Smaller)
    assert reader.read_object_file(minimal_o) == data
