"""pylibbpf.ksyms: kernel addresses to symbols, from a kallsyms file and from the kernel's own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pylibbpf import BpfError, BpfPermissionError, Ksyms, probe

KALLSYMS = """\
ffffffff81000000 T _stext
ffffffff81000100 t helper
ffffffff81000180 D some_data
ffffffff81000200 W weak_func
ffffffffc0000000 t mod_func\t[mymod]
"""


def test_addresses_map_to_the_code_symbol_holding_them(tmp_path: Path) -> None:
    path = tmp_path / "kallsyms"
    path.write_text(KALLSYMS)
    ksyms = Ksyms.load(str(path))
    assert len(ksyms) == 4                                  # data symbols left out
    sym, offset = ksyms.map_addr(0xffffffff81000190) or (None, 0)
    assert sym is not None and (sym.name, offset) == ("helper", 0x90)
    assert ksyms.describe(0xffffffff81000100) == "helper"
    assert ksyms.describe(0xffffffff81000210) == "weak_func+0x10"
    assert ksyms.describe(0xffffffffc0000004) == "mod_func+0x4 [mymod]"
    assert ksyms.map_addr(0x1000) is None and ksyms.describe(0x1000) == "0x1000"
    found = ksyms.get_symbol("mod_func")
    assert found is not None and (found.address, found.module) == (0xffffffffc0000000, "mymod")
    assert ksyms.get_symbol("nope") is None


def test_hidden_addresses_are_a_permission_error(tmp_path: Path) -> None:
    path = tmp_path / "kallsyms"
    path.write_text("0000000000000000 T _stext\n0000000000000000 t helper\n")
    with pytest.raises(BpfPermissionError, match="kptr_restrict"):
        Ksyms.load(str(path))
    with pytest.raises(BpfError, match="cannot read"):
        Ksyms.load(str(tmp_path / "missing"))


@pytest.mark.kernel
def test_the_kernels_own_symbols() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (CAP_SYSLOG) to see kernel addresses")
    ksyms = Ksyms.load()
    address = probe.kallsyms_lookup("vfs_read")
    assert address
    sym, offset = ksyms.map_addr(address + 3) or (None, 0)
    assert sym is not None and sym.address == address and offset == 3
    assert ksyms.describe(address + 3) in ("vfs_read+0x3", f"{sym.name}+0x3")
