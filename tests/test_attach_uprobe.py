"""uprobe, uretprobe and USDT attach paths on the real kernel, fired in the helper binary
``tests/helpers/uprobe_target.c`` (built at test time).  Programs:
``tests/bpf/attach_uprobe.bpf.c``; counts are kept per process so exact numbers can be asked
of each helper."""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Iterator
from pathlib import Path

import pytest

import pylibbpf
from tests.support import features
from tests.support.attach import (
    Helper,
    helper_binary,
    multiarch_include,
    open_object,
    symbol_file_offset,
)

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


def test_usdt_link_by_section_is_destroyed_with_its_object(binary: Path,
                                                           helpers: list[Helper]) -> None:
    # attach() of a usdt section makes a USDT link too: it keeps its object alive, and the
    # object's close() destroys it before the USDT manager it uses is freed
    o = open_object("attach_uprobe.bpf.c", (f'-DHELPER="{binary}"', *multiarch_include(),
                                            *(["-DWITH_COOKIE"] if COOKIES else [])))
    if not COOKIES:  # before 5.15 a section without a pid cannot trace a PIE binary
        with pytest.raises(pylibbpf.NotSupportedError):
            o.programs["auto_tick"].attach()
        o.close()
        return
    link = o.programs["auto_tick"].attach()
    helper = start(helpers, binary)
    helper.go()
    assert stats(o, helper.pid).auto_ticks == CALLS
    o.close()
    assert link.closed
    with pytest.raises(pylibbpf.ClosedError):
        link.fd  # noqa: B018


@pytest.mark.parametrize("how", ["attach_usdt", "by_section"])
def test_usdt_spec_layout_of_the_other_libbpf_side_is_refused(binary: Path, how: str) -> None:
    """An object built with a usdt.bpf.h from the other side of libbpf 1.7 (its argument specs
    changed size) would attach and read wrong arguments: pylibbpf refuses the attach and says
    which headers to rebuild with; libbpf would not."""
    from pylibbpf import _usdt

    mine = _usdt.spec_size(pylibbpf.libbpf_version())
    other_arg_bytes = 24 if mine == _usdt.SPEC_BEFORE_1_7 else 16
    obj = open_object("usdt_layout.bpf.c",
                      (f"-DSPEC_ARG_BYTES={other_arg_bytes}", f'-DHELPER="{binary}"'))
    try:
        assert obj.maps[_usdt.SPECS_MAP].value_size != mine
        with pytest.raises(pylibbpf.BpfError) as info:
            if how == "attach_usdt":
                obj.programs["on_tick"].attach_usdt(binary, "pylibbpf", "tick")
            else:
                obj.programs["auto_tick"].attach()
        assert info.value.errno == errno.EINVAL
        text = str(info.value)
        assert f"libbpf {pylibbpf.libbpf_version()[0]}.{pylibbpf.libbpf_version()[1]}" in text
        assert "Rebuild the object with the headers of the libbpf it runs with" in text
        ours = {obj.programs[name].info().id for name in ("on_tick", "auto_tick")}
        assert not [link for link in pylibbpf.loaded_links() if link.prog_id in ours]
    finally:
        obj.close()


def test_usdt_spec_sizes_of_each_release() -> None:
    """The layout rule itself: 208-byte specs before libbpf 1.7, 304 from it; a matching object
    passes, a mismatch either way names the headers it was built with."""
    from pylibbpf import _usdt

    assert _usdt.spec_size((1, 1)) == _usdt.spec_size((1, 6)) == 208
    assert _usdt.spec_size((1, 7)) == _usdt.spec_size((2, 0)) == 304
    _usdt.check("o", None, (1, 7))
    _usdt.check("o", 304, (1, 7))
    _usdt.check("o", 208, (1, 5))
    with pytest.raises(pylibbpf.BpfError, match="libbpf 1.6 or older.*208 bytes.*1.7 writes 304"):
        _usdt.check("o", 208, (1, 7))
    with pytest.raises(pylibbpf.BpfError, match="libbpf 1.7 or newer.*304 bytes.*1.1 writes 208"):
        _usdt.check("o", 304, (1, 1))
