"""libbpf's probes, wrapped: program types, map types, helpers (with the verifier's newer
refusal wording that libbpf before 1.5 misreads), the ring buffer."""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
import os

from .. import _ffi
from ..btf import KernelBtf
from ..elf.btf import BtfKind
from ..enums import AttachType, MapType, ProgType
from ..errors import (
    BpfError,
    NotSupportedError,
)
from ._support import (
    _RET0,
    Support,
    _enum_arg,
    _keep,
    _libbpf_cannot,
    _needs,
    _no,
    _refused,
    _type_name,
    _yes,
    on_cache_clear,
)
from .btf_attach import has_vmlinux_btf

# ----------------------------------------------------------------- libbpf's probes, wrapped

def probe_prog_type(prog_type: ProgType | int) -> Support:
    """Can programs of ``prog_type`` be loaded (``libbpf_probe_bpf_prog_type``)?

    libbpf loads a two-instruction program of that type (for tracing and LSM types, one whose
    only fault is its attach target).  Kept per process."""
    return _probe_prog_type(_enum_arg(ProgType, prog_type, "prog_type"))


@_keep
def _probe_prog_type(prog_type: int) -> Support:
    what = f"program type {_type_name(ProgType, prog_type)}"
    ctypes.set_errno(0)
    ret = _ffi.lib().libbpf_probe_bpf_prog_type(prog_type, None)
    err = ctypes.get_errno()
    if ret < 0:
        raise _libbpf_cannot(ret, what)
    if ret == 1:
        return _yes(what)
    return _refused(what, err, _needs(prog_type))


def probe_map_type(map_type: MapType | int) -> Support:
    """Can maps of ``map_type`` be created (``libbpf_probe_bpf_map_type``)?  Kept per
    process."""
    return _probe_map_type(_enum_arg(MapType, map_type, "map_type"))


@_keep
def _probe_map_type(map_type: int) -> Support:
    what = f"map type {_type_name(MapType, map_type)}"
    ctypes.set_errno(0)
    ret = _ffi.lib().libbpf_probe_bpf_map_type(map_type, None)
    err = ctypes.get_errno()
    if ret < 0:
        raise _libbpf_cannot(ret, what)
    if ret == 1:
        return _yes(what)
    return _refused(what, err, ("CAP_BPF",))


def ringbuf_supported() -> Support:
    """Can BPF ring buffers be created (``BPF_MAP_TYPE_RINGBUF``, Linux 5.8)?  Otherwise a
    tool falls back to a perf buffer.  Kept per process."""
    return probe_map_type(MapType.RINGBUF)


@functools.cache
def _helper_ids() -> dict[str, int]:
    """The running kernel's ``enum bpf_func_id`` (UAPI) from its BTF: ``get_current_task``
    -> 35."""
    with KernelBtf.vmlinux() as kernel:
        enum = kernel.find("bpf_func_id", BtfKind.ENUM)
        if enum is None:
            return {}
        return {v.name[len("BPF_FUNC_"):]: v.value for v in enum.enum_values
                if v.name.startswith("BPF_FUNC_") and v.name != "BPF_FUNC_unspec"}


on_cache_clear(_helper_ids.cache_clear)


def helper_id(helper: str) -> int | None:
    """The number of BPF helper ``helper`` (``"bpf_get_current_task"``, ``"get_current_task"``
    or ``"BPF_FUNC_get_current_task"``) in the running kernel's ``enum bpf_func_id``, or None
    when this kernel does not have it.  The enum comes from the kernel's BTF; a kernel without
    BTF raises :class:`~pylibbpf.NotSupportedError` (give the number instead)."""
    if not isinstance(helper, str):
        raise TypeError(f"helper must be a name or an int, not {type(helper).__name__}")
    short = helper.removeprefix("BPF_FUNC_").removeprefix("bpf_")
    if not has_vmlinux_btf():
        raise NotSupportedError(f"the BPF helper {helper!r} is named through the kernel's BTF "
                                "(enum bpf_func_id), which this kernel lacks: pass its number",
                                _errno.ENOENT)
    return _helper_ids().get(short)


def helper_names() -> dict[int, str]:
    """Every BPF helper of the running kernel's ``enum bpf_func_id`` by number:
    ``{35: "bpf_get_current_task", ...}`` (empty without kernel BTF)."""
    if not has_vmlinux_btf():
        return {}
    return {number: f"bpf_{name}" for name, number in sorted(_helper_ids().items(),
                                                            key=lambda item: item[1])}


