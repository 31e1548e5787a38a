"""Kernel feature probes for test markers, memoized per process.

``missing(name)`` returns ``None`` when the running kernel has the feature, else a sentence saying
why not.  Where it is cheap the probe is real: ``kprobe`` adds and removes a kprobe event in
tracefs, ``fentry``, ``lsm`` and ``tp_btf`` load a two-instruction program through the raw
``bpf()`` syscall (ctypes, no libbpf) against a target found in ``/sys/kernel/btf/vmlinux`` and
attach it, ``raw_tp`` and the iterators load and attach theirs, ``ringbuf`` creates a ring
buffer map, the network types (``xdp``, ``tc``, ``cgroup`` for cgroup_skb, ``socket_filter``,
``sk_lookup``) load one (a socket filter is also attached to a socket), ``netkit`` creates a
netkit pair in a throwaway network namespace and attaches a program to it with a link.  The
others are judged from the kernel version and build configuration.

``expected(name)`` says whether this kernel *should* have the feature, from its version, its
configuration (``/proc/config.gz`` or ``/boot/config-<release>``), the active LSMs, the
lockdown state, and whether a real probe was refused by the kernel's security policy (EPERM:
lockdown, an LSM): a test needing an expected feature fails instead of skipping when the probe
says no (cilium/ebpf's rule).  The probes never go through pylibbpf, so a pylibbpf regression
cannot turn a failure into a skip.  Results are not cached on disk: every probe is a few
syscalls.

``PYLIBBPF_TEST_REFUSE=feature[,feature...]`` makes the probes answer as a kernel whose policy
refuses those features (for the tests of this machinery, ``tests/test_ci_rule.py``);
:func:`refusal_cflags` gives the matching ``-DREFUSE_<FEATURE>`` that test programs use to
make the kernel really reject the program concerned.
"""

from __future__ import annotations

import ctypes
import errno
import gzip
import os
import platform
import re
import socket
import struct
import subprocess
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from tests.support import netkit

MOUNTS = [
    ("tracefs", "nodev", "/sys/kernel/tracing"),
    ("debugfs", "none", "/sys/kernel/debug"),
    ("bpf", "bpf", "/sys/fs/bpf"),
    ("securityfs", "none", "/sys/kernel/security"),
]
TRACEFS = Path("/sys/kernel/tracing")


def ensure_mounts() -> None:
    """Mount tracefs, debugfs, bpffs and securityfs where missing (root only; idempotent)."""
    for fstype, dev, where in MOUNTS:
        if os.path.ismount(where) or not os.path.isdir(os.path.dirname(where)):
            continue
        os.makedirs(where, exist_ok=True)
        subprocess.run(["mount", "-t", fstype, dev, where], check=False, capture_output=True)


@cache
def kernel_version() -> tuple[int, int]:
    """(major, minor) of the running kernel."""
    m = re.match(r"(\d+)\.(\d+)", platform.release())
    assert m is not None
    return int(m.group(1)), int(m.group(2))


def kernel_version_str() -> str:
    """The running kernel's release string (``uname -r``)."""
    return platform.release()


@cache
def kernel_config() -> dict[str, str]:
    """The running kernel's build configuration; empty when it cannot be found."""
    text = ""
    if os.path.exists("/proc/config.gz"):
        with gzip.open("/proc/config.gz", "rt") as f:
            text = f.read()
    else:
        boot = Path(f"/boot/config-{platform.release()}")
        if boot.exists():
            text = boot.read_text()
    config: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            config[key] = value
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            config[line[2:-11]] = "n"
    return config


def _config(name: str) -> bool | None:
    value = kernel_config().get(name)
    if value is None:
        return None
    return value in ("y", "m")


@cache
def _lockdown() -> str:
    ensure_mounts()
    try:
        text = Path("/sys/kernel/security/lockdown").read_text()
    except OSError:
        return "unknown"
    m = re.search(r"\[(\w+)\]", text)
    return m.group(1) if m else "unknown"


@cache
def _active_lsms() -> tuple[str, ...] | None:
    ensure_mounts()
    try:
        return tuple(Path("/sys/kernel/security/lsm").read_text().strip().split(","))
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# The raw bpf() syscall (x86-64), just enough for the probes and the VM feature tests.

