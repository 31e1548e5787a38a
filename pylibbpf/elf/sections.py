"""Program type and expected attach type from a section name, by libbpf 1.1's rules.

libbpf 1.1 walks a fixed table of section-name patterns in order and takes the first match:

* a pattern ending in ``+`` matches the name itself or the name followed by ``/`` and anything
  (``kprobe+`` matches ``kprobe`` and ``kprobe/do_sys_open``, not ``kprobex``);
* a pattern ending in ``/`` matches any name starting with it;
* any other pattern matches only the exact name.

A section no pattern matches gives program type ``UNSPEC`` (libbpf opens the object, but cannot
load that program without an explicit type).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..enums import AttachType, ProgType  # pure Python: the kernel's enums, shared with the core

__all__ = ["ProgType", "AttachType", "SectionDef", "SECTION_DEFS", "find_section_def"]


@dataclass(frozen=True)
class SectionDef:
    """One row of the table: pattern, types, and libbpf's flags for it."""

    pattern: str
    prog_type: ProgType
    attach_type: AttachType
    sleepable: bool = False
    attach_btf: bool = False
    xdp_frags: bool = False
    attach_optional: bool = False

    def matches(self, name: str) -> bool:
        """Whether section ``name`` matches this pattern (libbpf's ``sec_def_matches``)."""
        pat = self.pattern
        if pat.endswith("/"):
            return name.startswith(pat)
        if pat.endswith("+"):
            stem = pat[:-1]
            return name == stem or name.startswith(stem + "/")
        return name == pat


def _d(pattern: str, prog: ProgType, attach: int = 0, flags: str = "") -> SectionDef:
    return SectionDef(
        pattern,
        prog,
        AttachType(attach),
        sleepable="s" in flags,
        attach_btf="b" in flags,
        xdp_frags="f" in flags,
        attach_optional="o" in flags,
    )


P, A = ProgType, AttachType