def probe_helper(prog_type: ProgType | int, helper: int | str) -> Support:
    """Can programs of ``prog_type`` call BPF helper ``helper`` (``libbpf_probe_bpf_helper``)?

    ``helper`` is the helper's number or its name (see :func:`helper_id`).  A name this kernel
    does not know, or a program type it does not have, answers false.  libbpf cannot probe
    the helpers of TRACING, EXT, LSM and STRUCT_OPS programs (NotSupportedError).  Kept per
    process."""
    ptype = _enum_arg(ProgType, prog_type, "prog_type")
    if isinstance(helper, str):
        number = helper_id(helper)
        label = helper if helper.startswith("bpf_") else \
            "bpf_" + helper.removeprefix("BPF_FUNC_")
        if number is None:
            return _no(f"helper {label} in {_type_name(ProgType, ptype)} programs",
                       f"this kernel's enum bpf_func_id has no {label} (a helper of a newer "
                       "kernel, or a misspelt name)")
        return _probe_helper(ptype, number)
    if isinstance(helper, bool) or not isinstance(helper, int):
        raise TypeError(f"helper must be a name or an int, not {type(helper).__name__}")
    if not 0 < helper < 1 << 31:
        raise ValueError(f"helper number {helper} is out of range")
    return _probe_helper(ptype, helper)


def _helper_label(number: int) -> str:
    try:
        names = _helper_ids() if has_vmlinux_btf() else {}
    except BpfError:
        names = {}
    for name, value in names.items():
        if value == number:
            return f"bpf_{name}"
    return f"helper #{number}"


@_keep
def _probe_helper(prog_type: int, number: int) -> Support:
    what = f"{_helper_label(number)} in {_type_name(ProgType, prog_type)} programs"
    if prog_type not in (ProgType.TRACING, ProgType.EXT, ProgType.LSM, ProgType.STRUCT_OPS):
        # libbpf answers "assume supported" when the program type itself does not load
        kind = _probe_prog_type(prog_type)
        if not kind:
            return _no(what, f"{kind.what} is not supported ({kind.reason})", kind.errno)
    ctypes.set_errno(0)
    ret = _ffi.lib().libbpf_probe_bpf_helper(prog_type, number, None)
    err = ctypes.get_errno()
    if ret < 0:
        raise _libbpf_cannot(ret, what)
    if ret == 0:
        return _no(what, "the verifier does not know it or does not allow it in this program "
                   "type", err)
    if err == _errno.EPERM:  # libbpf's "assume supported" after a load that was refused
        return _refused(what, err, _needs(prog_type))
    if err not in (0, _errno.ENOENT):
        # The load failed and libbpf assumed support.  libbpf before 1.5 reads the verifier's
        # log for "unknown func" only, and kernels since 6.10 say "program of this type
        # cannot use helper": read the log again here.
        verdict = _helper_verdict(prog_type, number)
        if verdict is not None:
            return _no(what, f"the verifier says: {verdict}", err)
    return _yes(what)


# the expected attach type (and flags) libbpf's probe loads a program type with
_PROBE_ATTACH = {
    ProgType.CGROUP_SOCK_ADDR: AttachType.CGROUP_INET4_CONNECT,
    ProgType.CGROUP_SOCKOPT: AttachType.CGROUP_GETSOCKOPT,
    ProgType.SK_LOOKUP: AttachType.SK_LOOKUP,
    ProgType.LIRC_MODE2: AttachType.LIRC_MODE2,
    ProgType.NETFILTER: AttachType.NETFILTER,
}
_F_SLEEPABLE = 1 << 4
_NO_HELPER = ("invalid func ", "unknown func ", "program of this type cannot use helper ")


def _helper_verdict(prog_type: int, number: int) -> str | None:
    """Load ``call <number>; exit`` as libbpf's helper probe does; the verifier's line saying
    the helper is unknown or not allowed, else None."""
    from ..lowlevel import prog_load

    code = (0x85).to_bytes(1, "little") + bytes(3) + number.to_bytes(4, "little") + _RET0[8:]
    log: list[str] = []
    try:
        os.close(prog_load(prog_type, code, license="GPL", log_level=1, log_out=log,
                           expected_attach_type=_PROBE_ATTACH.get(ProgType(prog_type), 0),
                           prog_flags=_F_SLEEPABLE if prog_type == ProgType.SYSCALL else 0))
    except BpfError:
        pass
    for line in "".join(log).splitlines():
        if line.startswith(_NO_HELPER):
            return line.strip()
    return None