SYS_BPF = 321
BPF_MAP_CREATE, BPF_MAP_LOOKUP_ELEM, BPF_PROG_LOAD, BPF_RAW_TRACEPOINT_OPEN = 0, 1, 5, 17
BPF_LINK_CREATE = 28
BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_SOCKMAP, BPF_MAP_TYPE_RINGBUF = 2, 15, 27
BPF_PROG_TYPE_SOCKET_FILTER, BPF_PROG_TYPE_SCHED_CLS, BPF_PROG_TYPE_XDP = 1, 3, 6
BPF_PROG_TYPE_CGROUP_SKB, BPF_PROG_TYPE_SK_LOOKUP = 8, 30
BPF_PROG_TYPE_RAW_TRACEPOINT, BPF_PROG_TYPE_TRACING, BPF_PROG_TYPE_LSM = 17, 26, 29
BPF_CGROUP_INET_EGRESS, BPF_TRACE_RAW_TP, BPF_TRACE_FENTRY = 1, 23, 24
BPF_LSM_MAC, BPF_TRACE_ITER, BPF_SK_LOOKUP, BPF_XDP = 27, 28, 36, 37
BPF_NETKIT_PRIMARY = 54
SO_ATTACH_BPF = 50


class MapCreateAttr(ctypes.Structure):
    """The BPF_MAP_CREATE part of ``union bpf_attr``."""

    _fields_ = [("map_type", ctypes.c_uint32), ("key_size", ctypes.c_uint32),
                ("value_size", ctypes.c_uint32), ("max_entries", ctypes.c_uint32),
                ("map_flags", ctypes.c_uint32)]


class MapElemAttr(ctypes.Structure):
    """The BPF_MAP_*_ELEM part of ``union bpf_attr``."""

    _fields_ = [("map_fd", ctypes.c_uint32), ("pad", ctypes.c_uint32),
                ("key", ctypes.c_uint64), ("value", ctypes.c_uint64),
                ("flags", ctypes.c_uint64)]


class ProgLoadAttr(ctypes.Structure):
    """The BPF_PROG_LOAD part of ``union bpf_attr`` (up to ``attach_prog_fd``)."""

    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * 16),
                ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32),
                ("prog_btf_fd", ctypes.c_uint32), ("func_info_rec_size", ctypes.c_uint32),
                ("func_info", ctypes.c_uint64), ("func_info_cnt", ctypes.c_uint32),
                ("line_info_rec_size", ctypes.c_uint32), ("line_info", ctypes.c_uint64),
                ("line_info_cnt", ctypes.c_uint32), ("attach_btf_id", ctypes.c_uint32),
                ("attach_prog_fd", ctypes.c_uint32)]


