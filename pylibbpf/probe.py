"""Ask the kernel before choosing what to load: feature probes.

A tool that runs on many kernels decides before ``load()`` which variant of a program to load
(``tp_btf`` or ``raw_tp``, ``fentry`` or ``kprobe``, a ring buffer or a perf buffer) and turns
the others off with :meth:`Program.set_autoload <pylibbpf.Program.set_autoload>`; see
``docs/probing.md``.  These are libbpf's probes (``libbpf_probe_bpf_prog_type``,
``libbpf_probe_bpf_map_type``, ``libbpf_probe_bpf_helper``) and the ones libbpf-tools builds on
top of them (``fentry_can_attach``, ``kprobe_exists``, ``tracepoint_exists``, ...)::

    from pylibbpf import probe
    if probe.tp_btf_can_attach("sched_switch"):
        ...
    answer = probe.fentry_can_attach("vfs_read")
    if not answer:
        print("using a kprobe:", answer.reason)

Every probe returns a :class:`Support`: true when the kernel has the feature, false with
``reason`` (a sentence saying why not) and ``errno`` (the kernel's answer, when there was one)
otherwise; :meth:`Support.require` raises :class:`~pylibbpf.NotSupportedError` with that
sentence.  A kernel that has a feature but whose security policy refuses it to a privileged
process (lockdown refuses ``fentry`` with EPERM) answers false, ``refused_by_policy`` set: the
program cannot be used there either.

Probes raise only when they cannot answer: :class:`~pylibbpf.BpfPermissionError` when the
process lacks the capabilities to ask (the kernel says EPERM to a process without CAP_BPF, or
CAP_SYS_ADMIN, and the needed CAP_PERFMON or CAP_NET_ADMIN; libbpf's own probes would answer
"no" there, and its helper probe "yes"), :class:`~pylibbpf.NotSupportedError` when libbpf
cannot probe what was asked (a program type newer than the libbpf loaded, helpers of tracing
programs), :class:`ValueError`/:class:`TypeError` for bad arguments.

Answers that cannot change while the process runs are kept (per process, per argument): the
program, map and helper probes, kernel BTF, and attach probes on vmlinux functions.  Answers a
module load or unload can change (kallsyms, tracepoints, module BTF, targets in modules) are
asked again on every call.  :func:`cache_clear` forgets the kept ones.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from . import _ffi
from ._ffi.structs import bpf_btf_info
from .btf import SYSFS_BTF, KernelBtf, module_names
from .elf.btf import BtfKind
from .enums import AttachType, MapType, ProgType
from .errors import (
    _CAP_BITS,
    BpfError,
    NotSupportedError,
    VerifierError,
    _effective_caps,
    error_from_errno,
)

__all__ = [
    "Support",
    "cache_clear",
    "fentry_can_attach",
    "has_vmlinux_btf",
    "helper_id",
    "kallsyms_lookup",
    "kfunc_exists",
    "kprobe_exists",
    "ksym_exists",
    "module_btf_exists",
    "probe_helper",
    "probe_map_type",
    "probe_prog_type",
    "ringbuf_supported",
    "tp_btf_can_attach",
    "tracepoint_exists",
]

TRACEFS_MOUNTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
"""Where tracefs is looked for: its own mount point, then the one inside debugfs."""
KPROBE_PMU = "/sys/bus/event_source/devices/kprobe/type"
KPROBE_BLACKLIST = "/sys/kernel/debug/kprobes/blacklist"
KALLSYMS = "/proc/kallsyms"
LOCKDOWN = "/sys/kernel/security/lockdown"

_RET0 = bytes.fromhex("b700000000000000" "9500000000000000")  # r0 = 0; exit
_TRACING_CAPS = ("CAP_BPF", "CAP_PERFMON")
_NET_CAPS = ("CAP_BPF", "CAP_NET_ADMIN")
_NET_TYPES = frozenset({
    ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.XDP,
    ProgType.CGROUP_SKB, ProgType.CGROUP_SOCK, ProgType.LWT_IN, ProgType.LWT_OUT,
    ProgType.LWT_XMIT, ProgType.SOCK_OPS, ProgType.SK_SKB, ProgType.SK_MSG,
    ProgType.CGROUP_SOCK_ADDR, ProgType.LWT_SEG6LOCAL, ProgType.SK_REUSEPORT,
    ProgType.FLOW_DISSECTOR, ProgType.CGROUP_SOCKOPT, ProgType.SK_LOOKUP, ProgType.NETFILTER,
})


@dataclass(frozen=True)
class Support:
    """A probe's answer: true (in ``if``, ``bool()``) exactly when the kernel supports
    ``what``.  Compare with ``bool(answer)``, not ``is True``."""

    supported: bool
    what: str
    """What was asked: ``"program type TRACING"``, ``"fentry on vfs_read"``."""
    reason: str | None = None
    """Why not, as a sentence; None when supported."""
    errno: int = 0
    """The kernel's errno behind a "no", when it gave one (0 otherwise)."""

    def __bool__(self) -> bool:
        return self.supported

    @property
    def refused_by_policy(self) -> bool:
        """The kernel has the feature but its security policy (lockdown, an LSM) refused it
        to this privileged process (EPERM)."""
        return not self.supported and self.errno == _errno.EPERM

    def require(self) -> None:
        """Raise :class:`~pylibbpf.NotSupportedError` (``errno`` the kernel's, else
        EOPNOTSUPP) naming ``what`` and ``reason`` unless supported."""
        if not self.supported:
            raise NotSupportedError(f"{self.what} is not supported: {self.reason}",
                                    self.errno or _errno.EOPNOTSUPP)

    def __str__(self) -> str:
        return f"{self.what}: supported" if self.supported else \
            f"{self.what}: not supported: {self.reason}"


