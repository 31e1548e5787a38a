"""BTF compiled from C declarations: a header or a string of C, through clang.

clang writes BTF only for the types a global, a map or a function uses, so the types asked for
are anchored: the translation unit is the declarations followed by one pointer global per type
(``struct event *__pylibbpf_anchor_0;``), compiled with ``clang -target bpf -g -c``, and the
object's ``.BTF`` is read by :class:`~pylibbpf.elf.btf.Btf`.  Without names, every
``struct``/``union``/``enum`` tag and ``typedef`` the text itself declares is anchored.

The result is cached by content under ``$XDG_CACHE_HOME/pylibbpf/btf`` (``~/.cache`` by
default): the key covers the translation unit, the flags and the include folders, and an
entry also records every header clang read with its digest, so editing any of them compiles
again.  A cached entry is used without running clang, so a deployment that ships its cache
needs no compiler.  Type layouts are the BPF target's C ABI, the same for every clang release.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..build import BuildError, cache_root, cached, find_clang, run_clang, store
from .btf import Btf
from .errors import ElfError
from .reader import read_elf

__all__ = ["CompileError", "cache_dir", "compile_btf", "declared_names"]

ANCHOR = "__pylibbpf_anchor_"
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_DIRECTIVE = re.compile(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", re.M)
_TAGGED = re.compile(r"\b(struct|union|enum)\s+([A-Za-z_]\w*)\s*\{")
_FUNC_PTR = re.compile(r"\(\s*\*\s*([A-Za-z_]\w*)\s*\)")
_IDENT = re.compile(r"[A-Za-z_]\w*")


class CompileError(BuildError, ValueError):
    """clang refused the declarations; ``diagnostics`` holds what it printed (a ``ValueError``:
    the declarations are the caller's input)."""


def cache_dir() -> Path:
    """Where compiled BTF is kept: ``$XDG_CACHE_HOME/pylibbpf/btf``."""
    return cache_root() / "btf"


def _top_level(text: str) -> list[str]:
    """The statements of ``text`` that end with a ``;`` outside any braces."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
        elif ch == ";" and depth == 0:
            out.append(text[start:i])
            start = i + 1
    return out


def _split_commas(text: str) -> list[str]:
    """``text`` cut at the commas outside parentheses (``a, *b`` but not ``(*f)(int, char)``)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def declared_names(source: str) -> list[str]:
    """The types ``source`` itself declares, as C spells them: ``"struct event"``,
    ``"enum color"``, ``"u32"`` (typedefs); not those of the headers it includes."""
    text = _DIRECTIVE.sub("", _COMMENT.sub(" ", source))
    names = [f"{m.group(1)} {m.group(2)}" for m in _TAGGED.finditer(text)]
    for stmt in _top_level(text):
        stmt = stmt.strip()
        if not re.match(r"typedef\b", stmt):
            continue
        declarators = stmt[stmt.rfind("}") + 1:] if "}" in stmt else stmt[len("typedef"):]
        for part in _split_commas(declarators):
            func = _FUNC_PTR.search(part)
            idents = _IDENT.findall(re.sub(r"\[[^\]]*\]|\(.*", "", part))
            name = func.group(1) if func else (idents[-1] if idents else None)
            if name:
                names.append(name)
    return list(dict.fromkeys(names))


def _clang(clang: str | None) -> str:
    return find_clang(clang, needed_for="compiling C type declarations into BTF (or describe "
                                        "the type with a ctypes.Structure or a NumPy dtype)")


def compile_btf(source: str, names: Sequence[str] = (), *, include_dirs: Sequence[str] = (),
                cflags: Sequence[str] = (), clang: str | None = None,
                cache: Path | str | None = None) -> Btf:
    """The BTF of the types ``names`` (all that ``source`` declares if none) after the C text
    ``source`` (which may ``#include`` headers found in ``include_dirs``).

    Raises :class:`CompileError` (a ``ValueError``) with clang's diagnostics when it refuses,
    and :class:`FileNotFoundError` naming the package when clang is not installed.
    """
    wanted = list(names) or declared_names(source)
    if not wanted:
        raise ValueError("no type to compile: the C text declares no struct, union, enum or "
                         "typedef; name the types")
    anchors = "".join(f"{name} *{ANCHOR}{i};\n" for i, name in enumerate(wanted))
    tu_text = f"{source}\n\n{anchors}"
    dirs = [os.path.abspath(d) for d in include_dirs]
    args = ["-target", "bpf", "-g", "-O0", "-w", "-x", "c", *[f"-I{d}" for d in dirs],
            *cflags]
    key = hashlib.sha256(json.dumps([tu_text, args]).encode()).hexdigest()
    entry = Path(cache or cache_dir()) / f"{key}.btf"
    if cached(entry):
        try:
            return Btf.from_bytes(entry.read_bytes())
        except (OSError, ElfError):
            pass  # unreadable or damaged: compile again
    raw, deps = _compile(_clang(clang), tu_text, args)
    store(entry, raw, deps)
    return Btf.from_bytes(raw)


def _compile(exe: str, tu_text: str, args: list[str]) -> tuple[bytes, list[str]]:
    with tempfile.TemporaryDirectory(prefix="pylibbpf-btf-") as tmp:
        tu, obj = Path(tmp, "types.c"), Path(tmp, "types.o")
        tu.write_text(tu_text)
        try:
            deps = run_clang(exe, args, tu, obj, "the type declarations")
        except BuildError as exc:
            text = exc.diagnostics.replace(str(tu), "<types>")
            lines = text.strip().splitlines()
            shown = "\n".join(lines[:30]) + (f"\n... {len(lines) - 30} more lines"
                                             if len(lines) > 30 else "")
            raise CompileError(f"clang could not compile the type declarations:\n{shown}",
                               exc.diagnostics) from None
        section = read_elf(obj.read_bytes()).section_by_name(".BTF")
        if section is None:
            raise ElfError("clang wrote no .BTF section (is it built with the BPF target?)")
        return section.data, deps
