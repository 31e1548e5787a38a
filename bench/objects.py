"""open + load + close of an object: C, raw ctypes (libbpf's print function off, as C's is
silent) and pylibbpf (its print callback installed, no logging configured: the default)."""

from __future__ import annotations

import time
from contextlib import ExitStack

from pylibbpf import Object

from ._core import Group, Timer
from ._env import Env

_pc = time.perf_counter


def openload_group(env: Env, name: str, title: str) -> Group:
    def setup(stack: ExitStack) -> dict[str, Timer | str]:
        path = env.built.objects[name]
        reps = env.sizes.loads

        def raw() -> float:
            t0 = _pc()
            env.raw.openload(path, reps)
            return (_pc() - t0) / reps

        def pylibbpf() -> float:
            t0 = _pc()
            for _ in range(reps):
                with Object.open_file(path) as obj:
                    obj.load()
            return (_pc() - t0) / reps

        return {"C": lambda: env.c.openload(path, reps) / reps, "raw": raw,
                "pylibbpf": pylibbpf}

    return Group(f"openload-{name}", title, "load", setup)