def _yes(what: str) -> Support:
    return Support(True, what)


def _no(what: str, reason: str, err: int = 0) -> Support:
    return Support(False, what, reason, err)


# ------------------------------------------------------------------------------- memoizing

_F = TypeVar("_F", bound=Callable[..., Support])
_kept: list[functools._lru_cache_wrapper[Support]] = []


def _keep(func: _F) -> _F:
    """Memoize a probe whose answer cannot change while the process runs (an exception, such
    as a permission error, is not kept)."""
    cached = functools.cache(func)
    _kept.append(cached)
    return functools.wraps(func)(cached)  # type: ignore[return-value]


def cache_clear() -> None:
    """Forget every kept answer (the next call asks the kernel again)."""
    for cached in _kept:
        cached.cache_clear()
    _helper_ids.cache_clear()
    _kprobes_compiled.cache_clear()
    _vmlinux_answers.clear()


# ------------------------------------------------------------------------- kernel's refusals

def _lockdown() -> str | None:
    try:
        text = Path(LOCKDOWN).read_text()
    except OSError:
        return None
    found = re.search(r"\[(\w+)\]", text)
    return found.group(1) if found else None


def _privileged(needs: tuple[str, ...]) -> bool:
    caps = _effective_caps()
    if caps is None:
        return os.geteuid() == 0
    if caps & (1 << _CAP_BITS["CAP_SYS_ADMIN"]):
        return True
    return all(caps & (1 << _CAP_BITS[cap]) for cap in needs)


def _refused(what: str, err: int, needs: tuple[str, ...], detail: str = "") -> Support:
    """The answer for a kernel that said ``err`` to the probe of ``what``.

    EPERM to a process without the capabilities is no answer (raise); to a privileged one it
    is the kernel's security policy saying no, which is the answer."""
    if err == _errno.EPERM:
        if not _privileged(needs):
            raise error_from_errno(err, f"cannot probe {what}", needs)
        mode = _lockdown()
        locked = f" (lockdown: {mode})" if mode not in (None, "none") else ""
        return _no(what, f"the kernel's security policy refused it{locked}", err)
    reason = f"the kernel refused it: {os.strerror(err)}" if err else "the kernel refused it"
    return _no(what, f"{reason}{': ' + detail if detail else ''}", err)


def _needs(prog_type: int) -> tuple[str, ...]:
    return _NET_CAPS if prog_type in _NET_TYPES else _TRACING_CAPS


