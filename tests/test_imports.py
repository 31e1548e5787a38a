"""Import hygiene: no module takes part in an import cycle, and ``__all__`` is the export list."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == 0, done.stderr
    names, star, ctypes_before, libbpf, listed = json.loads(done.stdout)
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
