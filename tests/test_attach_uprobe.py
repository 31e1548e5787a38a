"""uprobe, uretprobe and USDT attach paths on the real kernel, fired in the helper binary
``tests/helpers/uprobe_target.c`` (built at test time).  Programs:
``tests/bpf/attach_uprobe.bpf.c``; counts are kept per process so exact numbers can be asked
of each helper."""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Iterator
from pathlib import Path

import features
import pytest
from attach_support import Helper, helper_binary, multiarch_include, open_object, symbol_file_offset

import pylibbpf

pytestmark = pytest.mark.kernel

FUNC = "pylibbpf_target"
COOKIES = features.kernel_version() >= (5, 15)  # bpf_get_attach_cookie()
CALLS = 50


class Stats(ctypes.Structure):
    """``struct stats`` of attach_uprobe.bpf.c."""

    _fields_ = [(name, ctypes.c_uint64) for name in (
        "entries", "arg_sum", "returns", "ret_sum", "offsets", "ticks", "tick_sum",
        "last_sum", "cookie", "auto_entries", "auto_ticks")]


@pytest.fixture(scope="module")
def binary() -> Path:
    return helper_binary()


@pytest.fixture
def obj(binary: Path) -> Iterator[pylibbpf.Object]:
    # -DHELPER names the helper in two section names, for attach() by section
    cflags = (f'-DHELPER="{binary}"', *multiarch_include(),
              *(["-DWITH_COOKIE"] if COOKIES else []))
    o = open_object("attach_uprobe.bpf.c", cflags)
    try:
        yield o
    finally:
        o.close()


@pytest.fixture
def helpers(binary: Path) -> Iterator[list[Helper]]:
    started: list[Helper] = []
    try:
        yield started
    finally:
        for helper in started:
            helper.close()


def start(helpers: list[Helper], binary: Path, calls: int = CALLS) -> Helper:
    helper = Helper(binary, calls)
    helpers.append(helper)
    return helper


def stats(obj: pylibbpf.Object, pid: int) -> Stats:
    raw = obj.maps["by_pid"].get(pid)
    return Stats() if raw is None else Stats.from_buffer_copy(raw)


def arg_sum(calls: int) -> int:
    return calls * (calls - 1) // 2


def ret_sum(calls: int) -> int:
    return sum(2 * i + 1 for i in range(calls))


def test_uprobe_by_function_name(obj: pylibbpf.Object, binary: Path,
                                 helpers: list[Helper]) -> None:
    helper = start(helpers, binary)
    cookie = 0xC00C1E if COOKIES else 0  # libbpf: EOPNOTSUPP for a cookie before 5.15
    with obj.programs["on_entry"].attach_uprobe(binary, FUNC, cookie=cookie):
        assert helper.go() == ret_sum(CALLS)
    s = stats(obj, helper.pid)
    assert (s.entries, s.arg_sum) == (CALLS, arg_sum(CALLS))
    assert s.cookie == cookie
    assert s.returns == 0


def test_uretprobe_sees_return_values(obj: pylibbpf.Object, binary: Path,
                                      helpers: list[Helper]) -> None:
    helper = start(helpers, binary)
    with obj.programs["on_return"].attach_uprobe(binary, FUNC, retprobe=True):
        printed = helper.go()
    s = stats(obj, helper.pid)
    assert (s.returns, s.ret_sum, s.entries) == (CALLS, ret_sum(CALLS), 0)
    assert s.ret_sum == printed


def test_uprobe_by_file_offset(obj: pylibbpf.Object, binary: Path,
                               helpers: list[Helper]) -> None:
    offset = symbol_file_offset(binary, FUNC)
    helper = start(helpers, binary)
    with obj.programs["on_offset"].attach_uprobe(binary, offset=offset):
        helper.go()
    assert stats(obj, helper.pid).offsets == CALLS


