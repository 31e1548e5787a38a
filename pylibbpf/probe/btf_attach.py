"""Kernel BTF and what attaches through it: vmlinux and module BTF, fentry and tp_btf
(a tiny program really loaded and attached), kfuncs."""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from dataclasses import dataclass

from .. import _ffi
from .._ffi.structs import bpf_btf_info
from ..btf import SYSFS_BTF, KernelBtf, module_names
from ..elf.btf import BtfKind
from ..enums import AttachType, ProgType
from ..errors import (
    BpfError,
    VerifierError,
)
from ._support import (
    _RET0,
    _TRACING_CAPS,
    Support,
    _keep,
    _module_arg,
    _no,
    _refused,
    _yes,
    on_cache_clear,
)

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
on_cache_clear(_vmlinux_answers.clear)


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
    from ..lowlevel import prog_load

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