class IterLinkCreateAttr(ctypes.Structure):
    """The BPF_LINK_CREATE part of ``union bpf_attr`` for an iterator."""

    _fields_ = [("prog_fd", ctypes.c_uint32), ("target_fd", ctypes.c_uint32),
                ("attach_type", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("iter_info", ctypes.c_uint64), ("iter_info_len", ctypes.c_uint32)]


class RawTracepointAttr(ctypes.Structure):
    """The BPF_RAW_TRACEPOINT_OPEN part of ``union bpf_attr``."""

    _fields_ = [("name", ctypes.c_uint64), ("prog_fd", ctypes.c_uint32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def bpf(cmd: int, attr: ctypes.Structure) -> int:
    """``bpf(cmd, &attr, sizeof attr)``; raises OSError with the kernel's errno."""
    ret = _libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_long(cmd), ctypes.byref(attr),
                        ctypes.c_long(ctypes.sizeof(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf(cmd {cmd}): {os.strerror(err)}")
    return int(ret)


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One encoded ``struct bpf_insn``."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


RET0 = insn(0xB7) + insn(0x95)  # r0 = 0; exit


def map_create(map_type: int, key_size: int, value_size: int, max_entries: int) -> int:
    """Create a map with the raw syscall; returns its fd."""
    attr = MapCreateAttr(map_type, key_size, value_size, max_entries, 0)
    return bpf(BPF_MAP_CREATE, attr)


def map_lookup_u64(map_fd: int, key: int) -> int:
    """Look up a u32 key in a map with u64 values."""
    k = ctypes.c_uint32(key)
    v = ctypes.c_uint64(0)
    attr = MapElemAttr(map_fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0)
    bpf(BPF_MAP_LOOKUP_ELEM, attr)
    return v.value


def prog_load(prog_type: int, code: bytes, *, attach_type: int = 0, attach_btf_id: int = 0,
              log: bool = False) -> int:
    """Load a GPL program of raw instructions; returns its fd (OSError with the log)."""
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"GPL")
    log_buf = ctypes.create_string_buffer(65536 if log else 1)
    attr = ProgLoadAttr(prog_type=prog_type, insn_cnt=len(code) // 8,
                        insns=ctypes.addressof(insns), license=ctypes.addressof(license_),
                        expected_attach_type=attach_type, attach_btf_id=attach_btf_id)
    if log:
        attr.log_level, attr.log_size, attr.log_buf = 1, 65536, ctypes.addressof(log_buf)
    try:
        return bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        detail = log_buf.value.decode(errors="replace").strip()[-500:] if log else ""
        raise OSError(e.errno, f"{e.strerror}{': ' + detail if detail else ''}") from None


def raw_tracepoint_open(prog_fd: int, name: str | None = None) -> int:
    """Attach a raw tracepoint program to ``name``, or a tracing/LSM program at its BTF target
    (no name); returns the link fd."""
    tp = ctypes.create_string_buffer(name.encode()) if name is not None else None
    return bpf(BPF_RAW_TRACEPOINT_OPEN,
               RawTracepointAttr(ctypes.addressof(tp) if tp is not None else 0, prog_fd))


def iter_link_create(prog_fd: int, map_fd: int | None = None) -> int:
    """Create the link of an iterator program (for a map iterator: over ``map_fd``)."""
    info = ctypes.c_uint32(map_fd if map_fd is not None else 0)  # bpf_iter_link_info.map
    attr = IterLinkCreateAttr(prog_fd, 0, BPF_TRACE_ITER, 0)
    if map_fd is not None:
        attr.iter_info, attr.iter_info_len = ctypes.addressof(info), ctypes.sizeof(info)
    return bpf(BPF_LINK_CREATE, attr)


# BTF kinds -> bytes following the 12-byte common header (per vlen entry when marked)
_BTF_EXTRA = {1: (4, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 13: (0, 8), 14: (4, 0),
              15: (0, 12), 17: (4, 0), 19: (0, 12)}
BTF_KIND_TYPEDEF, BTF_KIND_FUNC = 8, 12


def btf_funcs() -> dict[str, int]:
    """Name -> type id of every FUNC in the kernel's BTF (empty without BTF)."""
    return btf_names(BTF_KIND_FUNC)


@cache
def btf_names(kind: int) -> dict[str, int]:
    """Name -> type id of every type of ``kind`` in the kernel's BTF (empty without BTF)."""
    try:
        data = Path("/sys/kernel/btf/vmlinux").read_bytes()
    except OSError:
        return {}
    magic, _ver, _flags, hdr_len, type_off, type_len, str_off, _str_len = struct.unpack_from(
        "<HBBIIIII", data)
    if magic != 0xEB9F:
        return {}
    strings = hdr_len + str_off
    pos, end = hdr_len + type_off, hdr_len + type_off + type_len
    names: dict[str, int] = {}
    type_id = 1
    unpack = struct.Struct("<III").unpack_from
    while pos < end:
        name_off, info, _ = unpack(data, pos)
        this_kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        if this_kind == kind:
            stop = data.index(b"\0", strings + name_off)
            names[data[strings + name_off:stop].decode()] = type_id
        fixed, per = _BTF_EXTRA.get(this_kind, (0, 0))
        pos += 12 + fixed + per * vlen
        type_id += 1
    return names


def btf_func_id(*candidates: str, kind: int = BTF_KIND_FUNC) -> tuple[str, int] | None:
    """The first of ``candidates`` that is a FUNC (or a type of ``kind``) in the kernel's BTF,
    with its type id."""
    found = btf_names(kind)
    for name in candidates:
        if name in found:
            return name, found[name]
    return None


# ---------------------------------------------------------------------------------------------
# Real probes: None when the feature works, else why not.  A reason that is a ``PolicyRefusal``
# comes from EPERM: the kernel has the feature but its security policy (lockdown, an LSM)
# refuses it, so a test needing it legitimately skips (see ``expected``).


class PolicyRefusal(str):
    """A probe's reason when the kernel answered EPERM (root is refused by policy)."""


def _refused(what: str, e: OSError) -> str:
    code = errno.errorcode.get(e.errno or 0, str(e.errno))
    why = f"{what} fails: {code}"
    if e.errno != errno.EPERM:
        return why
    if _lockdown() not in ("none", "unknown"):
        why += f" (lockdown: {_lockdown()})"
    return PolicyRefusal(why + " (refused by the kernel's security policy)")

def _probe_kprobe() -> str | None:
    ensure_mounts()
    events = TRACEFS / "kprobe_events"
    if not events.exists():
        return "no kprobe_events in tracefs"
    symbol = "vfs_read" if _in_kallsyms("vfs_read") else "do_sys_openat2"
    name = f"pylibbpf_probe/p{os.getpid()}"
    try:
        write_tracefs(events, f"p:{name} {symbol}")
        write_tracefs(events, f"-:{name}")
    except OSError as e:
        return f"adding a kprobe event on {symbol} fails: {os.strerror(e.errno or 0)}"
    return None


def write_tracefs(path: Path, line: str) -> None:
    """Append one command line to a tracefs control file.

    ``open(path, "a")`` would not do: it seeks to the end, which tracefs refuses (EINVAL).
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _in_kallsyms(symbol: str) -> bool:
    try:
        text = Path("/proc/kallsyms").read_text()
    except OSError:
        return False
    return re.search(rf" {re.escape(symbol)}$", text, re.M) is not None


def _probe_btf_prog(feature: str, prog_type: int, attach_type: int,
                    targets: tuple[str, ...], kind: int = BTF_KIND_FUNC) -> str | None:
    target = btf_func_id(*targets, kind=kind)
    if target is None:
        return f"none of {', '.join(targets)} is in the kernel's BTF"
    try:
        fd = prog_load(prog_type, RET0, attach_type=attach_type, attach_btf_id=target[1])
    except OSError as e:
        return _refused(f"loading a {feature} program on {target[0]}", e)
    try:
        link = raw_tracepoint_open(fd)
        os.close(link)
    except OSError as e:
        return _refused(f"attaching a {feature} program to {target[0]}", e)
    finally:
        os.close(fd)
    return None


def _probe_raw_tp() -> str | None:
    try:
        fd = prog_load(BPF_PROG_TYPE_RAW_TRACEPOINT, RET0)
    except OSError as e:
        return _refused("loading a raw_tp program", e)
    try:
        os.close(raw_tracepoint_open(fd, "sys_enter"))
    except OSError as e:
        return _refused("attaching a raw_tp program to sys_enter", e)
    finally:
        os.close(fd)
    return None


def _probe_iter(target: str) -> str | None:
    """Load an iterator program on ``target`` (as ``SEC("iter/<target>")`` does) and create
    its link (a map element iterator over a fresh ARRAY map)."""
    found = btf_func_id(f"bpf_iter_{target}")
    if found is None:
        return f"bpf_iter_{target} is not in the kernel's BTF"
    try:
        fd = prog_load(BPF_PROG_TYPE_TRACING, RET0, attach_type=BPF_TRACE_ITER,
                       attach_btf_id=found[1])
    except OSError as e:
        return _refused(f"loading an iter/{target} program", e)
    map_fd = None
    try:
        if target == "bpf_map_elem":
            map_fd = map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 1)
        os.close(iter_link_create(fd, map_fd))
    except OSError as e:
        return _refused(f"creating an iter/{target} link", e)
    finally:
        os.close(fd)
        if map_fd is not None:
            os.close(map_fd)
    return None


def _probe_net(feature: str, prog_type: int, attach_type: int = 0) -> str | None:
    """Load a two-instruction program of a network type (as libbpf does for its section); a
    socket filter is also attached to a UDP socket and detached."""
    try:
        fd = prog_load(prog_type, RET0, attach_type=attach_type)
    except OSError as e:
        return _refused(f"loading a {feature} program", e)
    try:
        if prog_type == BPF_PROG_TYPE_SOCKET_FILTER:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, fd)
    except OSError as e:
        return _refused(f"attaching a {feature} program to a socket", e)
    finally:
        os.close(fd)
    return None


def _probe_netkit() -> str | None:
    """Create a netkit pair and attach a program to its primary with a netkit link, in a
    network namespace of a thread of its own: the caller's namespace never changes, and the
    pair goes with the thread's namespace even if deleting it fails."""
    result: list[str | None] = []
    thread = threading.Thread(target=lambda: result.append(_netkit_in_new_netns()),
                              name="netkit-probe")
    thread.start()
    thread.join()
    return result[0] if result else "the netkit probe's thread failed"


def _netkit_in_new_netns() -> str | None:
    what = "unsharing a network namespace"
    try:
        if _libc.unshare(netkit.CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        what = "creating a netkit pair"
        with netkit.netkit_pair("pylibbpf-nk0", "pylibbpf-nk1") as pair:
            what = "loading a netkit program"
            fd = prog_load(BPF_PROG_TYPE_SCHED_CLS, RET0, attach_type=BPF_NETKIT_PRIMARY)
            try:
                what = "attaching a netkit program to a netkit device"
                # link_create's head (prog_fd, target_ifindex, attach_type, flags) is the same
                # for every link type; the netkit part after it stays zero
                os.close(bpf(BPF_LINK_CREATE, IterLinkCreateAttr(fd, pair.primary_ifindex,
                                                                 BPF_NETKIT_PRIMARY, 0)))
            finally:
                os.close(fd)
    except netkit.NetlinkError as e:
        why = e.strerror or str(e)
        return PolicyRefusal(why) if e.errno == errno.EPERM else why
    except OSError as e:
        return _refused(what, e)
    return None


def _probe_map(feature: str, map_type: int, key_size: int, value_size: int) -> str | None:
    try:
        os.close(map_create(map_type, key_size, value_size, 1))
    except OSError as e:
        return _refused(f"creating a {feature} map", e)
    return None


class StructOpsMapCreateAttr(ctypes.Structure):
    """The BPF_MAP_CREATE part of ``union bpf_attr`` up to ``btf_vmlinux_value_type_id``."""

    _fields_ = [("map_type", ctypes.c_uint32), ("key_size", ctypes.c_uint32),
                ("value_size", ctypes.c_uint32), ("max_entries", ctypes.c_uint32),
                ("map_flags", ctypes.c_uint32), ("inner_map_fd", ctypes.c_uint32),
                ("numa_node", ctypes.c_uint32), ("map_name", ctypes.c_char * 16),
                ("map_ifindex", ctypes.c_uint32), ("btf_fd", ctypes.c_uint32),
                ("btf_key_type_id", ctypes.c_uint32), ("btf_value_type_id", ctypes.c_uint32),
                ("btf_vmlinux_value_type_id", ctypes.c_uint32)]


BPF_MAP_TYPE_STRUCT_OPS, BPF_PROG_TYPE_STRUCT_OPS, BPF_F_LINK, BTF_KIND_STRUCT = 26, 27, 1 << 13, 4


@cache
def btf_struct(name: str) -> tuple[int, int, tuple[str, ...]] | None:
    """(type id, size, member names) of the struct ``name`` in the kernel's BTF, or None."""
    type_id = btf_names(BTF_KIND_STRUCT).get(name)
    if type_id is None:
        return None
    data = Path("/sys/kernel/btf/vmlinux").read_bytes()
    _, _, _, hdr_len, type_off, _, str_off, _ = struct.unpack_from("<HBBIIIII", data)
    pos, current = hdr_len + type_off, 1
    while current < type_id:  # walk to the struct (types have variable lengths)
        info = struct.unpack_from("<I", data, pos + 4)[0]
        fixed, per = _BTF_EXTRA.get((info >> 24) & 0x1F, (0, 0))
        pos += 12 + fixed + per * (info & 0xFFFF)
        current += 1
    _, info, size = struct.unpack_from("<III", data, pos)
    members = []
    for i in range(info & 0xFFFF):
        name_off = struct.unpack_from("<I", data, pos + 12 + 12 * i)[0]
        start = hdr_len + str_off + name_off
        members.append(data[start:data.index(b"\0", start)].decode())
    return type_id, size, tuple(members)


class BtfLoadAttr(ctypes.Structure):
    """The BPF_BTF_LOAD part of ``union bpf_attr``."""

    _fields_ = [("btf", ctypes.c_uint64), ("btf_log_buf", ctypes.c_uint64),
                ("btf_size", ctypes.c_uint32), ("btf_log_size", ctypes.c_uint32),
                ("btf_log_level", ctypes.c_uint32)]


BPF_BTF_LOAD = 18


def btf_load_int() -> int:
    """Load the smallest BTF (one ``int``) into the kernel; returns its fd."""
    strings = b"\0int\0"
    types = struct.pack("<IIII", 1, 1 << 24, 4, 32)  # INT "int", 4 bytes, 32 bits
    blob = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types),
                       len(strings)) + types + strings
    buf = ctypes.create_string_buffer(blob, len(blob))
    return bpf(BPF_BTF_LOAD, BtfLoadAttr(btf=ctypes.addressof(buf), btf_size=len(blob)))


def _probe_struct_ops(flags: int = 0) -> str | None:
    """What libbpf does for a ``SEC(".struct_ops")`` TCP congestion control (with ``flags``
    BPF_F_LINK: ``SEC(".struct_ops.link")``): load a program for the ``ssthresh`` member of
    ``tcp_congestion_ops``, then create the struct_ops map.  In that order: Linux 5.10 learns
    its struct_ops types when a program load first parses its BTF, and until then refuses the
    map with ENOTSUPP (measured on a fresh 5.10 guest)."""
    ops, value = btf_struct("tcp_congestion_ops"), btf_struct("bpf_struct_ops_tcp_congestion_ops")
    if ops is None or value is None:
        return "tcp_congestion_ops is not a struct_ops type in the kernel's BTF"
    try:
        os.close(prog_load(BPF_PROG_TYPE_STRUCT_OPS, RET0, attach_type=ops[2].index("ssthresh"),
                           attach_btf_id=ops[0]))
    except OSError as e:
        return _refused("loading a struct_ops program for tcp_congestion_ops.ssthresh", e)
    try:
        btf_fd = btf_load_int()  # the kernel wants an object's BTF beside the vmlinux type
    except OSError as e:
        return _refused("loading a BTF blob", e)
    attr = StructOpsMapCreateAttr(map_type=BPF_MAP_TYPE_STRUCT_OPS, key_size=4,
                                  value_size=value[1], max_entries=1, map_flags=flags,
                                  map_name=b"probe_ca", btf_fd=btf_fd,
                                  btf_vmlinux_value_type_id=value[0])
    try:
        os.close(bpf(BPF_MAP_CREATE, attr))
    except OSError as e:
        return _refused("creating a struct_ops map of tcp_congestion_ops"
                        + (" with BPF_F_LINK" if flags else ""), e)
    finally:
        os.close(btf_fd)
    return None


def _probe_ringbuf() -> str | None:
    try:
        os.close(map_create(BPF_MAP_TYPE_RINGBUF, 0, 0, os.sysconf("SC_PAGE_SIZE")))
    except OSError as e:
        return _refused("creating a ring buffer map", e)
    return None


FENTRY_TARGETS = ("bpf_fentry_test1", "__x64_sys_getpid", "__do_sys_getpid")
LSM_TARGETS = ("bpf_lsm_file_open",)
TP_BTF_TARGETS = ("btf_trace_sys_enter",)  # the typedef libbpf resolves SEC("tp_btf/sys_enter") to

# feature -> (minimum kernel version, config options that must be set)
REQUIREMENTS: dict[str, tuple[tuple[int, int], tuple[str, ...]]] = {
    "bpf": ((4, 4), ("CONFIG_BPF_SYSCALL",)),
    "tracepoint": ((4, 7), ("CONFIG_BPF_EVENTS", "CONFIG_FTRACE_SYSCALLS")),
    "raw_tp": ((4, 17), ("CONFIG_BPF_EVENTS",)),
    "tp_btf": ((5, 5), ("CONFIG_DEBUG_INFO_BTF",)),
    "uprobe": ((4, 17), ("CONFIG_UPROBE_EVENTS",)),
    "kprobe": ((4, 17), ("CONFIG_KPROBES", "CONFIG_KPROBE_EVENTS")),
    "fentry": ((5, 5), ("CONFIG_DEBUG_INFO_BTF", "CONFIG_FUNCTION_TRACER")),
    "lsm": ((5, 7), ("CONFIG_BPF_LSM",)),
    "ringbuf": ((5, 8), ()),
    "links": ((5, 7), ()),
    "cgroup": ((4, 10), ("CONFIG_CGROUP_BPF",)),
    "xdp": ((4, 8), ("CONFIG_NET",)),
    "tc": ((4, 1), ("CONFIG_NET",)),            # loading SEC("tc") programs
    "socket_filter": ((3, 19), ("CONFIG_NET",)),  # SEC("socket"), SO_ATTACH_BPF
    "sk_lookup": ((5, 9), ("CONFIG_INET",)),
    "iter": ((5, 8), ()),
    "iter_task": ((5, 8), ("CONFIG_DEBUG_INFO_BTF",)),       # SEC("iter/task")
    "iter_map_elem": ((5, 9), ("CONFIG_DEBUG_INFO_BTF",)),   # SEC("iter/bpf_map_elem")
    "batch": ((5, 6), ()),
    "perf_event": ((4, 9), ("CONFIG_PERF_EVENTS",)),
    # instruction-set and helper levels some test programs use
    "atomics": ((5, 12), ()),          # BPF atomic fetch/xchg/cmpxchg instructions
    "user_ringbuf": ((6, 1), ()),
    "perf_link": ((5, 15), ()),        # BPF links (and cookies) for perf events
    "hash_lookup_and_delete": ((5, 14), ()),
    "kprobe_session": ((6, 10), ("CONFIG_KPROBES", "CONFIG_FPROBE")),  # SEC("kprobe.session")
    # split BTF of loaded kernel modules in /sys/kernel/btf (KernelBtf.module)
    "module_btf": ((5, 11), ("CONFIG_MODULES", "CONFIG_DEBUG_INFO_BTF_MODULES")),
    # attach points of tests/test_attach_more.py (with libbpf>=X.Y where libbpf added them)
    "kprobe_multi": ((5, 18), ("CONFIG_KPROBES", "CONFIG_FPROBE")),  # kprobe.multi links
    "uprobe_multi": ((6, 6), ("CONFIG_UPROBES",)),                   # uprobe.multi links
    "uprobe_session": ((6, 13), ("CONFIG_UPROBES",)),                # SEC("uprobe.session")
    "tcx": ((6, 6), ("CONFIG_NET_XGRESS",)),                         # tcx links
    "netkit": ((6, 7), ("CONFIG_NETKIT",)),                          # netkit devices, links
    "netfilter": ((6, 4), ("CONFIG_NETFILTER_BPF_LINK",)),           # netfilter links
    "sockmap": ((4, 17), ("CONFIG_INET",)),        # sockmaps, sk_skb and sk_msg programs
    "sockmap_link": ((6, 10), ("CONFIG_INET",)),   # BPF links of sockmap programs
    # struct_ops maps of tcp_congestion_ops (bpf_tcp_ca), in SEC(".struct_ops.link") from 6.4
    "struct_ops": ((5, 6), ("CONFIG_BPF_JIT", "CONFIG_DEBUG_INFO_BTF", "CONFIG_INET")),
    "struct_ops_link": ((6, 4), ("CONFIG_BPF_JIT", "CONFIG_DEBUG_INFO_BTF", "CONFIG_INET")),
}

def module_btf_names() -> list[str]:
    """The kernel modules whose BTF ``/sys/kernel/btf`` lists (loaded modules only)."""
    try:
        return sorted(name for name in os.listdir("/sys/kernel/btf") if name != "vmlinux")
    except OSError:
        return []


def _probe_module_btf() -> str | None:
    return None if module_btf_names() else "no kernel module with BTF is loaded"


PROBES: dict[str, Callable[[], str | None]] = {
    "kprobe": _probe_kprobe,
    "fentry": lambda: _probe_btf_prog("fentry", BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY,
                                      FENTRY_TARGETS),
    "lsm": lambda: _probe_btf_prog("lsm", BPF_PROG_TYPE_LSM, BPF_LSM_MAC, LSM_TARGETS),
    "tp_btf": lambda: _probe_btf_prog("tp_btf", BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP,
                                      TP_BTF_TARGETS, kind=BTF_KIND_TYPEDEF),
    "ringbuf": _probe_ringbuf,
    "raw_tp": _probe_raw_tp,
    "xdp": lambda: _probe_net("xdp", BPF_PROG_TYPE_XDP, BPF_XDP),
    "tc": lambda: _probe_net("tc", BPF_PROG_TYPE_SCHED_CLS),
    "cgroup": lambda: _probe_net("cgroup_skb", BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_EGRESS),
    "socket_filter": lambda: _probe_net("socket_filter", BPF_PROG_TYPE_SOCKET_FILTER),
    "sk_lookup": lambda: _probe_net("sk_lookup", BPF_PROG_TYPE_SK_LOOKUP, BPF_SK_LOOKUP),
    "module_btf": _probe_module_btf,
    "sockmap": lambda: _probe_map("sockmap", BPF_MAP_TYPE_SOCKMAP, 4, 4),
    "netkit": _probe_netkit,
    "iter_task": lambda: _probe_iter("task"),
    "iter_map_elem": lambda: _probe_iter("bpf_map_elem"),
    "struct_ops": _probe_struct_ops,
    "struct_ops_link": lambda: _probe_struct_ops(BPF_F_LINK),
}

REFUSE_ENV = "PYLIBBPF_TEST_REFUSE"


def simulated_refusals() -> frozenset[str]:
    """The features ``$PYLIBBPF_TEST_REFUSE`` says to treat as refused by policy."""
    names = {name.strip() for name in os.environ.get(REFUSE_ENV, "").split(",") if name.strip()}
    unknown = names - set(REQUIREMENTS)
    if unknown:
        raise KeyError(f"{REFUSE_ENV} names unknown features {sorted(unknown)}")
    return frozenset(names)


def refusal_cflags() -> tuple[str, ...]:
    """``-DREFUSE_<FEATURE>`` for each simulated refusal: a test program guarded by it becomes
    one the verifier rejects, so a kernel that refuses it is simulated for real."""
    return tuple(f"-DREFUSE_{name.upper()}" for name in sorted(simulated_refusals()))


@cache
def _probe(feature: str) -> str | None:
    if feature in simulated_refusals():
        return PolicyRefusal(f"refused by the kernel's security policy (EPERM, simulated by "
                             f"{REFUSE_ENV})")
    probe = PROBES.get(feature)
    if probe is not None and os.geteuid() == 0:
        return probe()
    return None


# ---------------------------------------------------------------------------------------------
# libbpf versions: ``needs("libbpf>=1.5")`` beside the kernel features.  The version comes from
# the libbpf pylibbpf loads (``PYLIBBPF_LIBBPF``, else the system's ``libbpf.so.1``), through
# ctypes, not pylibbpf: missing when the library reports an older version; expected when its
# file name (``libbpf.so.1.7.0``, what the distribution installed) promises the version, so a
# library that reports less than its name says fails instead of skipping.

LIBBPF_NEED = re.compile(r"libbpf>=(\d+)\.(\d+)$")


def libbpf_need(feature: str) -> tuple[int, int] | None:
    """(major, minor) of a ``libbpf>=X.Y`` requirement; None for a kernel feature."""
    m = LIBBPF_NEED.match(feature.replace(" ", ""))
    return (int(m.group(1)), int(m.group(2))) if m else None


@cache
def libbpf_loaded() -> tuple[tuple[int, int] | None, tuple[int, int] | None, str]:
    """(version the library reports, version its file name promises, its path)."""
    name = os.environ.get("PYLIBBPF_LIBBPF") or "libbpf.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError as e:
        return None, None, f"{name} ({e})"
    path = name
    if "/" not in name:
        with open("/proc/self/maps") as f:
            found = re.findall(r"(/\S*/libbpf\.so\.1[.\d]*)$", f.read(), re.M)
        path = found[0] if found else name
    try:
        reported: tuple[int, int] | None = (lib.libbpf_major_version(),
                                             lib.libbpf_minor_version())
    except AttributeError:  # before libbpf 0.6
        reported = None
    m = re.search(r"libbpf\.so\.(\d+)\.(\d+)\.\d+", os.path.realpath(path))
    promised = (int(m.group(1)), int(m.group(2))) if m else None
    return reported, promised, path


def _libbpf_missing(need: tuple[int, int]) -> str | None:
    reported, _, path = libbpf_loaded()
    if reported is None:
        return f"{path} reports no version"
    if reported < need:
        return f"libbpf {reported[0]}.{reported[1]} is older than {need[0]}.{need[1]}"
    return None


@cache
def missing(feature: str) -> str | None:
    """None if the running kernel has ``feature``; otherwise the reason it does not.

    ``libbpf>=X.Y`` asks the same of the libbpf pylibbpf loads.
    """
    need = libbpf_need(feature)
    if need is not None:
        return _libbpf_missing(need)
    if feature not in REQUIREMENTS:
        raise KeyError(f"unknown kernel feature {feature!r}; known: {sorted(REQUIREMENTS)}")
    need_version, options = REQUIREMENTS[feature]
    if kernel_version() < need_version:
        return f"kernel {kernel_version_str()} is older than {need_version[0]}.{need_version[1]}"
    for option in options:
        if _config(option) is False:
            return f"{option} is not set in this kernel"
    if feature == "lsm":
        lsms = _active_lsms()
        if lsms is not None and "bpf" not in lsms:
            return f"the bpf LSM is not active (lsm={','.join(lsms)})"
    return _probe(feature)


def expected(feature: str) -> bool:
    """True when the kernel's version, configuration and security state say it must work.

    A real probe the kernel refused with EPERM (lockdown, an LSM, or the simulation) makes the
    feature unexpected: that kernel has it compiled in and says no by policy, which no fix in
    pylibbpf can change.  Any other probe failure on a kernel new enough is a failure.
    ``libbpf>=X.Y`` is expected when the library's file name (else its report) says X.Y or later.
    """
    need = libbpf_need(feature)
    if need is not None:
        reported, promised, _ = libbpf_loaded()
        return (promised or reported or (0, 0)) >= need
    need_version, options = REQUIREMENTS[feature]
    if kernel_version() < need_version:
        return False
    if any(_config(option) is False for option in options):
        return False
    if feature == "lsm":
        lsms = _active_lsms()
        if lsms is not None and "bpf" not in lsms:
            return False
    if feature in ("fentry", "lsm") and _lockdown() not in ("none", "unknown"):
        return False  # measured: a locked-down (integrity) kernel refuses these loads
    return not isinstance(_probe(feature), PolicyRefusal)


def skip_is_legitimate(item: Any, reason: str) -> bool:
    """A CI skip is allowed only for a feature this kernel is not expected to have."""
    for mark in item.iter_markers("needs"):
        for feature in mark.args:
            if reason.startswith(f"Skipped: {feature}:") or reason.startswith(f"{feature}:"):
                return not expected(feature)
    return False
