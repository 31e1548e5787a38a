"""Resource safety: the fd tracer itself, every public member of every closed handle type
(found by introspection), and no attachment left behind when an attach sequence fails."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import pkgutil
import re
import textwrap
from collections.abc import Callable, ItemsView, Iterator, KeysView, ValuesView
from pathlib import Path
from typing import Any

import pytest

import pylibbpf
from pylibbpf import BpfError, ClosedError, Map, MapType, Object, ProgType, lowlevel
from pylibbpf._handle import Handle
from pylibbpf.btf import KernelBtf
from pylibbpf.elf import insn as I
from pylibbpf.elf.insn import Instruction
from tests.support import features
from tests.support.attach import autoload_only, bpftool_perf, my_attachments, object_path
from tests.support.bpfbuild import compile_bpf
from tests.support.fdtracer import FdTracer
from tests.support.hardening import fd_count, run_python

pytestmark = pytest.mark.kernel


# ------------------------------------------------------------------------------ the tracer

def _leak_a_map() -> int:
    m = Map.create(MapType.ARRAY, 4, 4, 1, name="leaked_here")
    return m.fd


def test_tracer_names_the_creation_site_of_a_gc_closed_fd(fd_tracer: FdTracer) -> None:
    before = fd_count()
    fd = _leak_a_map()
    leaked = fd_tracer.collect()
    assert len(leaked) == 1
    record = leaked[0]
    assert record.kind == "StandaloneMap" and record.fd == fd
    assert "leaked_here" in record.description
    assert any("_leak_a_map" in line and "test_resources.py" in line for line in record.site)
    assert fd_count() == before  # the tracer still released it


def test_closed_handles_are_not_reported(fd_tracer: FdTracer) -> None:
    created = fd_tracer.created
    with Map.create(MapType.HASH, 4, 4, 4):
        pass
    with Object.open_file(compile_bpf("minimal.bpf.c")) as obj:
        obj.load()
        obj.programs["on_getpid"].attach().destroy()
    assert fd_tracer.created - created == 3
    assert fd_tracer.collect() == []
    assert not fd_tracer.live


def test_a_gc_closed_handle_is_released_even_when_warnings_are_errors() -> None:
    code = textwrap.dedent("""
        import gc, os, pylibbpf
        m = pylibbpf.Map.create(pylibbpf.MapType.ARRAY, 4, 4, 1)
        fd = m.fd
        del m
        gc.collect()
        try:
            os.fstat(fd)
            print("STILL OPEN")
        except OSError:
            print("RELEASED")
    """)
    proc = run_python(["-W", "error", "-c", code])
    assert "ResourceWarning" in proc.stderr  # the leak is still reported
    assert proc.stdout.strip() == "RELEASED", proc.stdout + proc.stderr


# ------------------------------------------------------------------------------ closed handles

# Members that describe the handle rather than use its resource: readable after close.
ALWAYS_AFTER_CLOSE = {"close", "closed", "destroy"}
VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
AFTER_CLOSE: dict[str, set[str]] = {
    "Object": {"path", "loaded", "prepared", "kernel_log", "elf_bytes"},
    "Program": {"object", "log_buf"},  # log_buf: the Python buffer the caller gave
    "ObjectMap": {"object"},
    "StandaloneMap": {"object"},
    "PerfEventLink": {"detach"},  # detach is close
    "PerfEventLinks": {"detach"},
    "TcAttachment": {"detach"},
    "MapAttachment": {"detach"},
    # names and layout of the variables, kept in Python; reading a value raises ClosedError
    "GlobalData": {"__iter__", "__len__", "keys", "variables", "map", "readonly"},
    "PerfBuffer": {"lost", "lost_by_cpu", "page_count"},
    "RingBuffer": {"rings", "pending"},
}


def _handle_classes() -> set[type]:
    for info in pkgutil.iter_modules(pylibbpf.__path__):
        if not info.name.startswith("_") and info.name not in ("cli", "__main__"):
            importlib.import_module(f"pylibbpf.{info.name}")
    found: set[type] = set()
    todo = [Handle]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("pylibbpf.") and sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


# Valid values for parameters whose name says more than their annotation: arguments are
# checked before the handle's state, so a closed handle must be called with valid ones.
VALID_BY_NAME: dict[str, Any] = {
    "keys": [0], "values": [0], "insns": b"\x95" + b"\0" * 7, "size_or_buffer": 4096,
    "interface": "lo", "n": 1,
}


def _argument(param: inspect.Parameter, ctx: dict[str, Any]) -> Any:
    name, note = param.name, str(param.annotation)
    if name in ctx:
        return ctx[name]
    if name in VALID_BY_NAME:
        return VALID_BY_NAME[name]
    if "path" in name:
        return "/sys/fs/bpf/hardening-closed"
    if "Callable" in note or "Callback" in note or name in ("callback", "sample", "lost"):
        return lambda *args: None
    if re.search(r"\bProgram\b", note):
        return ctx["program"]
    if re.search(r"\bMap\b", note):
        return ctx["map"]
    if "bytes" in note and "int" not in note:
        return b"\0" * 4
    if "str" in note and "int" not in note:
        return "x"
    return 0


# Checks that do not depend on the handle's state and come first (no C call either way):
# (label, member) -> the exception raised instead of ClosedError.
STATE_INDEPENDENT = {
    ("RingBuffer", "events"): "StateError",  # callback mode has no queue
    ("PerfBuffer", "events"): "StateError",
    ("RingBuffer", "batches"): "StateError",
    ("PerfBuffer", "batches"): "StateError",
    ("StandaloneMap", "unpin"): "ValueError",  # a standalone map's unpin needs the path
    ("StandaloneMap", "is_internal"): None,  # a standalone map is never internal
}


def _members(obj: Any) -> Iterator[tuple[str, Callable[[], Any]]]:
    cls = type(obj)
    allowed = AFTER_CLOSE.get(cls.__name__, set()) | ALWAYS_AFTER_CLOSE
    for name in sorted(dir(cls)):
        if name.startswith("_") and name not in ("__enter__", "__iter__", "__len__",
                                                 "__getitem__", "__contains__"):
            continue
        if name in allowed:
            continue
        static = inspect.getattr_static(cls, name)
        if isinstance(static, (classmethod, staticmethod)):
            continue  # constructors: they take no closed instance
        if name == "open" and issubclass(cls, pylibbpf.Link):
            yield name, lambda: _deprecated(obj.open)  # the instance side: open_iter's old name
            continue
        if isinstance(static, property) or not callable(static):
            yield name, lambda n=name: getattr(obj, n)  # type: ignore[misc]
            continue
        yield name, lambda n=name: _call(obj, n)  # type: ignore[misc]


def _deprecated(method: Callable[[], Any]) -> Any:
    with pytest.warns(DeprecationWarning):
        return method()


_CTX: dict[str, Any] = {}


def _call(obj: Any, name: str) -> Any:
    method = getattr(obj, name)
    if name in ("__getitem__", "__contains__"):
        return method(0 if not isinstance(obj, pylibbpf.GlobalData) else "x")
    sig = inspect.signature(method)
    args = [_argument(p, _CTX) for p in sig.parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    result = method(*args)
    if isinstance(result, (Iterator, KeysView, ValuesView, ItemsView)):
        list(result)  # views and generators do their work when iterated
    return result


@pytest.fixture
def closed_handles(tmp_path: Path, request: pytest.FixtureRequest
                   ) -> Iterator[dict[str, list[Any]]]:
    """One closed instance of each handle type (both kinds of Map), by class name.

    Of the shared test objects it loads only the programs it uses (the test marks their
    needs), so a program type this kernel refuses does not cost the whole check."""
    stack = contextlib.ExitStack()
    page = os.sysconf("SC_PAGE_SIZE")
    ring = stack.enter_context(Map.create(MapType.RINGBUF, 0, 0, page))
    samples = stack.enter_context(Map.create(MapType.PERF_EVENT_ARRAY, 4, 4,
                                             pylibbpf.num_possible_cpus()))
    minimal = stack.enter_context(Object.open_file(compile_bpf("minimal.bpf.c")))
    minimal.load()
    prog = minimal.programs["on_getpid"]
    out: dict[str, list[Any]] = {}

    def add(instance: Any, close: Callable[[], None] | None = None) -> None:
        (close or instance.close)()
        out.setdefault(type(instance).__name__, []).append(instance)

    add(pylibbpf.RingBuffer(ring, lambda data: None))
    if features.missing("user_ringbuf") is None:
        user_ring = stack.enter_context(Map.create(MapType.USER_RINGBUF, 0, 0, page))
        add(pylibbpf.UserRingBuffer(user_ring))
    add(pylibbpf.PerfBuffer(samples, lambda cpu, data: None))
    add(prog.attach())
    from pylibbpf import perf_event

    add(perf_event.attach_tracepoint(prog.fd, "syscalls", "sys_enter_getppid"))
    sampled = perf_event.PerfEventAttr.named("cpu-clock", frequency=99)
    add(perf_event.open_per_cpu(sampled))
    sampler = lowlevel.prog_load(ProgType.PERF_EVENT, [
        Instruction(I.ALU64 | I.SRC_K | I.ALU_MOV, dst=0, imm=0), Instruction(I.JMP | I.JMP_EXIT),
    ], license="GPL")
    stack.callback(os.close, sampler)
    add(perf_event.attach_per_cpu(sampler, sampled))
    add(Map.create(MapType.HASH, 4, 4, 4))
    if VMLINUX_BTF.exists():
        add(KernelBtf.vmlinux())
    net = stack.enter_context(Object.open_file(object_path("attach_net.bpf.c")))
    tc_name = next(name for name, p in net.programs.items() if p.section_name == "tc")
    autoload_only(net, [tc_name], request)
    net.load()
    tc_prog = net.programs[tc_name]
    add(tc_prog.attach_tc("lo"))
    more = stack.enter_context(Object.open_file(object_path("attach_more.bpf.c")))
    for name, more_prog in more.programs.items():
        more_prog.set_autoload(name == "msg_count")
    more.load()
    add(more.programs["msg_count"].attach_to_map(more.maps["socks"]))
    if features.missing("struct_ops") is None:
        ops = stack.enter_context(Object.open_file(compile_bpf("struct_ops.bpf.c")))
        add(ops.load().maps["ca"].attach_struct_ops())
    _CTX.update(program=prog, map=Map.create(MapType.ARRAY, 4, 4, 1))
    stack.callback(_CTX["map"].close)
    counters = Object.open_file(object_path("counters.bpf.c"))
    autoload_only(counters, [next(iter(counters.programs))], request)
    counters.load()
    data = counters.data
    out["Object"] = [counters]
    out["Program"] = [counters.programs[next(iter(counters.programs))]]
    out["ObjectMap"] = [counters.maps["counts"]]
    out["GlobalData"] = [data]
    counters.close()
    opened = Object.open_file(compile_bpf("minimal.bpf.c"))  # closed before load
    opened.close()
    out["Object (never loaded)"] = [opened]
    try:
        yield out
    finally:
        stack.close()
        _CTX.clear()


@pytest.mark.needs("tc", "tracepoint", "sockmap")
def test_every_public_member_of_every_closed_handle_raises_closed_error(
        closed_handles: dict[str, list[Any]]) -> None:
    classes = {cls.__name__ for cls in _handle_classes()}
    classes.discard("Map")  # the base of ObjectMap and StandaloneMap, never made itself
    if features.missing("user_ringbuf") is not None:
        classes.discard("UserRingBuffer")  # no USER_RINGBUF maps before Linux 6.1
    if features.missing("struct_ops") is not None:
        classes.discard("StructOpsLink")  # no struct_ops (or refused by policy)
    if not VMLINUX_BTF.exists():
        classes.discard("KernelBtf")  # a kernel without BTF (CONFIG_DEBUG_INFO_BTF)
    missing = classes - {name.split(" ")[0] for name in closed_handles}
    assert not missing, f"handle types without a closed-instance factory here: {missing}"
    checked = 0
    wrong: list[str] = []
    for label, instances in closed_handles.items():
        for obj in instances:
            for name, call in _members(obj):
                checked += 1
                expected = STATE_INDEPENDENT.get((label, name), "ClosedError")
                try:
                    call()
                except ClosedError as exc:
                    if exc.errno != 9 or expected != "ClosedError":
                        wrong.append(f"{label}.{name}: ClosedError (errno {exc.errno})")
                except BaseException as exc:  # noqa: BLE001 - listed below
                    if type(exc).__name__ != expected:
                        wrong.append(f"{label}.{name}: {type(exc).__name__}: {exc}")
                else:
                    if expected is not None:
                        wrong.append(f"{label}.{name}: no error after close")
    assert checked > 150
    assert not wrong, f"{len(wrong)} of {checked} members:\n" + "\n".join(wrong)


# ------------------------------------------------------------------------------ attach sequences

def _attachments_of(prog_ids: set[int]) -> tuple[list[int], list[int]]:
    """Attachments of ``prog_ids`` in this process, as pylibbpf (``task_fd_query``) and
    ``bpftool perf`` see them: program ids, sorted.  Unlike listing BPF links, this also sees
    tracepoints attached before perf events had links (Linux < 5.15)."""
    ours = [info.prog_id for info in my_attachments(prog_ids).values()]
    return sorted(ours), sorted(bpftool_perf(prog_ids).values())


class _Boom(RuntimeError):
    pass


@pytest.mark.parametrize("failure", ["attach fails", "caller raises"])
@pytest.mark.needs("tracepoint", "raw_tp")
def test_no_program_stays_attached_after_a_failure_mid_sequence(
        failure: str, request: pytest.FixtureRequest) -> None:
    with Object.open_file(object_path("counters.bpf.c")) as obj:
        autoload_only(obj, ["count_getpid", "count_getppid", "count_raw_enter"], request)
        obj.load()
        first, second, third = (obj.programs[n] for n in (
            "count_getpid", "count_getppid", "count_raw_enter"))
        ids = {p.info().id for p in (first, second, third)}
        expected: type[BaseException] = BpfError if failure == "attach fails" else _Boom
        with pytest.raises(expected):
            with contextlib.ExitStack() as stack:
                stack.enter_context(first.attach())
                stack.enter_context(second.attach())
                ours, theirs = _attachments_of(ids)
                assert ours == theirs == sorted([first.info().id, second.info().id])
                attached = obj.maps["counts"][0]
                os.getpid()
                assert obj.maps["counts"][0] != attached, "the attached program did not run"
                if failure == "attach fails":
                    stack.enter_context(third.attach_tracepoint("syscalls", "no_such_event"))
                else:
                    stack.enter_context(third.attach())
                    raise _Boom("the caller fails after three attaches")
        assert _attachments_of(ids) == ([], [])
        counts = obj.maps["counts"]
        before = counts[0]
        for _ in range(20):
            os.getpid()
        assert counts[0] == before, "a detached program still ran"
