"""errcheck functions: libbpf 1.x return conventions turned into exceptions at the boundary."""

from __future__ import annotations

import ctypes
import errno as _errno
from typing import Any

from ..errors import error_from_errno


def check_neg(result: int, func: Any, args: tuple[Any, ...]) -> int:
    """libbpf 1.x returns ``-errno`` from int functions."""
    if result < 0:
        raise error_from_errno(-result, f"{func.__name__} failed")
    return result


def check_null(result: Any, func: Any, args: tuple[Any, ...]) -> Any:
    """libbpf 1.x returns NULL and sets ``errno`` from pointer functions."""
    if not result:
        err = ctypes.get_errno() or _errno.EINVAL
        raise error_from_errno(err, f"{func.__name__} failed")
    return result


CHECKERS = {"neg": check_neg, "null": check_null}