def _type_name(enum: type[ProgType] | type[MapType], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return str(value)


def _enum_arg(enum: type[ProgType] | type[MapType], value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be a {enum.__name__} or an int, not "
                        f"{type(value).__name__}")
    if value < 0:
        raise ValueError(f"{what} {value} is negative")
    return int(value)


def _libbpf_cannot(ret: int, what: str) -> BpfError:
    major, minor = _ffi.version()
    return error_from_errno(-ret, f"libbpf {major}.{minor} cannot probe {what}")


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
    from .lowlevel import prog_load

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


# ------------------------------------------------------------------------------ kernel BTF

@_keep
def _vmlinux_btf() -> Support:
    try:
        KernelBtf.vmlinux().close()
    except BpfError as exc:
        return _no("kernel BTF", str(exc), exc.errno or _errno.ENOENT)
    return _yes("kernel BTF")


def has_vmlinux_btf() -> Support:
    """Does libbpf find the kernel's BTF (``/sys/kernel/btf/vmlinux``, or where
    ``btf__load_vmlinux_btf`` looks)?  CO-RE, ``tp_btf``, ``fentry`` and kfuncs need it.  Kept
    per process."""
    return _vmlinux_btf()


def _module_arg(module: str, what: str = "module") -> str:
    if not isinstance(module, str):
        raise TypeError(f"{what} must be a str, not {type(module).__name__}")
    if not module or "/" in module or "\0" in module or module in (".", ".."):
        raise ValueError(f"{what} {module!r} is not a kernel module name")
    return module


def module_btf_exists(module: str) -> Support:
    """Does the kernel publish BTF for module ``module`` (``/sys/kernel/btf/<module>``: the
    module is loaded and the kernel has ``CONFIG_DEBUG_INFO_BTF_MODULES``)?  Asked anew on
    every call."""
    name = _module_arg(module)
    what = f"BTF of module {name}"
    if os.access(os.path.join(SYSFS_BTF, name), os.R_OK):
        return _yes(what)
    if not os.path.isdir(SYSFS_BTF):
        return _no(what, f"the kernel publishes no BTF ({SYSFS_BTF} does not exist)",
                   _errno.ENOENT)
    if not module_names():
        return _no(what, "the kernel publishes no module BTF (no loadable modules, or "
                   "CONFIG_DEBUG_INFO_BTF_MODULES is off)", _errno.ENOENT)
    return _no(what, f"module {name} is not loaded or has no BTF", _errno.ENOENT)


# ------------------------------------------------- BTF-attached programs: fentry, tp_btf

# answers about targets in vmlinux, kept: (kind of probe, target) -> answer
_vmlinux_answers: dict[tuple[str, str], Support] = {}


@dataclass(frozen=True)
class _Target:
    type_id: int
    module: str | None  # None: vmlinux


def _find_target(name: str, kind: BtfKind, module: str | None) -> _Target | None:
    """Where libbpf would find an attach target: ``module``'s BTF when given, else vmlinux,
    then every loaded module's (``find_kernel_btf_id``)."""
    with KernelBtf.vmlinux() as vmlinux:
        if module is None:
            found = vmlinux.find(name, kind)
            if found is not None:
                return _Target(found.id, None)
        for candidate in [module] if module is not None else module_names():
            try:
                with KernelBtf.module(candidate, vmlinux) as btf:
                    type_id = _ffi.lib().btf__find_by_name_kind(btf._p, name.encode(),
                                                                int(kind))
            except BpfError:
                continue  # unloaded meanwhile
            if type_id >= len(vmlinux):  # the module's own type, not vmlinux's through it
                return _Target(type_id, candidate)
    return None


def _module_btf_fd(module: str) -> int:
    """An fd of the kernel's BTF object of ``module`` (``attach_btf_obj_fd``); -1 if none."""
    lib = _ffi.lib()
    current, next_id = 0, ctypes.c_uint32()
    while lib.bpf_btf_get_next_id(current, ctypes.byref(next_id)) == 0:
        current = next_id.value
        try:
            fd = int(lib.bpf_btf_get_fd_by_id(current))
        except BpfError:
            continue
        name = ctypes.create_string_buffer(64)
        info = bpf_btf_info(name=ctypes.addressof(name), name_len=len(name))
        size = ctypes.c_uint32(ctypes.sizeof(info))
        try:
            lib.bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size))
        except BpfError:
            os.close(fd)
            continue
        if info.kernel_btf and name.value.decode(errors="replace") == module:
            return fd
        os.close(fd)
    return -1


