"""A package's public names, imported on first use.

A package lists its public names once, as the imports of an ``if TYPE_CHECKING:`` block in its
``__init__.py`` (``from .module import Name as Name``; ``from . import sub as sub`` for a
subpackage).  Type checkers and IDEs read that block; at run time it does not run, and the
package's ``__getattr__`` (:func:`exports`) imports a name's module the first time the name is
used.  ``import pylibbpf`` then loads neither libbpf nor the ctypes layer, and ``import
pylibbpf.errors`` does not read pyelftools.

Pure Python, importing nothing of pylibbpf.
"""

from __future__ import annotations

import ast
import functools
import importlib
from collections.abc import Callable
from typing import Any


@functools.cache
def public_names(init_file: str) -> tuple[dict[str, tuple[str, str | None]], list[str]]:
    """The ``if TYPE_CHECKING:`` imports of ``init_file`` as name -> (module, attribute, or
    ``None`` for a submodule), and ``__all__``: those names and the file's public functions."""
    try:
        with open(init_file, encoding="utf-8") as f:
            source = f.read()
    except OSError as exc:
        raise ImportError("pylibbpf reads a package's public names from the source of its "
                          f"__init__.py, which this installation lacks ({exc})") from None
    exports: dict[str, tuple[str, str | None]] = {}
    functions: list[str] = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.level == 1
                for alias in statement.names:
                    name = alias.asname or alias.name
                    if statement.module is None:
                        exports[name] = (alias.name, None)
                    else:
                        exports[name] = (statement.module, alias.name)
        elif isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            functions.append(node.name)
    return exports, sorted([*exports, *functions])


def exports(package: str, init_file: str, namespace: dict[str, Any]
            ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: a public name's module is imported
    on first use and the value kept in ``namespace`` (the package's globals)."""

    def __getattr__(name: str) -> Any:
        names, public = public_names(init_file)
        if name == "__all__":
            value: Any = public
        elif name in names:
            module, attribute = names[name]
            value = importlib.import_module(f".{module}", package)
            if attribute is not None:
                value = getattr(value, attribute)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *public_names(init_file)[1]})

    return __getattr__, __dir__