#: libbpf 1.1's ``section_defs``, in its order (flags: s sleepable, b BTF target, f XDP frags,
#: o expected attach type optional).
SECTION_DEFS: tuple[SectionDef, ...] = (
    _d("socket", P.SOCKET_FILTER),
    _d("sk_reuseport/migrate", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT_OR_MIGRATE),
    _d("sk_reuseport", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT),
    _d("kprobe+", P.KPROBE),
    _d("uprobe+", P.KPROBE),
    _d("uprobe.s+", P.KPROBE, 0, "s"),
    _d("kretprobe+", P.KPROBE),
    _d("uretprobe+", P.KPROBE),
    _d("uretprobe.s+", P.KPROBE, 0, "s"),
    _d("kprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI),
    _d("kretprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI),
    _d("ksyscall+", P.KPROBE),
    _d("kretsyscall+", P.KPROBE),
    _d("usdt+", P.KPROBE),
    _d("tc", P.SCHED_CLS),
    _d("classifier", P.SCHED_CLS),
    _d("action", P.SCHED_ACT),
    _d("tracepoint+", P.TRACEPOINT),
    _d("tp+", P.TRACEPOINT),
    _d("raw_tracepoint+", P.RAW_TRACEPOINT),
    _d("raw_tp+", P.RAW_TRACEPOINT),
    _d("raw_tracepoint.w+", P.RAW_TRACEPOINT_WRITABLE),
    _d("raw_tp.w+", P.RAW_TRACEPOINT_WRITABLE),
    _d("tp_btf+", P.TRACING, A.TRACE_RAW_TP, "b"),
    _d("fentry+", P.TRACING, A.TRACE_FENTRY, "b"),
    _d("fmod_ret+", P.TRACING, A.MODIFY_RETURN, "b"),
    _d("fexit+", P.TRACING, A.TRACE_FEXIT, "b"),
    _d("fentry.s+", P.TRACING, A.TRACE_FENTRY, "bs"),
    _d("fmod_ret.s+", P.TRACING, A.MODIFY_RETURN, "bs"),
    _d("fexit.s+", P.TRACING, A.TRACE_FEXIT, "bs"),
    _d("freplace+", P.EXT, 0, "b"),
    _d("lsm+", P.LSM, A.LSM_MAC, "b"),
    _d("lsm.s+", P.LSM, A.LSM_MAC, "bs"),
    _d("lsm_cgroup+", P.LSM, A.LSM_CGROUP, "b"),
    _d("iter+", P.TRACING, A.TRACE_ITER, "b"),
    _d("iter.s+", P.TRACING, A.TRACE_ITER, "bs"),
    _d("syscall", P.SYSCALL, 0, "s"),
    _d("xdp.frags/devmap", P.XDP, A.XDP_DEVMAP, "f"),
    _d("xdp/devmap", P.XDP, A.XDP_DEVMAP),
    _d("xdp.frags/cpumap", P.XDP, A.XDP_CPUMAP, "f"),
    _d("xdp/cpumap", P.XDP, A.XDP_CPUMAP),
    _d("xdp.frags", P.XDP, A.XDP, "f"),
    _d("xdp", P.XDP, A.XDP, "o"),
    _d("perf_event", P.PERF_EVENT),
    _d("lwt_in", P.LWT_IN),
    _d("lwt_out", P.LWT_OUT),
    _d("lwt_xmit", P.LWT_XMIT),
    _d("lwt_seg6local", P.LWT_SEG6LOCAL),
    _d("sockops", P.SOCK_OPS, A.CGROUP_SOCK_OPS, "o"),
    _d("sk_skb/stream_parser", P.SK_SKB, A.SK_SKB_STREAM_PARSER, "o"),
    _d("sk_skb/stream_verdict", P.SK_SKB, A.SK_SKB_STREAM_VERDICT, "o"),
    _d("sk_skb", P.SK_SKB),
    _d("sk_msg", P.SK_MSG, A.SK_MSG_VERDICT, "o"),
    _d("lirc_mode2", P.LIRC_MODE2, A.LIRC_MODE2, "o"),
    _d("flow_dissector", P.FLOW_DISSECTOR, A.FLOW_DISSECTOR, "o"),
    _d("cgroup_skb/ingress", P.CGROUP_SKB, A.CGROUP_INET_INGRESS, "o"),
    _d("cgroup_skb/egress", P.CGROUP_SKB, A.CGROUP_INET_EGRESS, "o"),
    _d("cgroup/skb", P.CGROUP_SKB),
    _d("cgroup/sock_create", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE),
    _d("cgroup/sock_release", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_RELEASE),
    _d("cgroup/sock", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, "o"),
    _d("cgroup/post_bind4", P.CGROUP_SOCK, A.CGROUP_INET4_POST_BIND),
    _d("cgroup/post_bind6", P.CGROUP_SOCK, A.CGROUP_INET6_POST_BIND),
    _d("cgroup/bind4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_BIND),
    _d("cgroup/bind6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_BIND),
    _d("cgroup/connect4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT),
    _d("cgroup/connect6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_CONNECT),
    _d("cgroup/sendmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_SENDMSG),
    _d("cgroup/sendmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_SENDMSG),
    _d("cgroup/recvmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_RECVMSG),
    _d("cgroup/recvmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_RECVMSG),
    _d("cgroup/getpeername4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETPEERNAME),
    _d("cgroup/getpeername6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETPEERNAME),
    _d("cgroup/getsockname4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETSOCKNAME),
    _d("cgroup/getsockname6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETSOCKNAME),
    _d("cgroup/sysctl", P.CGROUP_SYSCTL, A.CGROUP_SYSCTL),
    _d("cgroup/getsockopt", P.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT),
    _d("cgroup/setsockopt", P.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT),
    _d("cgroup/dev", P.CGROUP_DEVICE, A.CGROUP_DEVICE, "o"),
    _d("struct_ops+", P.STRUCT_OPS),
    _d("sk_lookup", P.SK_LOOKUP, A.SK_LOOKUP),
)


def find_section_def(name: str) -> SectionDef | None:
    """The first table row matching section ``name``, or None (libbpf's ``find_sec_def``)."""
    for sec_def in SECTION_DEFS:
        if sec_def.matches(name):
            return sec_def
    return None