def test_uprobe_pid_filter(obj: pylibbpf.Object, binary: Path, helpers: list[Helper]) -> None:
    traced, other = start(helpers, binary, 30), start(helpers, binary, 20)
    with obj.programs["on_entry"].attach_uprobe(binary, FUNC, pid=traced.pid):
        traced.go()
        other.go()
    assert stats(obj, traced.pid).entries == 30
    assert stats(obj, other.pid).entries == 0


def test_uprobe_all_processes(obj: pylibbpf.Object, binary: Path,
                              helpers: list[Helper]) -> None:
    a, b = start(helpers, binary, 30), start(helpers, binary, 20)
    with obj.programs["on_entry"].attach_uprobe(binary, FUNC, pid=-1):
        a.go()
        b.go()
    assert (stats(obj, a.pid).entries, stats(obj, b.pid).entries) == (30, 20)


def test_uprobe_by_section(obj: pylibbpf.Object, binary: Path, helpers: list[Helper]) -> None:
    prog = obj.programs["auto_entry"]
    assert prog.section_name == f"uprobe/{binary}:{FUNC}"
    helper = start(helpers, binary)
    with prog.attach():
        helper.go()
    assert stats(obj, helper.pid).auto_entries == CALLS


def test_uprobe_unknown_function_is_enoent(obj: pylibbpf.Object, binary: Path) -> None:
    with pytest.raises(pylibbpf.BpfError) as info:
        obj.programs["on_entry"].attach_uprobe(binary, "no_such_function_xyz")
    assert info.value.errno == errno.ENOENT
    assert "no_such_function_xyz" in str(info.value)


def test_uprobe_missing_binary_is_enoent(obj: pylibbpf.Object, tmp_path: Path) -> None:
    with pytest.raises(pylibbpf.BpfError) as info:
        obj.programs["on_entry"].attach_uprobe(tmp_path / "absent", FUNC)
    assert info.value.errno == errno.ENOENT


def test_usdt_with_arguments(obj: pylibbpf.Object, binary: Path, helpers: list[Helper]) -> None:
    helper = start(helpers, binary)
    with obj.programs["on_tick"].attach_usdt(binary, "pylibbpf", "tick", pid=helper.pid):
        printed = helper.go()
    s = stats(obj, helper.pid)
    assert s.ticks == CALLS
    assert s.tick_sum == arg_sum(CALLS)  # first argument: i
    assert s.last_sum == printed  # second argument: the running sum


def test_usdt_by_section(obj: pylibbpf.Object, binary: Path, helpers: list[Helper]) -> None:
    prog = obj.programs["auto_tick"]
    assert prog.section_name == f"usdt/{binary}:pylibbpf:tick"
    if not COOKIES:
        # a section names no pid, and libbpf needs BPF cookies (5.15) to trace a PIE binary
        # in every process
        with pytest.raises(pylibbpf.NotSupportedError, match="without specific PID"):
            prog.attach()
        return
    helper = start(helpers, binary)
    with prog.attach():
        helper.go()
    assert stats(obj, helper.pid).auto_ticks == CALLS


def test_usdt_unknown_probe_is_enoent(obj: pylibbpf.Object, binary: Path) -> None:
    with pytest.raises(pylibbpf.BpfError) as info:
        obj.programs["on_tick"].attach_usdt(binary, "pylibbpf", "no_such_probe")
    assert info.value.errno == errno.ENOENT
    assert "pylibbpf:no_such_probe" in str(info.value)


def test_usdt_link_is_destroyed_with_its_object(binary: Path, helpers: list[Helper]) -> None:
    # USDT links use their object's USDT manager: closing the object destroys them first
    o = open_object("attach_uprobe.bpf.c", (f'-DHELPER="{binary}"', *multiarch_include()))
    helper = start(helpers, binary)  # a pid that maps the binary (needed before 5.15)
    link = o.programs["on_tick"].attach_usdt(binary, "pylibbpf", "tick", pid=helper.pid)
    assert link.fd >= 0
    o.close()
    assert link.closed
    with pytest.raises(pylibbpf.ClosedError):
        link.fd  # noqa: B018
