"""Hostile arguments at every public entry point: only documented exceptions escape.

Every public method of both kinds of Map (ObjectMap, StandaloneMap), Program, Object and Link
(found by introspection, so a method added later is covered without editing this file), every
function of ``pylibbpf.lowlevel`` and ``pylibbpf.perf_event``, ``TcAttachment.attach`` and the
``*Info.from_fd`` constructors get, one parameter at a time, values of the wrong type (str,
bytes, float, None, bool), out-of-range ints (-1, 2**31, 2**32, 2**64, 2**100) and strings
with a NUL, while the other parameters are valid.
What may come out is a return value or one of the documented exceptions: TypeError/ValueError
for bad arguments, KeyError for a missing key, and pylibbpf's BpfError family (ClosedError,
StateError, ...) for what the kernel or libbpf refused.  ctypes.ArgumentError, AttributeError,
OverflowError, MemoryError, struct.error or a plain OSError is a bug, and so is a call that
hangs (10 s).
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pylibbpf
from pylibbpf import (
    BpfError,
    Link,
    Map,
    MapType,
    Object,
    ObjectMap,
    Program,
    ProgType,
    StandaloneMap,
    lowlevel,
    perf_event,
)
from pylibbpf._handle import Handle
from pylibbpf.info import LinkInfo, MapInfo, ProgramInfo
from pylibbpf.tc import TcAttachment
from tests.support.bpfbuild import compile_bpf

pytestmark = pytest.mark.kernel

HOSTILE: list[Any] = [
    "x", "\0", "/sys/fs/bpf/x\0/../../etc", b"x", 1.5, None, True, -1, 2**31, 2**32, 2**64,
    2**100,
]
DOCUMENTED = (TypeError, ValueError, KeyError, BpfError)
EXIT_0 = bytes.fromhex("b700000000000000" "9500000000000000")  # r0 = 0; exit
DUNDERS = ("__getitem__", "__setitem__", "__delitem__", "__contains__")
SECONDS = 10


class _Hung(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Hung(f"no answer in {SECONDS} s")


class World:
    """Valid values for every parameter a call needs besides the hostile one."""

    def __init__(self, stack: contextlib.ExitStack, tmp: Path) -> None:
        self.stack = stack
        self.tmp = tmp
        self.null_fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        stack.callback(os.close, self.null_fd)
        self.map = stack.enter_context(Map.create(MapType.HASH, 4, 8, 16, name="hostile"))
        self.map[0] = 0
        loaded = stack.enter_context(Object.open_file(compile_bpf("minimal.bpf.c")))
        loaded.load()
        self.program = loaded.programs["on_getpid"]
        self.link = stack.enter_context(self.program.attach())
        self.pins = 0

    def pin_path(self) -> str:
        self.pins += 1
        return f"/sys/fs/bpf/pylibbpf_hostile_{os.getpid()}_{self.pins}"

    def value(self, func: str, name: str) -> Any:
        by_name: dict[str, Any] = {
            "key": 0, "value": 0, "keys": [0], "values": [0], "data_in": bytes(64),
            "data": EXIT_0, "insns": EXIT_0, "size_or_buffer": 4096, "license": "GPL",
            "program": self.program, "map": self.map, "map_type": MapType.HASH,
            "key_size": 4, "value_size": 8, "max_entries": 4, "prog_type": ProgType.SOCKET_FILTER,
            "attach_type": pylibbpf.AttachType.CGROUP_INET_INGRESS, "category": "syscalls",
            "name": "sys_enter_getpid", "func_name": "x", "syscall_name": "getpid",
            "function": "x", "binary_path": "/bin/true", "provider": "x", "interface": "lo",
            "cgroup": "/sys/fs/cgroup", "netns": "/proc/self/ns/net", "section": ".bss",
            "prog_fd": self.program.fd, "target_prog_fd": self.program.fd,
            "target_fd": self.null_fd, "perf_event_fd": self.null_fd, "perf_fd": self.null_fd,
            "fd": self.map.fd, "map_id": self.map.info().id, "pid": os.getpid(), "cpu": 0,
            "offset": 0, "size": 4, "what": "key", "ifindex": 1, "attach_point": "ingress",
            "handle": 1, "priority": 1, "map_type_or_fd": self.map.fd, "autoload": True,
            "flags": 0, "level": 1, "extra": 0, "node": 0, "autocreate": True,
            "autoattach": True, "path": self.pin_path(), "pf": 2, "hooknum": 1,
            "attr": perf_event.PerfEventAttr.named("cpu-clock", frequency=1),
        }
        if func in ("info_from_fd",):
            return self.map.fd
        if func.endswith(("Info.from_fd", "task_fd_query")) and name == "fd":
            return self.map.fd
        if func.startswith("lowlevel.map_") and name == "fd":
            return self.map.fd
        if name == "path" and func in ("Object.open_file", "perf_event.open_uprobe",
                                       "perf_event.attach_uprobe"):
            return "/bin/true"
        if name in by_name:
            return by_name[name]
        raise AssertionError(f"{func}: no valid value for parameter {name!r}; add one here")


EXTRA: dict[str, dict[str, Any]] = {  # keyword arguments some calls need to get anywhere
    "perf_event.open_cpu_clock": {"period_ns": 10**9},
    "perf_event.attach_cpu_clock": {"period_ns": 10**9},
}


def _parameters(func: Callable[..., Any]) -> list[inspect.Parameter]:
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return []
    return [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _call(world: World, label: str, func: Callable[..., Any], hostile: str, value: Any) -> Any:
    args: list[Any] = []
    kwargs: dict[str, Any] = dict(EXTRA.get(label, {}))
    for p in _parameters(func):
        if p.name == hostile:
            chosen = value
        elif p.default is not inspect.Parameter.empty:
            continue
        else:
            chosen = world.value(label, p.name)
        if p.kind == p.POSITIONAL_ONLY:
            args.append(chosen)
        else:
            kwargs[p.name] = chosen
    return func(*args, **kwargs)


def _release(result: Any, label: str) -> None:
    if isinstance(result, Handle):
        result.close()
    elif isinstance(result, int) and not isinstance(result, bool) and label.split(".")[-1] in (
            "map_create", "prog_load", "link_create", "open_tracepoint", "open_kprobe",
            "open_uprobe", "open_cpu_clock", "open_event"):
        os.close(result)
    elif hasattr(result, "close") and not isinstance(result, (Object, Map)):
        result.close()


def _try_all(world: World, label: str, func: Callable[..., Any],
             fresh: Callable[[], Callable[..., Any]] | None = None) -> list[str]:
    """Every hostile value at every parameter of ``func``; the problems found."""
    problems = []
    for param in _parameters(func):
        for value in HOSTILE:
            target = fresh() if fresh is not None else func
            signal.alarm(SECONDS)
            try:
                result = _call(world, label, target, param.name, value)
            except DOCUMENTED:
                continue
            except BaseException as exc:  # noqa: BLE001 - reported below
                problems.append(f"{label}({param.name}={value!r}): {type(exc).__name__}: {exc}")
                continue
            finally:
                signal.alarm(0)
            _release(result, label)
    return problems


def _public(cls: type, dunders: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    for name in sorted(dir(cls)):
        if name.startswith("_") and name not in dunders:
            continue
        static = inspect.getattr_static(cls, name)
        if isinstance(static, property) or not callable(getattr(cls, name)):
            continue
        yield name, static


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.chdir(tmp_path)  # relative hostile paths ("x") land here, not in the checkout
    old = signal.signal(signal.SIGALRM, _alarm)
    perf_links = perf_event.links._perf_links
    with contextlib.ExitStack() as stack:
        yield World(stack, tmp_path)
    perf_event.links._perf_links = perf_links
    signal.signal(signal.SIGALRM, old)
    for entry in Path("/sys/fs/bpf").glob(f"pylibbpf_hostile_{os.getpid()}_*"):
        entry.unlink()
    # closed standalone maps keep their fd number until collected; tracebacks of the refused
    # calls hold some of them in cycles: give the numbers back before the next test counts fds
    gc.collect()


def _open_object(stack: contextlib.ExitStack, load: bool) -> Object:
    obj = stack.enter_context(Object.open_file(compile_bpf("minimal.bpf.c")))
    if load:
        obj.load()
    return obj


def test_hostile_values_at_every_map_method(world: World) -> None:
    problems: list[str] = []
    checked = 0
    shapes: dict[str, type[Map]] = {"standalone": StandaloneMap, "open object": ObjectMap,
                                    "loaded object": ObjectMap}
    members = dict(_public(ObjectMap, DUNDERS)) | dict(_public(StandaloneMap, DUNDERS))
    for name, static in sorted(members.items()):
        label = f"Map.{name}"
        if isinstance(static, (classmethod, staticmethod)):
            problems += _try_all(world, label, getattr(Map, name))
            checked += 1
            continue
        for shape, kind in shapes.items():
            if not hasattr(kind, name):
                continue  # a member of the other kind of map only
            with contextlib.ExitStack() as stack:
                def fresh(shape: str = shape, stack: contextlib.ExitStack = stack,
                          name: str = name) -> Callable[..., Any]:
                    m: Map
                    if shape == "standalone":
                        m = stack.enter_context(Map.create(MapType.HASH, 4, 8, 16))
                    else:
                        m = _open_object(stack, shape == "loaded object").maps["hits"]
                    return getattr(m, name)  # type: ignore[no-any-return]

                problems += _try_all(world, f"{label} ({shape})", fresh(), fresh)
                checked += 1
    assert checked > 60
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("loaded", [False, True], ids=["open", "loaded"])
def test_hostile_values_at_every_program_method(world: World, loaded: bool) -> None:
    problems: list[str] = []
    methods = list(_public(Program))
    for name, _static in methods:
        with contextlib.ExitStack() as stack:
            def fresh(stack: contextlib.ExitStack = stack, name: str = name
                      ) -> Callable[..., Any]:
                prog = _open_object(stack, loaded).programs["on_getpid"]
                return getattr(prog, name)  # type: ignore[no-any-return]

            problems += _try_all(world, f"Program.{name}", fresh(), fresh)
    assert len(methods) > 25
    assert not problems, "\n".join(problems)


def test_hostile_values_at_every_object_and_link_method(world: World) -> None:
    problems: list[str] = []
    for name, static in _public(Object):
        if isinstance(static, (classmethod, staticmethod)):
            problems += _try_all(world, f"Object.{name}", getattr(Object, name))
            continue
        for load in (False, True):
            with contextlib.ExitStack() as stack:
                def fresh_object(stack: contextlib.ExitStack = stack, name: str = name,
                                 load: bool = load) -> Callable[..., Any]:
                    return getattr(_open_object(stack, load), name)  # type: ignore[no-any-return]

                problems += _try_all(world, f"Object.{name}", fresh_object(), fresh_object)
    problems += _try_all(world, "Link.open", Link.open)
    for name, _static in _public(Link):
        if name == "open":
            continue
        with contextlib.ExitStack() as stack:
            def fresh_link(stack: contextlib.ExitStack = stack, name: str = name
                           ) -> Callable[..., Any]:
                prog = _open_object(stack, True).programs["on_getpid"]
                return getattr(stack.enter_context(prog.attach()), name)  # type: ignore[no-any-return]

            problems += _try_all(world, f"Link.{name}", fresh_link(), fresh_link)
    assert not problems, "\n".join(problems)


def test_hostile_values_at_every_module_function(world: World) -> None:
    problems: list[str] = []
    functions: list[tuple[str, Callable[..., Any]]] = []
    for module in (lowlevel, perf_event):
        for name in module.__all__:
            func = getattr(module, name)
            if inspect.isfunction(func):
                functions.append((f"{module.__name__.split('.')[-1]}.{name}", func))
    functions += [("TcAttachment.attach", TcAttachment.attach),
                  ("MapInfo.from_fd", MapInfo.from_fd), ("ProgramInfo.from_fd",
                                                         ProgramInfo.from_fd),
                  ("LinkInfo.from_fd", LinkInfo.from_fd)]
    for label, func in functions:
        problems += _try_all(world, label, func)
    assert len(functions) > 25
    assert not problems, "\n".join(problems)