def _load_and_attach(what: str, attach_type: AttachType, target: _Target) -> Support:
    """Load ``r0 = 0; exit`` as a TRACING program on ``target`` and attach it (as
    libbpf-tools' ``fentry_try_attach``); both are undone at once."""
    from .lowlevel import prog_load

    obj_fd = -1
    if target.module is not None:
        obj_fd = _module_btf_fd(target.module)
        if obj_fd < 0:
            return _no(what, f"the kernel has no BTF object for module {target.module}",
                       _errno.ENOENT)
    try:
        try:
            prog_fd = prog_load(ProgType.TRACING, _RET0, license="GPL",
                                expected_attach_type=attach_type,
                                attach_btf_id=target.type_id,
                                attach_btf_obj_fd=max(obj_fd, 0))
        except VerifierError as exc:
            return _refused(what, exc.errno or _errno.EINVAL, _TRACING_CAPS,
                            exc.verdict or exc.log.strip().splitlines()[-1])
        except BpfError as exc:
            return _refused(what, exc.errno or _errno.EINVAL, _TRACING_CAPS)
        try:
            os.close(_ffi.lib().bpf_raw_tracepoint_open(None, prog_fd))
        except BpfError as exc:
            return _refused(what, exc.errno or _errno.EINVAL, _TRACING_CAPS,
                            "loading worked, attaching did not")
        finally:
            os.close(prog_fd)
    finally:
        if obj_fd >= 0:
            os.close(obj_fd)
    return _yes(what)


def _btf_attach(probe: str, name: str, module: str | None, kind: BtfKind, btf_name: str,
                attach_type: AttachType) -> Support:
    what = f"{probe} on {name}" + (f" in module {module}" if module is not None else "")
    if module is None and (probe, name) in _vmlinux_answers:
        return _vmlinux_answers[(probe, name)]
    btf = has_vmlinux_btf()
    if not btf:
        return _no(what, f"the kernel has no BTF ({btf.reason})", btf.errno)
    target = _find_target(btf_name, kind, module)
    if target is None:
        where = f"module {module}'s BTF" if module is not None else "the kernel's BTF"
        return _no(what, f"{where} has no {kind.name} {btf_name}", _errno.ENOENT)
    answer = _load_and_attach(what, attach_type, target)
    if target.module is None:
        _vmlinux_answers[(probe, name)] = answer
    return answer


def fentry_can_attach(func: str, module: str | None = None) -> Support:
    """Can an ``fentry``/``fexit`` program attach to kernel function ``func``?

    As libbpf-tools' ``fentry_can_attach``: the function is looked up in the kernel's BTF
    (``module``'s when given, else vmlinux, then the loaded modules', where libbpf would look),
    then a two-instruction ``fentry`` program is really loaded against it and attached, and
    both are undone.  False when the kernel has no BTF or no such function, when it cannot
    attach there, or when its policy refuses tracing programs (lockdown: ``refused_by_policy``).
    Answers about vmlinux functions are kept per process."""
    return _btf_attach("fentry", _module_arg(func, "func"),
                       None if module is None else _module_arg(module), BtfKind.FUNC, func,
                       AttachType.TRACE_FENTRY)


def tp_btf_can_attach(name: str, module: str | None = None) -> Support:
    """Can a ``tp_btf`` (BTF-enabled raw tracepoint) program attach to tracepoint ``name``
    (``"sched_switch"``)?

    libbpf finds ``SEC("tp_btf/<name>")``'s target as the typedef ``btf_trace_<name>``; a
    two-instruction program is loaded against it and attached, as :func:`fentry_can_attach`
    does (libbpf-tools' ``probe_tp_btf`` only loads).  Otherwise a tool falls back to
    ``raw_tp``.  Answers about vmlinux tracepoints are kept per process."""
    checked = _module_arg(name, "name")
    return _btf_attach("tp_btf", checked, None if module is None else _module_arg(module),
                       BtfKind.TYPEDEF, f"btf_trace_{checked}", AttachType.TRACE_RAW_TP)


