"""Target grammar of both dialects and the legacy symbol table (no kernel needed)."""

from __future__ import annotations

import errno

import pytest

import compat
from compat import targets
from compat.targets import Phase


@pytest.mark.parametrize(("text", "phase"), [
    ("kprobe:<rcore::syscall::Syscall>::sys_fork", Phase.KPROBE),
    ("KPROBE:<rcore::syscall::Syscall>::sys_fork", Phase.KPROBE),
    ("kretprobe@entry:<rcore::syscall::Syscall>::sys_getppid", Phase.RET_ENTRY),
    ("KRetProbe@Exit:<rcore::syscall::Syscall>::sys_getppid", Phase.RET_EXIT),
])
def test_rcore_grammar(text: str, phase: Phase) -> None:
    t = compat.parse_target(text)
    assert t.phase is phase
    assert t.point.syscalls


def test_rcore_fork_is_the_linux_fork_path() -> None:
    t = compat.parse_target("kprobe:<rcore::syscall::Syscall>::sys_fork")
    assert set(t.point.syscalls) == {"fork", "vfork", "clone", "clone3"}


def test_zcore_grammar_splits_at_first_dollar() -> None:
    t = compat.parse_target("kprobe$<linux_syscall::Syscall>::sys_openat", "zcore")
    assert t.symbol == "<linux_syscall::Syscall>::sys_openat"
    assert t.point.syscalls == ("openat",)
    with pytest.raises(compat.LegacyError) as exc:
        compat.parse_target("kprobe:<linux_syscall::Syscall>::sys_openat", "zcore")
    assert exc.value.errno == errno.EINVAL


@pytest.mark.parametrize("text", ["uprobe:sys_fork", "kprobe", "kretprobe:x", "", "kprobe@x:y"])
def test_bad_grammar_is_einval(text: str) -> None:
    with pytest.raises(compat.LegacyError) as exc:
        compat.parse_target(text)
    assert exc.value.errno == errno.EINVAL


@pytest.mark.parametrize("symbol", ["<rcore::syscall::Syscall>::sys_nosuch",
                                    "<linux_syscall::Syscall>::sys_frobnicate",
                                    "my_crate::thing", "bad symbol!"])
def test_unknown_symbol_is_enoent(symbol: str) -> None:
    with pytest.raises(compat.LegacyError) as exc:
        compat.parse_target(f"kprobe:{symbol}")
    assert exc.value.errno == errno.ENOENT
    assert "register_symbol" in str(exc.value) or "not a kernel symbol" in str(exc.value)


def test_mangled_symbols_demangle() -> None:
    mangled = "_ZN32_$LT$rcore..syscall..Syscall$GT$8sys_fork17h0123456789abcdefE"
    assert compat.demangle(mangled) == "<rcore::syscall::Syscall>::sys_fork"
    plain = "_ZN5rcore7syscall7Syscall11sys_getppid17hfedcba9876543210E"
    assert compat.demangle(plain) == "rcore::syscall::Syscall::sys_getppid"
    assert compat.parse_target(f"kprobe:{mangled}").point.syscalls[0] == "fork"
    assert compat.parse_target(f"kprobe:{plain}").point.syscalls == ("getppid",)
    assert compat.demangle("do_sys_openat2") == "do_sys_openat2"


def test_plain_linux_symbols_pass_through() -> None:
    t = compat.parse_target("kprobe:do_sys_openat2")
    assert t.point.function == "do_sys_openat2" and not t.point.syscalls
    t = compat.parse_target("kretprobe@exit:__x64_sys_getppid")
    assert t.point.syscalls == ("getppid",)


def test_register_symbol_extends_the_table() -> None:
    name = "<my_kernel::Syscall>::sys_thing"
    try:
        compat.register_symbol(name, syscalls=("getppid",))
        assert compat.parse_target(f"kprobe:{name}").point.syscalls == ("getppid",)
    finally:
        targets.SYMBOLS.pop(name, None)
    with pytest.raises(ValueError):
        compat.register_symbol(name)


def test_every_legacy_syscall_is_in_the_table() -> None:
    for name in targets.RCORE_SYSCALLS:
        assert f"<rcore::syscall::Syscall>::sys_{name}" in targets.SYMBOLS
    for name in targets.ZCORE_SYSCALLS:
        assert f"<linux_syscall::Syscall>::sys_{name}" in targets.SYMBOLS
    assert len(targets.RCORE_SYSCALLS) > 150
