"""pylibbpf.probe judged by the test suite's own probes (tests/support/features.py, which never
go through pylibbpf), by the kernel version where a feature arrived with one, and by bpftool;
KernelBtf's lookups against ``bpftool btf dump file /sys/kernel/btf/vmlinux format raw``; the
choose_variant example end to end.

Where a tier gives each answer, each is checked: the comparisons run on every tier without
skipping (kprobe_exists is true in a guest with kprobes and false on a kernel without them;
fentry_can_attach is true in a guest and refused by policy under lockdown), and every probe
also meets a target that no kernel has.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from pylibbpf import (
    KernelBtf,
    MapType,
    NotSupportedError,
    ProgType,
    probe,
)
from pylibbpf.btf import module_names
from pylibbpf.elf import BtfKind
from tests.support import features, unprivileged

ROOT = Path(__file__).resolve().parent.parent
VMLINUX = Path("/sys/kernel/btf/vmlinux")
needs_bpftool = pytest.mark.skipif(shutil.which("bpftool") is None, reason="needs bpftool")
needs_vmlinux_btf = pytest.mark.skipif(not VMLINUX.exists(),
                                       reason="the kernel has no BTF (CONFIG_DEBUG_INFO_BTF)")


@pytest.fixture(autouse=True)
def fresh_answers() -> Iterator[None]:
    """Each test asks the kernel itself, not an answer an earlier test left."""
    probe.cache_clear()
    yield
    probe.cache_clear()


# ------------------------------------------------------------------ answers and arguments

def test_an_answer_is_true_only_when_supported() -> None:
    yes = probe.Support(True, "program type XDP")
    policy = probe.Support(False, "fentry on vfs_read", "the kernel's security policy refused it",
                           errno.EPERM)
    missing = probe.Support(False, "tracepoint a:b", "no such tracepoint")
    assert yes and bool(yes) is True and not policy and not missing
    assert policy.refused_by_policy and not missing.refused_by_policy
    assert not yes.refused_by_policy
    yes.require()
    with pytest.raises(NotSupportedError) as info:
        policy.require()
    assert info.value.errno == errno.EPERM
    assert "fentry on vfs_read is not supported: the kernel's security policy" in str(info.value)
    with pytest.raises(NotSupportedError) as info:
        missing.require()
    assert info.value.errno == errno.EOPNOTSUPP
    assert str(yes) == "program type XDP: supported"
    assert str(missing) == "tracepoint a:b: not supported: no such tracepoint"


@pytest.mark.parametrize("call, error", [
    (lambda: probe.probe_prog_type("kprobe"), TypeError),  # type: ignore[arg-type]
    (lambda: probe.probe_prog_type(True), TypeError),
    (lambda: probe.probe_prog_type(-1), ValueError),
    (lambda: probe.probe_map_type(1.0), TypeError),  # type: ignore[arg-type]
    (lambda: probe.probe_helper(ProgType.KPROBE, 0), ValueError),
    (lambda: probe.probe_helper(ProgType.KPROBE, True), TypeError),
    (lambda: probe.probe_helper(ProgType.KPROBE, 1 << 40), ValueError),
    (lambda: probe.fentry_can_attach(""), ValueError),
    (lambda: probe.fentry_can_attach("a/b"), ValueError),
    (lambda: probe.fentry_can_attach(b"vfs_read"), TypeError),  # type: ignore[arg-type]
    (lambda: probe.fentry_can_attach("vfs_read", module="../x"), ValueError),
    (lambda: probe.tp_btf_can_attach("a\0b"), ValueError),
    (lambda: probe.tracepoint_exists("sched", ".."), ValueError),
    (lambda: probe.tracepoint_exists("../sched", "x"), ValueError),
    (lambda: probe.module_btf_exists("."), ValueError),
    (lambda: probe.kprobe_exists(""), ValueError),
    (lambda: probe.ksym_exists("a\0b"), ValueError),
    (lambda: probe.kallsyms_lookup(7), TypeError),  # type: ignore[arg-type]
    (lambda: probe.kfunc_exists("x/y"), ValueError),
    (lambda: probe.helper_id(35), TypeError),  # type: ignore[arg-type]
])
def test_bad_arguments_are_refused_before_the_kernel_is_asked(call: Callable[[], Any],
                                                                error: type[Exception]) -> None:
    with pytest.raises(error):
        call()


# ------------------------------------------------------- the suite's own probes as judges

def _fentry_target() -> str:
    found = features.btf_func_id(*features.FENTRY_TARGETS)
    return found[0] if found is not None else features.FENTRY_TARGETS[0]


def _kprobe_target() -> str:
    return "vfs_read" if features._in_kallsyms("vfs_read") else "do_sys_openat2"


# feature of tests/support/features.py -> the same question asked through pylibbpf.probe
SAME_PROBE: dict[str, Callable[[], probe.Support]] = {
    "raw_tp": lambda: probe.probe_prog_type(ProgType.RAW_TRACEPOINT),
    "xdp": lambda: probe.probe_prog_type(ProgType.XDP),
    "tc": lambda: probe.probe_prog_type(ProgType.SCHED_CLS),
    "cgroup": lambda: probe.probe_prog_type(ProgType.CGROUP_SKB),
    "socket_filter": lambda: probe.probe_prog_type(ProgType.SOCKET_FILTER),
    "sk_lookup": lambda: probe.probe_prog_type(ProgType.SK_LOOKUP),
    "ringbuf": probe.ringbuf_supported,
    "user_ringbuf": lambda: probe.probe_map_type(MapType.USER_RINGBUF),
    "fentry": lambda: probe.fentry_can_attach(_fentry_target()),
    "tp_btf": lambda: probe.tp_btf_can_attach("sys_enter"),
    "kprobe": lambda: probe.kprobe_exists(_kprobe_target()),
    "module_btf": lambda: probe.module_btf_exists((features.module_btf_names() or ["ext4"])[0]),
}


@pytest.mark.kernel
@pytest.mark.parametrize("feature", sorted(SAME_PROBE))
def test_answers_as_the_suites_probe(feature: str) -> None:
    """The same answer as the suite's probe on this kernel, whichever it is: both answers are
    met across the tiers (kprobe: false here, true in the guests; fentry: refused by lockdown
    here, true in the guests; module BTF: only where modules are loaded)."""
    if feature in features.simulated_refusals():
        return  # the suite pretends a refusal the kernel does not make
    ours = SAME_PROBE[feature]()
    theirs = features.missing(feature)
    assert bool(ours) == (theirs is None), f"pylibbpf says {ours}; the suite says {theirs}"
    assert ours.refused_by_policy == isinstance(theirs, features.PolicyRefusal), (ours, theirs)
    if not ours:
        assert ours.reason and ours.what in str(ours)
        with pytest.raises(NotSupportedError):
            ours.require()


@pytest.mark.kernel
def test_answers_are_kept_per_process() -> None:
    first = probe.probe_prog_type(ProgType.RAW_TRACEPOINT)
    assert probe.probe_prog_type(ProgType.RAW_TRACEPOINT) is first
    assert probe.probe_prog_type(int(ProgType.RAW_TRACEPOINT)) is first
    tp = probe.tp_btf_can_attach("sys_enter")
    assert probe.tp_btf_can_attach("sys_enter") is tp
    probe.cache_clear()
    assert probe.probe_prog_type(ProgType.RAW_TRACEPOINT) is not first


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type, since", [(ProgType.SYSCALL, (5, 14)),
                                              (ProgType.SK_LOOKUP, (5, 9)),
                                              (ProgType.KPROBE, (4, 1))])
def test_a_program_type_is_there_from_its_kernel_version(prog_type: ProgType,
                                                         since: tuple[int, int]) -> None:
    """False on the 5.10 guest for SYSCALL, true on the newer tiers."""
    answer = probe.probe_prog_type(prog_type)
    assert bool(answer) == (features.kernel_version() >= since), answer
    if not answer:
        assert answer.errno == errno.EINVAL and not answer.refused_by_policy


@pytest.mark.kernel
@pytest.mark.parametrize("map_type, since", [(MapType.HASH, (3, 19)),
                                             (MapType.BLOOM_FILTER, (5, 16)),
                                             (MapType.USER_RINGBUF, (6, 1))])
def test_a_map_type_is_there_from_its_kernel_version(map_type: MapType,
                                                     since: tuple[int, int]) -> None:
    assert bool(probe.probe_map_type(map_type)) == (features.kernel_version() >= since)


@pytest.mark.kernel
def test_what_libbpf_cannot_probe_raises() -> None:
    with pytest.raises(NotSupportedError, match=r"libbpf \d+\.\d+ cannot probe program type 1000"):
        probe.probe_prog_type(1000)
    with pytest.raises(NotSupportedError, match="cannot probe map type 1000"):
        probe.probe_map_type(1000)
    with pytest.raises(NotSupportedError, match="in TRACING programs"):
        probe.probe_helper(ProgType.TRACING, "bpf_get_current_task")


# --------------------------------------------------------------------------------- helpers

@cache
def _bpftool_btf(path: str = str(VMLINUX), base: str | None = None) -> dict[int, dict[str, Any]]:
    """``bpftool btf dump file PATH format raw`` (JSON), type id -> type."""
    cmd = ["bpftool", "-j", *(["-B", base] if base else []), "btf", "dump", "file", path,
           "format", "raw"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    return {t["id"]: t for t in json.loads(out)["types"]}


def _bpftool_find(types: dict[int, dict[str, Any]], name: str, kind: str) -> dict[str, Any]:
    return next(t for t in types.values() if t["name"] == name and t["kind"] == kind)


@pytest.mark.kernel
@needs_bpftool
@needs_vmlinux_btf
def test_helper_names_are_the_kernels_enum() -> None:
    enum = _bpftool_find(_bpftool_btf(), "bpf_func_id", "ENUM")
    values = {v["name"]: v["val"] for v in enum["values"]}
    assert values["BPF_FUNC_get_current_task"] == 35
    for name, value in values.items():
        if name.startswith("BPF_FUNC_") and name not in ("BPF_FUNC_unspec", "__BPF_FUNC_MAX_ID"):
            short = name[len("BPF_FUNC_"):]
            assert probe.helper_id(short) == value
            assert probe.helper_id(f"bpf_{short}") == value and probe.helper_id(name) == value
    assert probe.helper_id("bpf_no_such_helper") is None


@pytest.mark.kernel
def test_helpers_by_program_type() -> None:
    by_name = probe.probe_helper(ProgType.KPROBE, "bpf_get_current_task")
    assert by_name and by_name.what == "bpf_get_current_task in KPROBE programs"
    assert probe.probe_helper(ProgType.KPROBE, 35)
    assert probe.probe_helper(ProgType.XDP, "bpf_xdp_adjust_head")
    not_here = probe.probe_helper(ProgType.KPROBE, "xdp_adjust_head")
    assert not not_here and "verifier" in (not_here.reason or "")
    unknown = probe.probe_helper(ProgType.KPROBE, 100_000)
    assert not unknown and unknown.what == "helper #100000 in KPROBE programs"
    misspelt = probe.probe_helper(ProgType.KPROBE, "bpf_get_curent_task")
    assert not misspelt and "enum bpf_func_id has no bpf_get_curent_task" in (misspelt.reason
                                                                             or "")
    # libbpf itself would "assume supported" when the program type does not load
    no_type = probe.probe_helper(ProgType.SYSCALL, "bpf_sys_bpf")
    assert bool(no_type) == (features.kernel_version() >= (5, 14))


@pytest.mark.kernel
def test_a_helper_is_there_from_its_kernel_version() -> None:
    """bpf_loop (5.17): false on the 5.10 guest, by name (its enum lacks it) and by number."""
    assert bool(probe.probe_helper(ProgType.KPROBE, "bpf_loop")) == (
        features.kernel_version() >= (5, 17))
    assert bool(probe.probe_helper(ProgType.KPROBE, 181)) == (
        features.kernel_version() >= (5, 17))


# ------------------------------------------------------------------------ BTF-attached

@pytest.mark.kernel
def test_btf_attach_probes_on_targets_no_kernel_has() -> None:
    fentry = probe.fentry_can_attach("pylibbpf_no_such_function")
    assert not fentry and fentry.errno == errno.ENOENT
    assert "has no FUNC pylibbpf_no_such_function" in (fentry.reason or "")
    tp = probe.tp_btf_can_attach("pylibbpf_no_such_tracepoint")
    assert not tp and "TYPEDEF btf_trace_pylibbpf_no_such_tracepoint" in (tp.reason or "")
    in_module = probe.fentry_can_attach("vfs_read", module="pylibbpf_no_such_module")
    assert not in_module and in_module.what == "fentry on vfs_read in module " \
        "pylibbpf_no_such_module"


@pytest.mark.needs("fentry")
def test_fentry_attaches_where_the_kernel_allows_it() -> None:
    answer = probe.fentry_can_attach(_fentry_target())
    assert answer and answer.reason is None


@pytest.mark.needs("tp_btf")
def test_tp_btf_attaches() -> None:
    assert probe.tp_btf_can_attach("sched_switch")
    assert probe.has_vmlinux_btf()


@pytest.mark.kernel
def test_vmlinux_btf_is_found_where_sysfs_has_it() -> None:
    assert bool(probe.has_vmlinux_btf()) == VMLINUX.exists()


@pytest.mark.kernel
@needs_bpftool
@needs_vmlinux_btf
def test_kfuncs_as_bpftool_sees_them() -> None:
    """Where the BTF marks kfuncs (bpf_kfunc DECL_TAGs, this host's 6.18), a kfunc is true and
    an ordinary kernel function false; where it does not (the 5.10 and 6.1 guests), any
    FUNC is what libbpf accepts for a __ksym extern, so true."""
    types = _bpftool_btf()
    tagged = {t["type_id"] for t in types.values()
              if t["kind"] == "DECL_TAG" and t["name"] == "bpf_kfunc"}
    with KernelBtf.vmlinux() as kernel:
        assert kernel.tagged("bpf_kfunc") == tagged
        assert kernel.tagged("pylibbpf_no_such_tag") == frozenset()
    plain = _bpftool_find(types, "vfs_read", "FUNC")
    answer = probe.kfunc_exists("vfs_read")
    if tagged:
        kfunc = types[min(tagged)]["name"]
        assert probe.kfunc_exists(kfunc), kfunc
        assert plain["id"] not in tagged and not answer
        assert "not a kfunc" in (answer.reason or "")
    else:
        assert answer
    missing = probe.kfunc_exists("pylibbpf_no_such_kfunc")
    assert not missing and missing.errno == errno.ENOENT


# -------------------------------------------------------- kallsyms, kprobes, tracepoints

def _kallsyms(name: str) -> list[tuple[int, str]]:
    found = []
    with open("/proc/kallsyms") as f:
        for line in f:
            fields = line.split()
            if fields[2] == name:
                found.append((int(fields[0], 16), fields[1]))
    return found


@pytest.mark.kernel
def test_kallsyms() -> None:
    expected = _kallsyms("vfs_read")
    assert expected
    assert probe.ksym_exists("vfs_read")
    assert probe.kallsyms_lookup("vfs_read") == expected[0][0] != 0
    assert not probe.ksym_exists("pylibbpf_no_such_symbol")
    assert probe.kallsyms_lookup("pylibbpf_no_such_symbol") is None
    assert not probe.ksym_exists("vfs_read", module="pylibbpf_no_such_module")
    # a prefix of a symbol is not that symbol
    assert not probe.ksym_exists("vfs_rea")


@pytest.mark.kernel
def test_kprobes_on_functions_no_kernel_has() -> None:
    answer = probe.kprobe_exists("pylibbpf_no_such_function")
    assert not answer and answer.reason
    if features.missing("kprobe") is None:
        assert answer.errno == errno.ENOENT
    else:
        assert "no kprobes" in answer.reason and answer.errno == errno.EOPNOTSUPP


@pytest.mark.needs("kprobe")
def test_kprobe_on_a_kernel_function() -> None:
    assert probe.kprobe_exists(_kprobe_target())


@pytest.mark.kernel
def test_tracepoints_as_tracefs_lists_them() -> None:
    features.ensure_mounts()
    events = features.TRACEFS / "events"
    for category, name in [("sched", "sched_switch"), ("syscalls", "sys_enter_getpid"),
                           ("sched", "pylibbpf_no_such_event"), ("pylibbpf_none", "x")]:
        answer = probe.tracepoint_exists(category, name)
        assert bool(answer) == (events / category / name / "format").exists(), answer
    assert probe.tracepoint_exists("sched", "sched_switch")
    assert not probe.tracepoint_exists("sched", "pylibbpf_no_such_event")


@pytest.mark.kernel
def test_module_btf_of_a_module_no_kernel_has() -> None:
    answer = probe.module_btf_exists("pylibbpf_no_such_module")
    assert not answer and answer.errno == errno.ENOENT
    assert module_names() == features.module_btf_names()


@pytest.mark.needs("module_btf")
def test_module_btf_of_a_loaded_module() -> None:
    module = features.module_btf_names()[0]
    assert probe.module_btf_exists(module)


# --------------------------------------------------------------------------- privileges

@pytest.mark.kernel
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="no setpriv")
def test_a_process_without_capabilities_gets_an_error_not_a_no() -> None:
    """libbpf's probes answer "no" (program types) or "yes" (helpers) to a process the kernel
    will not even ask; pylibbpf raises BpfPermissionError naming the capability."""
    code = """
import json, pylibbpf
from pylibbpf import probe, ProgType
out = {}
for label, call in [("prog", lambda: probe.probe_prog_type(ProgType.KPROBE)),
                    ("helper", lambda: probe.probe_helper(ProgType.KPROBE, 35)),
                    ("tp_btf", lambda: probe.tp_btf_can_attach("sys_enter")),
                    ("ksym", lambda: probe.ksym_exists("vfs_read"))]:
    try:
        out[label] = bool(call())
    except pylibbpf.BpfPermissionError as e:
        out[label] = ["PERM", e.errno, str(e)]
print(json.dumps(out))
"""
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "--inh-caps=-all", unprivileged.python(), "-c", code],
                          capture_output=True, text=True, env=unprivileged.env(), timeout=120,
                          cwd="/")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for label in ("prog", "helper", "tp_btf"):
        assert out[label][:2] == ["PERM", errno.EPERM], out
        assert "CAP_BPF" in out[label][2], out
    assert out["ksym"] is True  # names are visible to anyone


# ------------------------------------------------------------- KernelBtf against bpftool

def _flat_members(types: dict[int, dict[str, Any]], type_id: int,
                  base: int = 0) -> Iterator[tuple[str, int, int]]:
    """(name, bit offset, bitfield size) of a struct's members as bpftool lists them, anonymous
    struct and union members opened as C does."""
    for m in types[type_id]["members"]:
        offset = base + m["bits_offset"]
        if m["name"] != "(anon)":
            yield m["name"], offset, m.get("bitfield_size", 0)
            continue
        inner = types[m["type_id"]]
        while inner["kind"] in ("TYPEDEF", "CONST", "VOLATILE", "RESTRICT", "TYPE_TAG"):
            inner = types[inner["type_id"]]
        if inner["kind"] in ("STRUCT", "UNION"):
            yield from _flat_members(types, inner["id"], offset)


@pytest.mark.kernel
@needs_bpftool
@needs_vmlinux_btf
@pytest.mark.parametrize("struct", ["task_struct", "sk_buff", "file", "sched_entity"])
def test_struct_layouts_match_bpftool(struct: str) -> None:
    types = _bpftool_btf()
    shown = _bpftool_find(types, struct, "STRUCT")
    members = list(_flat_members(types, shown["id"]))
    assert members
    with KernelBtf.vmlinux() as kernel:
        assert kernel.size_of(struct) == kernel.size_of(f"struct {struct}") == shown["size"]
        for name, bit_offset, bitfield_size in members:
            found = kernel.member(struct, name)
            assert (found.name, found.bit_offset, found.bitfield_size) == (
                name, bit_offset, bitfield_size)
            if bitfield_size or bit_offset % 8:
                with pytest.raises(ValueError, match="bitfield"):
                    kernel.member_offset(struct, name)
            else:
                assert kernel.member_offset(struct, name) == bit_offset // 8


@pytest.mark.kernel
@needs_bpftool
@needs_vmlinux_btf
def test_member_paths_and_function_prototypes_match_bpftool() -> None:
    types = _bpftool_btf()
    task = dict((n, o) for n, o, _ in _flat_members(types, _bpftool_find(types, "task_struct",
                                                                         "STRUCT")["id"]))
    entity = dict((n, o) for n, o, _ in _flat_members(types, _bpftool_find(types, "sched_entity",
                                                                           "STRUCT")["id"]))
    func = _bpftool_find(types, "vfs_read", "FUNC")
    proto = types[func["type_id"]]
    with KernelBtf.vmlinux() as kernel:
        assert kernel.member_offset("task_struct", "se.vruntime") == (
            task["se"] + entity["vruntime"]) // 8
        found = kernel.find("vfs_read", BtfKind.FUNC)
        assert found is not None and found.id == func["id"]
        ours = kernel.type_by_id(found.type_id or 0)
        assert ours.kind == BtfKind.FUNC_PROTO and ours.type_id == proto["ret_type_id"]
        assert [(p.name, p.type_id) for p in ours.params] == [
            (p["name"], p["type_id"]) for p in proto["params"]]
        with pytest.raises(KeyError, match="no member 'pylibbpf_none'"):
            kernel.member("task_struct", "pylibbpf_none")
        with pytest.raises(ValueError, match="not a struct or union"):
            kernel.member("task_struct", "pid.x")
        with pytest.raises(KeyError, match="no type 'struct pylibbpf_none'"):
            kernel.size_of("struct pylibbpf_none")
        with pytest.raises(ValueError, match="not a C type name"):
            kernel.member("struct a b", "x")


@pytest.mark.kernel
@needs_vmlinux_btf
def test_kernel_btf_costs_milliseconds() -> None:
    """Loading vmlinux BTF through libbpf and looking members up: milliseconds, not the
    seconds a full parse in Python takes (measured on the host: open ~15 ms, a member
    lookup well under 1 ms).  The bounds are loose, for slow guests."""
    started = time.perf_counter()
    with KernelBtf.vmlinux() as kernel:
        opened = time.perf_counter() - started
        started = time.perf_counter()
        for name in ("pid", "tgid", "comm", "se", "mm", "flags"):
            kernel.member_offset("task_struct", name)
        looked_up = (time.perf_counter() - started) / 6
    assert opened < 1.0 and looked_up < 0.05, (opened, looked_up)


@pytest.mark.needs("module_btf")
@needs_bpftool
def test_module_btf_lookups_match_bpftool() -> None:
    module = features.module_btf_names()[0]
    path = f"/sys/kernel/btf/{module}"
    types = _bpftool_btf(path, str(VMLINUX))
    own = [t for t in types.values()
           if t["kind"] == "STRUCT" and t["name"] != "(anon)" and t["members"]]
    with KernelBtf.module(module) as btf:
        if not own:
            return  # a module that declares no struct of its own
        shown = own[-1]
        found = btf.find(shown["name"], BtfKind.STRUCT)
        assert found is not None and btf.size_of(found) == shown["size"]
        for name, bit_offset, _ in _flat_members(types, shown["id"]):
            assert btf.member(found, name).bit_offset == bit_offset


# ---------------------------------------------------------------------- the example

def _run_example(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "examples.choose_variant", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.needs("tp_btf")
def test_the_example_loads_tp_btf_where_it_attaches() -> None:
    out = _run_example()
    assert "probe: tp_btf on sched_process_exec: supported" in out
    assert "loaded: exec_btf (tp_btf/sched_process_exec)" in out
    assert re.search(r"^exec of pid \d+ \(true\) seen by tp_btf$", out, re.M), out


@pytest.mark.needs("raw_tp")
def test_the_example_falls_back_to_raw_tp() -> None:
    out = _run_example("--variant", "raw_tp")
    assert "probe:" not in out and "loaded: exec_raw (raw_tp/sched_process_exec)" in out
    assert re.search(r"^exec of pid \d+ \(true\) seen by raw_tp$", out, re.M), out

