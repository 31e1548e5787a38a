"""``Object.open_file``/``open_mem`` validate an object before libbpf parses it.

The check must refuse what would crash libbpf's parser and never an object libbpf opens: every
object of the test suite, the examples and a few compiled shapes opens the same (programs, maps,
their sizes) with and without ``validate``, and loads where it loaded before.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import pylibbpf
from pylibbpf import BpfError, MalformedObjectError, Object
from pylibbpf.elf import ElfError
from tests.support.bpfbuild import BuildError, compile_bpf

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
REGRESSIONS = TESTS / "hardening" / "regressions" / "open_mem"

# Shapes the suite's own objects lack: CO-RE reads, several programs in one section, a static
# sub-program, custom data sections, kconfig externs and kfuncs (weak ksyms).
SHAPES = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";
extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern int CONFIG_HZ __kconfig __weak;
extern struct task_struct *bpf_task_acquire(struct task_struct *p) __ksym __weak;
extern void bpf_task_release(struct task_struct *p) __ksym __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, u32);
	__type(value, u64);
} seen SEC(".maps");

int counter = 1;
const volatile int limit = 5;
u64 scratch[4] SEC(".data.custom");
static const char tag[] SEC(".rodata.str") = "shapes";

static __noinline int helper(int x) { return x * counter + limit; }

SEC("tp_btf/sched_switch")
int BPF_PROG(first, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	u32 pid = BPF_CORE_READ(next, pid);
	u64 one = 1;
	if (bpf_core_field_exists(next->flags))
		bpf_map_update_elem(&seen, &pid, &one, BPF_ANY);
	scratch[0] = LINUX_KERNEL_VERSION + CONFIG_HZ + tag[0];
	return helper(pid);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(second, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return helper(BPF_CORE_READ(prev, tgid));
}

SEC("tp_btf/sched_switch")
int BPF_PROG(third, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct *t;

	if (!bpf_task_acquire)
		return 0;
	t = bpf_task_acquire(next);
	if (t)
		bpf_task_release(t);
	return 0;
}
"""


# what the load test loads both ways (the others only open): objects of several shapes
LOADED = ("shapes.bpf.c", "lathist.bpf.c", "counters.bpf.c", "runqlat.bpf.c")


