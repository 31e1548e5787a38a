"""``pylibbpf prog|map|link|btf|feature`` against ``bpftool -j`` for the same ids on the same
kernel: one object (``cli_views.bpf.c``: two programs, a hash of structs, a per-CPU array,
.bss, a raw_tp link) and a map without BTF stay loaded for the module; each test runs both
tools and compares what they print.  Ours runs in this process (``pylibbpf.cli.main`` with its
output captured: a new interpreter per call costs seconds in an emulated guest), except in the
test of the command itself."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pylibbpf import Map, MapType, Object
from pylibbpf.cli import main
from tests.support import features, unprivileged
from tests.support.bpfbuild import compile_bpf

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(shutil.which("bpftool") is None, reason="needs bpftool")]


def ours(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``pylibbpf ARGS`` run by ``pylibbpf.cli.main`` here, as the command would run it."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(args))
        except SystemExit as exc:  # argparse's usage errors
            status = exc.code if isinstance(exc.code, int) else 2
    done = subprocess.CompletedProcess(["pylibbpf", *args], status, out.getvalue(),
                                       err.getvalue())
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_the_command_runs_as_a_program(loaded: Loaded) -> None:
    """``python -m pylibbpf`` in a new interpreter prints what ``main`` prints."""
    done = subprocess.run([sys.executable, "-m", "pylibbpf", "-j", "prog", "show", "id",
                           str(loaded.progs["view_raw"])], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ours_json("prog", "show", "id",
                                                str(loaded.progs["view_raw"]))


def ours_json(*args: str) -> Any:
    return json.loads(ours("-j", *args).stdout)


def bpftool(*args: str) -> Any:
    done = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True,
                          check=True, timeout=300)
    # bpftool 7.1 on Linux 5.10 prints {"error": ...}, before the document itself (its
    # bpf_btf_info asks for fields that kernel lacks): keep the last document not an error
    text, at, docs = done.stdout, 0, []
    decoder = json.JSONDecoder()
    while text[at:].strip(" \n,"):
        at += len(text[at:]) - len(text[at:].lstrip(" \n,"))
        doc, at = decoder.raw_decode(text, at)
        docs.append(doc)
    return [d for d in docs if not (isinstance(d, dict) and set(d) == {"error"})][-1]


def pick(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: data.get(k) for k in keys}


class Loaded:
    def __init__(self, obj: Object, plain: Map) -> None:
        self.obj = obj
        self.plain = plain
        self.progs = {name: p.info().id for name, p in obj.programs.items()}
        self.maps = {name: m.info().id for name, m in obj.maps.items()}
        self.btf_id = obj.maps["view_counts"].info().btf_id


@pytest.fixture(scope="module")
def loaded() -> Iterator[Loaded]:
    with Object.open_file(compile_bpf("cli_views.bpf.c")) as obj:
        obj.load()
        counts = obj.maps["view_counts"]
        value = bytearray(counts.value_size)
        struct.pack_into("=Q16sIh3B", value, 0, 41, b"hello", 7, -3, 1, 2, 3)  # VIEW_DONE
        counts[struct.pack("=I", 1)] = bytes(value)
        percpu = obj.maps["view_percpu"]
        percpu[struct.pack("=I", 1)] = [struct.pack("=Q", cpu * 10 + 1)
                                        for cpu in range(len(percpu[struct.pack("=I", 0)]))]
        link = obj.programs["view_raw"].attach()
        with Map.create(MapType.HASH, 4, 8, 4, name="view_plain") as plain:
            plain[struct.pack("=I", 7)] = struct.pack("=Q", 0x1122334455667788)
            try:
                yield Loaded(obj, plain)
            finally:
                link.destroy()


def test_prog_show_agrees_with_bpftool(loaded: Loaded) -> None:
    fields = ("id", "type", "name", "tag", "gpl_compatible", "uid", "bytes_xlated", "jited",
              "bytes_jited", "bytes_memlock", "btf_id")
    listed = {p["id"]: p for p in ours_json("prog", "list")}
    for name, prog_id in loaded.progs.items():
        theirs = bpftool("prog", "show", "id", str(prog_id))
        mine = ours_json("prog", "show", "id", str(prog_id))
        assert mine["name"] == name and mine["btf_id"] == loaded.btf_id
        assert pick(mine, *fields) == pick(theirs, *fields)
        assert sorted(mine["map_ids"]) == sorted(theirs["map_ids"])
        assert abs(mine["loaded_at"] - theirs["loaded_at"]) <= 1
        assert listed[prog_id] == mine
    by_name = ours_json("prog", "show", "name", "view_tp")
    assert by_name["id"] == loaded.progs["view_tp"]
    text = ours("prog", "show", "id", str(loaded.progs["view_raw"])).stdout
    assert text.startswith(f"{loaded.progs['view_raw']}: raw_tracepoint  name view_raw  tag ")


def test_map_show_agrees_with_bpftool(loaded: Loaded) -> None:
    fields = ("id", "type", "name", "flags", "bytes_key", "bytes_value", "max_entries",
              "bytes_memlock", "frozen", "btf_id")
    ids = [*loaded.maps.values(), loaded.plain.info().id]
    listed = {m["id"]: m for m in ours_json("map", "list")}
    for map_id in ids:
        theirs = bpftool("map", "show", "id", str(map_id))
        mine = ours_json("map", "show", "id", str(map_id))
        assert pick(mine, *fields) == pick(theirs, *fields)
        assert listed[map_id] == mine
    assert ours_json("map", "show", "name", "view_counts")["id"] == loaded.maps["view_counts"]


def test_map_dump_agrees_with_bpftool(loaded: Loaded) -> None:
    """Hex bytes and BTF-formatted values: a struct with a string, an enum and an array, a
    per-CPU array (one value per CPU), .bss (a data section) and a map without BTF."""
    for name in ("view_counts", "view_percpu", ".bss"):
        map_id = str(loaded.maps[next(n for n in loaded.maps if n.endswith(name))])
        assert ours_json("map", "dump", "id", map_id) == bpftool("map", "dump", "id", map_id)
    plain = str(loaded.plain.info().id)
    assert ours_json("map", "dump", "id", plain) == bpftool("map", "dump", "id", plain)
    counts = ours_json("map", "dump", "name", "view_counts")
    assert counts[0]["formatted"] == {"key": 1, "value": {
        "calls": 41, "comm": "hello", "state": "VIEW_DONE", "delta": -3, "flags": [1, 2, 3]}}
    text = ours("map", "dump", "id", plain).stdout
    assert text == "key: 07 00 00 00  value: 88 77 66 55 44 33 22 11\nFound 1 element\n"


def test_link_list_agrees_with_bpftool(loaded: Loaded) -> None:
    mine = {x["id"]: x for x in ours_json("link", "list")}
    theirs = {x["id"]: x for x in bpftool("link", "list")}
    ours_links = [x for x in mine.values() if x["prog_id"] == loaded.progs["view_raw"]]
    assert len(ours_links) == 1
    link = ours_links[0]
    assert link["type"] == "raw_tracepoint" and link["tp_name"] == "sys_enter"
    for link_id in set(mine) & set(theirs):  # links of other tools too, where both saw them
        assert pick(mine[link_id], *theirs[link_id]) == theirs[link_id]
    assert ours_json("link", "show", "id", str(link["id"])) == link


def test_btf_dump_raw_agrees_with_bpftool(loaded: Loaded) -> None:
    btf_id = str(loaded.btf_id)
    text = subprocess.run(["bpftool", "btf", "dump", "id", btf_id], capture_output=True,
                          text=True, check=True).stdout
    assert ours("btf", "dump", "id", btf_id, "format", "raw").stdout == text
    theirs = bpftool("btf", "dump", "id", btf_id)
    assert ours_json("btf", "dump", "id", btf_id) == theirs
    some = [m[1] for m in re.finditer(r"^\[(\d+)\] (STRUCT|ENUM|DATASEC)", text, re.M)]
    roots = [arg for type_id in some for arg in ("root_id", type_id)]
    assert ours_json("btf", "dump", "id", btf_id, *roots)["types"] == [
        t for t in theirs["types"] if str(t["id"]) in some]


def test_btf_dump_c_compiles(loaded: Loaded, tmp_path: Path) -> None:
    btf_id = str(loaded.btf_id)
    header = ours("btf", "dump", "id", btf_id, "format", "c").stdout
    theirs = subprocess.run(["bpftool", "btf", "dump", "id", btf_id, "format", "c"],
                            capture_output=True, text=True, check=True).stdout
    if _bpftool_libbpf() <= (1, 1):  # Debian 12's bpftool: the same text
        assert header == theirs
    else:  # newer ones add __ksym/__weak/kfunc blocks and order typedefs their own way
        assert _declarations(header) == _declarations(theirs)
    (tmp_path / "views.h").write_text(header)
    (tmp_path / "use.c").write_text(
        '#include "views.h"\n'
        "struct view_value used;\n"
        "int size_ok[sizeof(struct view_value) == 40 ? 1 : -1];\n"
        "int state = VIEW_DONE;\n")
    built = subprocess.run(["clang", "-target", "bpf", "-O2", "-Wall", "-Werror", "-c",
                            str(tmp_path / "use.c"), "-o", str(tmp_path / "use.o")],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr


def _declarations(header: str) -> list[str]:
    """The C declarations of a ``format c`` dump, sorted (no preprocessor or comment blocks)."""
    blocks = (b.strip() for b in header.split("\n\n"))
    return sorted(b for b in blocks if b and not b.startswith(("#", "/*")))


def _bpftool_libbpf() -> tuple[int, int]:
    out = subprocess.run(["bpftool", "version"], capture_output=True, text=True).stdout
    found = re.search(r"libbpf v(\d+)\.(\d+)", out)
    return (int(found[1]), int(found[2])) if found else (0, 0)


def test_feature_probe_agrees_with_bpftool() -> None:
    mine = ours_json("feature", "probe", "kernel", "--helpers-of", "kprobe")
    theirs = bpftool("feature", "probe", "kernel")
    assert mine["syscall_config"] == theirs["syscall_config"]
    for key in ("unprivileged_bpf_disabled", "bpf_jit_enable", "bpf_jit_harden"):
        assert mine["system_config"][key] == theirs["system_config"][key]
    for section in ("program_types", "map_types"):
        assert {k: mine[section].get(k) for k in theirs[section]} == theirs[section]
    known = set(theirs["helpers"]["kprobe_available_helpers"])
    # the helpers bpftool's own table names (a newer kernel has more)
    named = {h for listed in theirs["helpers"].values() for h in listed}
    helpers = set(mine["helpers"]["kprobe_available_helpers"])
    assert "bpf_get_current_task" in helpers and "bpf_map_lookup_elem" in helpers
    if features.kernel_version() >= (6, 10) and _bpftool_libbpf() < (1, 5):
        # that libbpf reads the newer verifier's "cannot use helper" as supported: bpftool
        # then lists every helper it knows; ours are the ones that load
        assert helpers & named <= known and "bpf_xdp_adjust_head" not in helpers
    else:
        assert helpers & named == known


def test_unknown_ids_and_bad_usage_fail_clearly() -> None:
    free = 0xFFFFFFF0
    for args, message in ((("prog", "show", "id", str(free)), f"no program with id {free}"),
                          (("map", "dump", "id", str(free)), f"no map with id {free}"),
                          (("link", "show", "id", str(free)), f"no link with id {free}"),
                          (("btf", "dump", "id", str(free)), f"no BTF object with id {free}"),
                          (("map", "dump", "name", "pylibbpf_none"), "no map named")):
        done = ours(*args, check=False)
        assert done.returncode == 1 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    done = ours("map", "dump", check=False)
    assert done.returncode == 2 and "say which one" in done.stderr


def test_missing_privileges_name_the_capability() -> None:
    setpriv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
    done = subprocess.run([*setpriv, unprivileged.python(), "-m", "pylibbpf", "prog", "list"],
                          capture_output=True, text=True, env=unprivileged.env(), timeout=60,
                          cwd="/")
    assert done.returncode == 1 and "CAP_SYS_ADMIN" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
