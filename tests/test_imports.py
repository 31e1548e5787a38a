"""Import hygiene: no module takes part in an import cycle, and ``__all__`` is the export list."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Run first in a fresh interpreter: fails on an import error (a cycle that breaks), and reports
# every import statement that reaches a module still running its own top level, other than the
# importer itself and a package that is only the container of the submodules asked for (a
# cycle that happens to work today).
_PROBE = r"""
import builtins, importlib, importlib.util, json, sys
found = []
real_import = builtins.__import__

def initializing(name):
    module = sys.modules.get(name)
    return module is not None and getattr(module.__spec__, "_initializing", False)

def traced(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "?")
    if level:
        package = (globals or {}).get("__package__") or importer.rpartition(".")[0]
        target = importlib.util.resolve_name("." * level + name, package)
    else:
        target = name
    subs = [f"{target}.{item}" for item in fromlist or () if item != "*"]
    busy = {module for module in (target, *subs) if initializing(module)}
    result = real_import(name, globals, locals, fromlist, level)
    wanted = subs if subs and all(sub in sys.modules for sub in subs) else [target]
    found.extend(f"{importer} -> {module}" for module in wanted
                 if module in busy and module != importer
                 and importer.partition(".")[0] in ("pylibbpf", "compat"))
    return result

builtins.__import__ = traced
importlib.import_module(sys.argv[1])
print(json.dumps(found))
"""


def _modules() -> list[str]:
    names = []
    for package in ("pylibbpf", "compat"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            names.append(".".join(parts))
    return names


def _import_first(module: str) -> tuple[str, int, str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-c", _PROBE, module], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)
    return module, done.returncode, done.stdout, done.stderr


def test_every_module_imports_first_without_a_cycle() -> None:
    modules = _modules()
    assert "compat.loader" in modules and "pylibbpf.map" in modules
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(_import_first, modules))
    failures = []
    for module, rc, out, err in results:
        if rc != 0:
            failures.append(f"import {module}: {err.strip().splitlines()[-1:]}")
        elif json.loads(out.strip().splitlines()[-1]):
            failures.append(f"import {module}: cycle {json.loads(out.strip().splitlines()[-1])}")
    assert not failures, "\n".join(failures)


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING",
                                                                     "typing.TYPE_CHECKING")


def _runtime_imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``module`` imports when it runs: at its top level or inside a
    function (a deferred import is still a runtime dependency), not under TYPE_CHECKING."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_type_checking(node):
            assert isinstance(node, ast.If)
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (importlib.util.resolve_name("." * node.level + (node.module or ""), package)
                    if node.level else node.module or "")
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name in known and name != module}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_import_cycle_even_through_deferred_imports() -> None:
    """An import inside a function (to dodge a cycle at import time) still makes two modules
    depend on each other: the package's module graph, every runtime import counted, has no
    cycle.  A package's ``__init__`` is left out as a target: importing ``pkg.sub`` runs it, but
    what it re-exports is not a dependency of ``pkg.sub``."""
    paths = {}
    for package in ("pylibbpf", "compat"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            paths[".".join(parts)] = path
    packages = {name for name, path in paths.items() if path.name == "__init__.py"}
    modules = set(paths) - packages
    graph = {name: _runtime_imports(name, paths[name], modules) for name in modules}
    assert graph["pylibbpf.program"] >= {"pylibbpf.attach"}  # the walk sees imports
    assert not _cycles(graph), f"import cycles: {_cycles(graph)}"


def _static_exports() -> list[str]:
    """What a type checker sees pylibbpf export: its ``if TYPE_CHECKING:`` imports re-exported
    with ``X as X``, and the public functions of its ``__init__.py``."""
    tree = ast.parse((ROOT / "pylibbpf" / "__init__.py").read_text(encoding="utf-8"))
    names = []
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom), ast.unparse(statement)
                for alias in statement.names:
                    assert alias.asname == alias.name, f"{alias.name} is not re-exported"
                    names.append(alias.name)
        elif isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            names.append(node.name)
    return sorted(names)


def _fresh_interpreter(code: str) -> Any:
    """What ``code``, run by a new interpreter with this checkout first on its path, prints as
    JSON (a fresh interpreter: what an import loads is not there already)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_all_is_the_export_list() -> None:
    check = (
        "import json, sys, pylibbpf\n"
        "names = list(pylibbpf.__all__)\n"
        "ctypes_before = 'ctypes' in sys.modules\n"
        "star = {}\n"
        "exec('from pylibbpf import *', star)\n"
        "star.pop('__builtins__')\n"
        "libbpf = 'libbpf.so' in open('/proc/self/maps').read()\n"
        "print(json.dumps([names, sorted(star), ctypes_before, libbpf, dir(pylibbpf)]))\n"
    )
    names, star, ctypes_before, libbpf, listed = _fresh_interpreter(check)
    assert names == _static_exports()
    assert star == names
    assert set(names) <= set(listed)
    assert not ctypes_before, "reading pylibbpf.__all__ imported ctypes"
    assert not libbpf, "resolving pylibbpf's public names loaded libbpf"


@pytest.mark.parametrize("name", ["Map", "Object", "Variable", "typed", "libbpf_version"])
def test_public_names_resolve_to_their_module(name: str) -> None:
    import pylibbpf

    value = getattr(pylibbpf, name)
    owner = getattr(value, "__name__", "") if isinstance(value, type(sys)) else value.__module__
    assert owner.startswith("pylibbpf")


def test_elf_names_load_on_first_use() -> None:
    """``pylibbpf.elf`` lists its names once (pylibbpf._lazy): the package and
    ``pylibbpf.errors`` load no pyelftools; a name loads its module; ``import *`` gives all."""
    check = (
        "import json, sys\n"
        "import pylibbpf.errors, pylibbpf.elf\n"
        "before = sorted(m for m in sys.modules if m.startswith('elftools'))\n"
        "star = {}\n"
        "exec('from pylibbpf.elf import *', star)\n"
        "star.pop('__builtins__')\n"
        "from pylibbpf.elf.objectfile import ObjectFile\n"
        "print(json.dumps([before, sorted(star), list(pylibbpf.elf.__all__),\n"
        "                  star['ObjectFile'] is ObjectFile]))\n"
    )
    before, star, listed, same = _fresh_interpreter(check)
    assert before == [], f"importing pylibbpf.errors and pylibbpf.elf read {before}"
    assert star == listed and "ObjectFile" in star and "ElfError" in star
    assert same


def test_event_buffers_import_no_numpy() -> None:
    """NumPy (about 90 ms to import) is loaded by the first batch that needs it (``to_numpy``,
    a ring reader's header checks), not by importing the buffers."""
    check = (
        "import json, sys\n"
        "import pylibbpf.events.ring, pylibbpf.events.perf, pylibbpf.events.aio\n"
        "from pylibbpf.events import _batch\n"
        "print(json.dumps(['numpy' in sys.modules, _batch._numpy() is not None,\n"
        "                  'numpy' in sys.modules]))\n"
    )
    before, found, after = _fresh_interpreter(check)
    assert before is False, "importing the event buffers imported numpy"
    assert after is found