def kfunc_exists(name: str) -> Support:
    """Does the kernel have kfunc ``name`` (what a ``__ksym`` extern function resolves to)?

    The function must be a FUNC in the kernel's BTF (vmlinux, then the loaded modules', as
    libbpf searches for ``__ksym`` externs).  Where the kernel's BTF marks kfuncs (a
    ``bpf_kfunc`` DECL_TAG from pahole's ``decl_tag_kfuncs``), the function must carry the
    mark: then an ordinary kernel function answers false.  On older BTF without the marks a
    FUNC is all libbpf checks before load, so it answers true.  Answers about vmlinux are kept
    per process."""
    checked = _module_arg(name, "name")
    what = f"kfunc {checked}"
    if ("kfunc", checked) in _vmlinux_answers:
        return _vmlinux_answers[("kfunc", checked)]
    btf = has_vmlinux_btf()
    if not btf:
        return _no(what, f"the kernel has no BTF ({btf.reason})", btf.errno)
    with KernelBtf.vmlinux() as vmlinux:
        found = vmlinux.find(checked, BtfKind.FUNC)
        if found is not None:
            answer = _kfunc_answer(vmlinux, found.id, what)
            _vmlinux_answers[("kfunc", checked)] = answer
            return answer
        for module in module_names():
            try:
                with KernelBtf.module(module, vmlinux) as btf_of_module:
                    in_module = btf_of_module.find(checked, BtfKind.FUNC)
                    if in_module is not None and in_module.id >= len(vmlinux):
                        return _kfunc_answer(btf_of_module, in_module.id, what)
            except BpfError:
                continue
    return _no(what, f"no FUNC {checked} in the kernel's BTF (vmlinux and loaded modules)",
               _errno.ENOENT)


def _kfunc_answer(btf: KernelBtf, func_id: int, what: str) -> Support:
    marked = btf.tagged("bpf_kfunc")
    if marked and func_id not in marked:
        return _no(what, f"{btf.name}'s BTF marks its kfuncs with a bpf_kfunc tag and this "
                   "function has none: it is a kernel function, not a kfunc", _errno.ENOENT)
    return _yes(what)


# ----------------------------------------------------- kallsyms, kprobes, tracepoints

def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _symbols(name: str) -> Iterator[tuple[int, str, str | None]]:
    """``(address, type letter, module or None)`` of every ``/proc/kallsyms`` line for
    ``name`` (``ffffffff816b89f0 T vfs_read`` or ``... t name\t[module]``)."""
    data = _read(KALLSYMS)
    if data is None:
        raise BpfError(_errno.ENOENT, f"cannot read {KALLSYMS}")
    needle = b" " + name.encode()
    at = data.find(needle)
    while at >= 0:
        end = at + len(needle)
        if end == len(data) or data[end] in b"\n\t":
            start = data.rfind(b"\n", 0, at) + 1
            stop = data.find(b"\n", end)
            fields = data[start:stop if stop >= 0 else len(data)].split()
            if len(fields) >= 3 and fields[2] == needle[1:]:
                module = fields[3].strip(b"[]").decode() if len(fields) > 3 else None
                yield int(fields[0], 16), fields[1].decode(), module
        at = data.find(needle, end)


def ksym_exists(symbol: str, module: str | None = None) -> Support:
    """Is ``symbol`` in ``/proc/kallsyms`` (of ``module``, when given)?  Needs no privilege
    (addresses may be hidden, names are not).  Asked anew on every call."""
    name = _module_arg(symbol, "symbol")
    what = f"kernel symbol {name}" + (f" in module {module}" if module is not None else "")
    if any(module is None or found_module == module for _, _, found_module in _symbols(name)):
        return _yes(what)
    return _no(what, f"{KALLSYMS} has no {name}" +
               (f" of module {module}" if module is not None else ""), _errno.ENOENT)


