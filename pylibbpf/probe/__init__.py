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

from ._support import Support, cache_clear
from .btf_attach import (
    fentry_can_attach,
    has_vmlinux_btf,
    kfunc_exists,
    module_btf_exists,
    tp_btf_can_attach,
)
from .programs import (
    helper_id,
    helper_names,
    probe_helper,
    probe_map_type,
    probe_prog_type,
    ringbuf_supported,
)
from .symbols import kallsyms_lookup, kprobe_exists, ksym_exists, tracepoint_exists

__all__ = [
    "Support",
    "cache_clear",
    "fentry_can_attach",
    "has_vmlinux_btf",
    "helper_id",
    "helper_names",
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