def _suite_objects(tmp: Path, only: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every object the tests, compat tests and examples build (or those named in ``only``),
    plus the shapes above, with and without BTF."""
    sources = [*sorted((TESTS / "bpf").glob("*.bpf.c")),
               *sorted((TESTS / "elf" / "bpf").glob("*.bpf.c")),
               *sorted((TESTS / "compat" / "bpf").glob("*.c")),
               *sorted((ROOT / "examples").glob("*/*.bpf.c"))]
    shapes = tmp / "shapes.bpf.c"
    shapes.write_text(SHAPES)
    sources.append(shapes)
    if only:
        sources = [src for src in sources if src.name in only]
    # bpfbuild's cache key covers tests/bpf headers only: the compat headers go in a flag
    compat_headers = hashlib.sha256(b"".join(
        p.read_bytes() for p in sorted((TESTS / "compat" / "bpf").glob("*.h")))).hexdigest()
    out: dict[str, bytes] = {}
    for src in sources:
        flags = (f"-DLEGACY_HEADER_DIGEST={compat_headers[:12]}",) if "compat" in src.parts \
            else ()
        for btf in (True, False):
            try:
                path = compile_bpf(src, btf=btf, cflags=flags)
            except BuildError:
                continue
            out[f"{src.name}{'' if btf else ' (no BTF)'}"] = path.read_bytes()
    return out


@pytest.fixture(scope="module")
def suite_objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    objects = _suite_objects(tmp_path_factory.mktemp("shapes"))
    assert len(objects) >= 40, sorted(objects)
    return objects


def _describe(obj: Object) -> tuple[object, ...]:
    return (obj.name,
            [(p.name, p.section_name, p.type, p.insn_cnt) for p in obj.programs.values()],
            [(m.name, m.type, m.key_size, m.value_size, m.max_entries)
             for m in obj.maps.values()])


def _open_outcome(open_: object, *args: object, **kwargs: object) -> tuple[object, ...]:
    try:
        with open_(*args, **kwargs) as obj:  # type: ignore[operator]
            return ("opened", *_describe(obj))
    except BpfError as exc:
        return ("refused", exc.errno)


def test_validation_never_refuses_what_libbpf_opens(suite_objects: dict[str, bytes],
                                                    tmp_path: Path) -> None:
    opened = 0
    for name, data in suite_objects.items():
        path = tmp_path / "prog.bpf.o"
        path.write_bytes(data)
        for open_, arg, kwargs in ((Object.open_mem, data, {"object_name": "o"}),
                                   (Object.open_file, path, {})):
            alone = _open_outcome(open_, arg, validate=False, **kwargs)
            checked = _open_outcome(open_, arg, **kwargs)
            if alone[0] == "opened":
                opened += 1
                assert checked == alone, name
            else:  # refused by both (the validator may name another errno than libbpf)
                assert checked[0] == "refused", name
    assert opened >= 40, "too few objects open at all: the comparison proves little"


def test_suite_shapes_cover_what_they_claim(suite_objects: dict[str, bytes]) -> None:
    from pylibbpf.elf import ObjectFile

    parsed = {}
    for name, data in suite_objects.items():
        try:
            parsed[name] = ObjectFile.from_bytes(data)
        except ElfError:
            assert "no BTF" in name, name  # .maps without BTF: libbpf refuses those too
    assert any(not o.has_btf for o in parsed.values())
    assert any(m.origin == "legacy" for o in parsed.values() for m in o.maps)
    assert any(o.btf_ext is not None and o.btf_ext.core_relos for o in parsed.values())
    assert any(len({p.section_name for p in o.programs}) < len(o.programs)
               for o in parsed.values())
    kinds = {e.kind for o in parsed.values() for e in o.externs}
    assert {"kconfig", "ksym", "kfunc"} <= kinds, kinds


@pytest.mark.kernel
def test_validated_objects_load_as_before(tmp_path: Path) -> None:
    loaded = 0
    for name, data in _suite_objects(tmp_path, only=LOADED).items():
        outcomes = []
        for validate in (False, True):
            try:
                with Object.open_mem(data, object_name="o", validate=validate) as obj:
                    obj.load()
                    outcomes.append("loaded")
            except BpfError as exc:
                outcomes.append(f"errno {exc.errno}")
        if outcomes[0] == "loaded":
            assert outcomes[1] == "loaded", name
            loaded += 1
    assert loaded >= 2


def _run_child(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("path", sorted(REGRESSIONS.glob("*crash*.bin")), ids=lambda p: p.name)
def test_inputs_that_crashed_libbpf_are_refused(path: Path) -> None:
    """In a child: a regression would be a segfault there, not here."""
    proc = _run_child(
        "import errno, sys\n"
        "from pylibbpf import Object, BpfError\n"
        "from pylibbpf.elf import ElfError\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "for opener in (lambda: Object.open_mem(data), lambda: Object.open_file(sys.argv[1])):\n"
        "    try:\n"
        "        opener().close()\n"
        "    except BpfError as exc:\n"
        "        assert isinstance(exc, ElfError) and exc.errno == errno.ENOEXEC, exc\n"
        "        assert 'not a valid eBPF object file' in str(exc), exc\n"
        "    else:\n"
        "        raise SystemExit('opened')\n"
        "print('refused')\n", str(path))
    assert proc.returncode == 0 and proc.stdout == "refused\n", proc.stdout + proc.stderr


def test_malformed_object_error_is_both_kinds() -> None:
    data = (REGRESSIONS / "libbpf-btf-crash-21.bin").read_bytes()
    with pytest.raises(MalformedObjectError) as info:
        Object.open_mem(data, object_name="bad")
    assert isinstance(info.value, BpfError) and isinstance(info.value, ElfError)
    assert isinstance(info.value, OSError) and isinstance(info.value, ValueError)
    assert info.value.errno == errno.ENOEXEC
    assert "failed to open BPF object bad: not a valid eBPF object file: .BTF:" in \
        str(info.value)


def test_validate_false_hands_the_bytes_to_libbpf_alone() -> None:
    data = compile_bpf("counters.bpf.c").read_bytes()
    cut = data[:len(data) // 2]
    with pytest.raises(MalformedObjectError):
        Object.open_mem(cut)
    with pytest.raises(BpfError) as info:
        Object.open_mem(cut, validate=False)
    assert not isinstance(info.value, ElfError), "libbpf's own error, not the validator's"


def test_open_file_keeps_libbpfs_name_and_path(tmp_path: Path) -> None:
    path = tmp_path / "a_rather_long_object_name.bpf.o"
    path.write_bytes(compile_bpf("counters.bpf.c").read_bytes())
    with Object.open_file(path) as checked, Object.open_file(path, validate=False) as alone:
        assert checked.name == alone.name == "a_rather_long_o"
        assert checked.path == alone.path == path
        assert list(checked.maps) == list(alone.maps)
        assert checked.elf_bytes() == path.read_bytes()
    with Object.open_file(path, object_name="renamed") as obj:
        assert obj.name == "renamed"


@pytest.mark.parametrize("validate", [True, False])
def test_open_file_refuses_what_is_not_a_regular_file(tmp_path: Path, validate: bool) -> None:
    fifo = tmp_path / "fifo.o"
    os.mkfifo(fifo)
    result: list[BaseException] = []

    def attempt() -> None:
        try:
            Object.open_file(fifo, validate=validate)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            result.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # unblock the open so the thread can end, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("open_file blocked on a FIFO")
    for target, exc in ((fifo, result[0]), ("/dev/zero", None), (tmp_path, None)):
        if exc is None:
            with pytest.raises(MalformedObjectError) as info:
                Object.open_file(target, validate=validate)
            exc = info.value
        assert isinstance(exc, MalformedObjectError), exc
        assert exc.errno == errno.EINVAL
        assert "not a regular file" in str(exc)


def test_open_refuses_nul_in_paths_and_strings(tmp_path: Path) -> None:
    path = compile_bpf("counters.bpf.c")
    with pytest.raises(ValueError, match="NUL"):
        Object.open_file(str(path) + "\0junk")
    with pytest.raises(ValueError, match="NUL"):
        Object.open_file(str(path) + "\0junk", validate=False)
    for option in ("object_name", "kconfig", "btf_custom_path", "pin_root_path"):
        with pytest.raises(ValueError, match="NUL"):
            options: dict[str, Any] = {option: "x\0y"}
            Object.open_file(path, **options)


def test_missing_file_keeps_its_errno(tmp_path: Path) -> None:
    with pytest.raises(BpfError) as info:
        Object.open_file(tmp_path / "missing.o")
    assert info.value.errno == errno.ENOENT
    assert "missing.o" in str(info.value)
    assert not isinstance(info.value, pylibbpf.NotSupportedError)