def kallsyms_lookup(symbol: str, module: str | None = None) -> int | None:
    """The address of ``symbol`` in ``/proc/kallsyms`` (of ``module``, when given), or None
    when the kernel has no such symbol.  Raises :class:`~pylibbpf.BpfPermissionError` when
    the kernel hides addresses from this process (``kernel.kptr_restrict``; CAP_SYSLOG sees
    them).  Read anew on every call."""
    name = _module_arg(symbol, "symbol")
    for address, _, found_module in _symbols(name):
        if module is not None and found_module != module:
            continue
        if address == 0:
            from .errors import BpfPermissionError

            raise BpfPermissionError(_errno.EPERM, f"{KALLSYMS} hides the address of {name} "
                                     "from this process (kernel.kptr_restrict; needs "
                                     "CAP_SYSLOG)")
        return address
    return None


def _tracefs_file(*parts: str) -> str | None:
    for mount in TRACEFS_MOUNTS:
        path = os.path.join(mount, *parts)
        if os.path.exists(path):
            return path
    return None


@functools.cache
def _kprobes_compiled() -> bool:
    return os.path.exists(KPROBE_PMU) or _tracefs_file("kprobe_events") is not None


def _blacklisted(func: str) -> bool:
    data = _read(KPROBE_BLACKLIST)
    return data is not None and re.search(rb"\s" + re.escape(func.encode()) + rb"$", data,
                                          re.M) is not None


def kprobe_exists(func: str) -> Support:
    """Can a kprobe be put on kernel function ``func``?

    False when the kernel has no kprobes (neither the ``kprobe`` perf PMU nor tracefs's
    ``kprobe_events``: ``CONFIG_KPROBES`` or ``CONFIG_KPROBE_EVENTS`` off), or ``func`` is on
    the kprobe blacklist.  Then, as libbpf-tools' ``kprobe_exists``: true when tracefs's
    ``available_filter_functions`` lists it, false when it does not; when that file cannot be
    read, true when ``/proc/kallsyms`` has it.  Asked anew on every call (modules)."""
    name = _module_arg(func, "func")
    what = f"kprobe on {name}"
    if not _kprobes_compiled():
        return _no(what, "this kernel has no kprobes (no kprobe PMU in "
                   "/sys/bus/event_source/devices, no kprobe_events in tracefs: CONFIG_KPROBES "
                   "or CONFIG_KPROBE_EVENTS is off)", _errno.EOPNOTSUPP)
    if _blacklisted(name):
        return _no(what, f"{name} is on the kernel's kprobe blacklist", _errno.EINVAL)
    listing = _tracefs_file("available_filter_functions")
    data = _read(listing) if listing is not None else None
    if data is not None:
        if re.search(rb"^" + re.escape(name.encode()) + rb"(?:\s|$)", data, re.M):
            return _yes(what)
        return _no(what, f"{name} is not in available_filter_functions (no such function, "
                   "inlined, or not traceable)", _errno.ENOENT)
    if any(kind in "tT" for _, kind, _ in _symbols(name)):
        return _yes(what)
    return _no(what, f"{KALLSYMS} has no function {name}", _errno.ENOENT)


def tracepoint_exists(category: str, name: str) -> Support:
    """Does tracepoint ``category:name`` (``"sched"``, ``"sched_switch"``) exist?  Looked up
    in tracefs (``/sys/kernel/tracing``, else debugfs's ``tracing``), where libbpf looks when
    it attaches a ``tp/<category>/<name>`` program.  Asked anew on every call (modules add
    tracepoints)."""
    cat = _module_arg(category, "category")
    event = _module_arg(name, "name")
    what = f"tracepoint {cat}:{event}"
    events = _tracefs_file("events")
    if events is None:
        return _no(what, "tracefs is not mounted (at " + " or ".join(TRACEFS_MOUNTS) + ")",
                   _errno.ENOENT)
    if os.path.exists(os.path.join(events, cat, event, "format")):
        return _yes(what)
    return _no(what, f"{events} has no {cat}/{event}", _errno.ENOENT)
