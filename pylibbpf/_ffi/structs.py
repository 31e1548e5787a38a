"""ctypes mirrors of the C structs pylibbpf passes to libbpf and the kernel.

Every class here copies, field by field and in order, one struct or union of libbpf 1.1.2's
public headers (``<bpf/libbpf.h>``, ``<bpf/bpf.h>``) or of the kernel UAPI ``<linux/bpf.h>``, and
is named exactly like its C type so that the signature table can say ``POINTER(bpf_kprobe_opts)``.
``tests/test_ffi_layouts.py`` compiles the installed headers and checks every offset, size,
bitfield and field name against these classes.

Conventions:

* A Python field whose name starts with one ``_`` has no C name (two begin a C name:
  ``__reserved_1``): it stands for an unnamed bitfield
  (``__u32 :32;``), kept so that the layout is readable and the bytes are spelled out; or, when it
  is listed in ``_anonymous_``, it holds an anonymous union whose members are reached directly
  (``info.iter``, ``opts.perf_event``), as in C.
* A C aggregate that has no name of its own (``struct { ... } raw_tracepoint;``) becomes a class
  named ``<outer>__<member>``; anonymous unions are ``<outer>__anonN``.
* ``size_t :0;`` (and ``long :0;``) only round the next offset up to 8 bytes. ctypes has no
  zero-width bitfields; in every struct below they sit where the offset is already aligned or at
  the end of a struct whose size is rounded to 8 anyway, so leaving them out keeps the layout.
* ``__aligned_u64`` is ``c_uint64``, whose alignment on 64-bit Linux is already 8; a kernel
  "pointer" field of that type takes an address (``ctypes.addressof(buf)``).
* Callback members use ``c_void_p`` for ``struct bpf_program *``/``struct bpf_link **``: the opaque
  handle types live in the loader module, which casts them.

Version policy (why the 1.1.2 layouts are safe with newer libbpf): every libbpf ``*_opts`` struct
begins with ``size_t sz``, which the caller sets to the size of the struct *it* was compiled
against. libbpf only reads fields that lie inside ``sz`` and treats the rest as zero, and refuses
a larger ``sz`` whose extra bytes are not zero. So these 1.1.2 layouts keep working when the
system library is newer (say 1.5, whose structs grew at the end): the newer fields simply read as
unset. Always create opts with :func:`new_opts`, which sets ``sz``. The kernel's ``bpf_*_info``
structs follow the same rule through the ``info_len`` argument of ``BPF_OBJ_GET_INFO_BY_FD``.
"""

from __future__ import annotations

import ctypes
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    Union,
    c_bool,
    c_char,
    c_char_p,
    c_int,
    c_long,
    c_size_t,
    c_uint,
    c_uint8,
    c_uint32,
    c_uint64,
    c_ulong,
    c_void_p,
    sizeof,
)
from typing import Any, TypeVar

from .types import bpf_link_p, bpf_map_p, bpf_object_p, bpf_program_p

__all__ = [
    "C_TYPES",
    "new_opts",
    # libbpf.h
    "bpf_object_open_opts",
    "bpf_perf_event_opts",
    "bpf_kprobe_opts",
    "bpf_kprobe_multi_opts",
    "bpf_ksyscall_opts",
    "bpf_uprobe_opts",
    "bpf_usdt_opts",
    "bpf_tracepoint_opts",
    "bpf_trace_opts",
    "bpf_iter_attach_opts",
    "bpf_xdp_attach_opts",
    "bpf_xdp_query_opts",
    "bpf_tc_hook",
    "bpf_tc_opts",
    "ring_buffer_opts",
    "user_ring_buffer_opts",
    "perf_buffer_opts",
    "perf_buffer_raw_opts",
    "libbpf_prog_setup_fn_t",
    "libbpf_prog_prepare_load_fn_t",
    "libbpf_prog_attach_fn_t",
    "libbpf_prog_handler_opts",
    # bpf.h
    "bpf_map_create_opts",
    "bpf_prog_load_opts",
    "bpf_btf_load_opts",
    "bpf_map_batch_opts",
    "bpf_obj_get_opts",
    "bpf_prog_attach_opts",
    "bpf_link_create_opts",
    "bpf_link_create_opts__perf_event",
    "bpf_link_create_opts__kprobe_multi",
    "bpf_link_create_opts__tracing",
    "bpf_link_create_opts__anon0",
    "bpf_link_update_opts",
    "bpf_get_fd_by_id_opts",
    "bpf_prog_query_opts",
    "bpf_prog_bind_opts",
    "bpf_test_run_opts",
    # linux/bpf.h
    "bpf_iter_link_info",
    "bpf_iter_link_info__map",
    "bpf_iter_link_info__cgroup",
    "bpf_iter_link_info__task",
    "bpf_prog_info",
    "bpf_map_info",
    "bpf_btf_info",
    "bpf_link_info",
    "bpf_link_info__raw_tracepoint",
    "bpf_link_info__tracing",
    "bpf_link_info__cgroup",
    "bpf_link_info__iter",
    "bpf_link_info__iter__map",
    "bpf_link_info__iter__anon0",
    "bpf_link_info__iter__cgroup",
    "bpf_link_info__iter__task",
    "bpf_link_info__iter__anon1",
    "bpf_link_info__netns",
    "bpf_link_info__xdp",
    "bpf_link_info__anon0",
    "bpf_perf_event_value",
    # libbpf.h: the skeleton (Object.attach)
    "bpf_object_skeleton",
    "bpf_prog_skeleton",
    "bpf_map_skeleton",
]

BPF_OBJ_NAME_LEN = 16
BPF_TAG_SIZE = 8

# C enums whose constants are all non-negative are `unsigned int` for GCC and clang.
c_enum = c_uint


# ---------------------------------------------------------------------------------------------
# kernel UAPI <linux/bpf.h> (needed first: libbpf opts point at union bpf_iter_link_info)
# ---------------------------------------------------------------------------------------------


class bpf_iter_link_info__map(Structure):
    """``bpf_iter_link_info.map``: the map a map-element iterator walks."""

    _fields_ = [("map_fd", c_uint32)]


class bpf_iter_link_info__cgroup(Structure):
    """``bpf_iter_link_info.cgroup``: start cgroup and walk order of a cgroup iterator."""

    _fields_ = [
        ("order", c_enum),  # enum bpf_cgroup_iter_order
        ("cgroup_fd", c_uint32),
        ("cgroup_id", c_uint64),
    ]


class bpf_iter_link_info__task(Structure):
    """``bpf_iter_link_info.task``: the task (tid, pid or pidfd) a task iterator is limited to."""

    _fields_ = [("tid", c_uint32), ("pid", c_uint32), ("pid_fd", c_uint32)]


class bpf_iter_link_info(Union):
    """``union bpf_iter_link_info``: per-target parameters of a BPF iterator link."""

    _fields_ = [
        ("map", bpf_iter_link_info__map),
        ("cgroup", bpf_iter_link_info__cgroup),
        ("task", bpf_iter_link_info__task),
    ]


class bpf_prog_info(Structure):
    """``struct bpf_prog_info``: what ``BPF_OBJ_GET_INFO_BY_FD`` reports about a program."""

    _fields_ = [
        ("type", c_uint32),
        ("id", c_uint32),
        ("tag", c_uint8 * BPF_TAG_SIZE),
        ("jited_prog_len", c_uint32),
        ("xlated_prog_len", c_uint32),
        ("jited_prog_insns", c_uint64),
        ("xlated_prog_insns", c_uint64),
        ("load_time", c_uint64),
        ("created_by_uid", c_uint32),
        ("nr_map_ids", c_uint32),
        ("map_ids", c_uint64),
        ("name", c_char * BPF_OBJ_NAME_LEN),
        ("ifindex", c_uint32),
        ("gpl_compatible", c_uint32, 1),
        ("_pad0", c_uint32, 31),  # __u32 :31;
        ("netns_dev", c_uint64),
        ("netns_ino", c_uint64),
        ("nr_jited_ksyms", c_uint32),
        ("nr_jited_func_lens", c_uint32),
        ("jited_ksyms", c_uint64),
        ("jited_func_lens", c_uint64),
        ("btf_id", c_uint32),
        ("func_info_rec_size", c_uint32),
        ("func_info", c_uint64),
        ("nr_func_info", c_uint32),
        ("nr_line_info", c_uint32),
        ("line_info", c_uint64),
        ("jited_line_info", c_uint64),
        ("nr_jited_line_info", c_uint32),
        ("line_info_rec_size", c_uint32),
        ("jited_line_info_rec_size", c_uint32),
        ("nr_prog_tags", c_uint32),
        ("prog_tags", c_uint64),
        ("run_time_ns", c_uint64),
        ("run_cnt", c_uint64),
        ("recursion_misses", c_uint64),
        ("verified_insns", c_uint32),
        ("attach_btf_obj_id", c_uint32),
        ("attach_btf_id", c_uint32),
        ("_pad1", c_uint32),  # __u32 :32;
    ]


class bpf_map_info(Structure):
    """``struct bpf_map_info``: what ``BPF_OBJ_GET_INFO_BY_FD`` reports about a map."""

    _fields_ = [
        ("type", c_uint32),
        ("id", c_uint32),
        ("key_size", c_uint32),
        ("value_size", c_uint32),
        ("max_entries", c_uint32),
        ("map_flags", c_uint32),
        ("name", c_char * BPF_OBJ_NAME_LEN),
        ("ifindex", c_uint32),
        ("btf_vmlinux_value_type_id", c_uint32),
        ("netns_dev", c_uint64),
        ("netns_ino", c_uint64),
        ("btf_id", c_uint32),
        ("btf_key_type_id", c_uint32),
        ("btf_value_type_id", c_uint32),
        ("_pad0", c_uint32),  # __u32 :32;
        ("map_extra", c_uint64),
    ]


class bpf_btf_info(Structure):
    """``struct bpf_btf_info``: what ``BPF_OBJ_GET_INFO_BY_FD`` reports about a BTF object."""

    _fields_ = [
        ("btf", c_uint64),
        ("btf_size", c_uint32),
        ("id", c_uint32),
        ("name", c_uint64),
        ("name_len", c_uint32),
        ("kernel_btf", c_uint32),
    ]


class bpf_link_info__raw_tracepoint(Structure):
    """``bpf_link_info.raw_tracepoint``: tracepoint name buffer (in/out)."""

    _fields_ = [("tp_name", c_uint64), ("tp_name_len", c_uint32)]


class bpf_link_info__tracing(Structure):
    """``bpf_link_info.tracing``: attach type and target of a tracing (fentry, ext...) link."""

    _fields_ = [("attach_type", c_uint32), ("target_obj_id", c_uint32), ("target_btf_id", c_uint32)]


class bpf_link_info__cgroup(Structure):
    """``bpf_link_info.cgroup``: the cgroup and attach type of a cgroup link."""

    _fields_ = [("cgroup_id", c_uint64), ("attach_type", c_uint32)]


class bpf_link_info__iter__map(Structure):
    """``bpf_link_info.iter.map``: the map a map iterator link walks."""

    _fields_ = [("map_id", c_uint32)]


class bpf_link_info__iter__anon0(Union):
    """First anonymous union of ``bpf_link_info.iter`` (32-bit iterator parameters)."""

    _fields_ = [("map", bpf_link_info__iter__map)]


class bpf_link_info__iter__cgroup(Structure):
    """``bpf_link_info.iter.cgroup``: the cgroup and walk order of a cgroup iterator link."""

    _fields_ = [("cgroup_id", c_uint64), ("order", c_uint32)]


class bpf_link_info__iter__task(Structure):
    """``bpf_link_info.iter.task``: the task a task iterator link is limited to."""

    _fields_ = [("tid", c_uint32), ("pid", c_uint32)]


class bpf_link_info__iter__anon1(Union):
    """Second anonymous union of ``bpf_link_info.iter`` (wider iterator parameters)."""

    _fields_ = [("cgroup", bpf_link_info__iter__cgroup), ("task", bpf_link_info__iter__task)]


class bpf_link_info__iter(Structure):
    """``bpf_link_info.iter``: target name buffer and per-target parameters of an iterator link."""

    _anonymous_ = ("_u0", "_u1")
    _fields_ = [
        ("target_name", c_uint64),
        ("target_name_len", c_uint32),
        ("_u0", bpf_link_info__iter__anon0),
        ("_u1", bpf_link_info__iter__anon1),
    ]


class bpf_link_info__netns(Structure):
    """``bpf_link_info.netns``: network namespace and attach type of a netns link."""

    _fields_ = [("netns_ino", c_uint32), ("attach_type", c_uint32)]


class bpf_link_info__xdp(Structure):
    """``bpf_link_info.xdp``: interface of an XDP link."""

    _fields_ = [("ifindex", c_uint32)]


class bpf_link_info__anon0(Union):
    """The anonymous per-link-type union of ``struct bpf_link_info``."""

    _fields_ = [
        ("raw_tracepoint", bpf_link_info__raw_tracepoint),
        ("tracing", bpf_link_info__tracing),
        ("cgroup", bpf_link_info__cgroup),
        ("iter", bpf_link_info__iter),
        ("netns", bpf_link_info__netns),
        ("xdp", bpf_link_info__xdp),
    ]


class bpf_link_info(Structure):
    """``struct bpf_link_info``: what ``BPF_OBJ_GET_INFO_BY_FD`` reports about a link."""

    _anonymous_ = ("_u0",)
    _fields_ = [
        ("type", c_uint32),
        ("id", c_uint32),
        ("prog_id", c_uint32),
        ("_u0", bpf_link_info__anon0),
    ]


class bpf_perf_event_value(Structure):
    """``struct bpf_perf_event_value``: a counter read by ``bpf_perf_event_read_value()``."""

    _fields_ = [("counter", c_uint64), ("enabled", c_uint64), ("running", c_uint64)]


# ---------------------------------------------------------------------------------------------
# <bpf/libbpf.h>
# ---------------------------------------------------------------------------------------------


class bpf_object_open_opts(Structure):
    """Options of ``bpf_object__open_file()``/``bpf_object__open_mem()``."""

    _fields_ = [
        ("sz", c_size_t),
        ("object_name", c_char_p),
        ("relaxed_maps", c_bool),
        ("pin_root_path", c_char_p),
        ("_pad0", c_uint32),  # __u32 :32; stub of the removed attach_prog_fd
        ("kconfig", c_char_p),
        ("btf_custom_path", c_char_p),
        ("kernel_log_buf", POINTER(c_char)),
        ("kernel_log_size", c_size_t),
        ("kernel_log_level", c_uint32),
    ]


class bpf_perf_event_opts(Structure):
    """Options of ``bpf_program__attach_perf_event_opts()``."""

    _fields_ = [("sz", c_size_t), ("bpf_cookie", c_uint64)]


class bpf_kprobe_opts(Structure):
    """Options of ``bpf_program__attach_kprobe_opts()``."""

    _fields_ = [
        ("sz", c_size_t),
        ("bpf_cookie", c_uint64),
        ("offset", c_size_t),
        ("retprobe", c_bool),
    ]


class bpf_kprobe_multi_opts(Structure):
    """Options of ``bpf_program__attach_kprobe_multi_opts()``."""

    _fields_ = [
        ("sz", c_size_t),
        ("syms", POINTER(c_char_p)),
        ("addrs", POINTER(c_ulong)),
        ("cookies", POINTER(c_uint64)),
        ("cnt", c_size_t),
        ("retprobe", c_bool),
    ]


class bpf_ksyscall_opts(Structure):
    """Options of ``bpf_program__attach_ksyscall()``."""

    _fields_ = [("sz", c_size_t), ("bpf_cookie", c_uint64), ("retprobe", c_bool)]


class bpf_uprobe_opts(Structure):
    """Options of ``bpf_program__attach_uprobe_opts()``."""

    _fields_ = [
        ("sz", c_size_t),
        ("ref_ctr_offset", c_size_t),
        ("bpf_cookie", c_uint64),
        ("retprobe", c_bool),
        ("func_name", c_char_p),
    ]


class bpf_usdt_opts(Structure):
    """Options of ``bpf_program__attach_usdt()``."""

    _fields_ = [("sz", c_size_t), ("usdt_cookie", c_uint64)]


class bpf_tracepoint_opts(Structure):
    """Options of ``bpf_program__attach_tracepoint_opts()``."""

    _fields_ = [("sz", c_size_t), ("bpf_cookie", c_uint64)]


class bpf_trace_opts(Structure):
    """Options of ``bpf_program__attach_trace_opts()`` (fentry/fexit/LSM cookies)."""

    _fields_ = [("sz", c_size_t), ("cookie", c_uint64)]


class bpf_iter_attach_opts(Structure):
    """Options of ``bpf_program__attach_iter()``."""

    _fields_ = [
        ("sz", c_size_t),
        ("link_info", POINTER(bpf_iter_link_info)),
        ("link_info_len", c_uint32),
    ]


class bpf_xdp_attach_opts(Structure):
    """Options of ``bpf_xdp_attach()``/``bpf_xdp_detach()``."""

    _fields_ = [("sz", c_size_t), ("old_prog_fd", c_int)]


class bpf_xdp_query_opts(Structure):
    """Options (all outputs) of ``bpf_xdp_query()``."""

    _fields_ = [
        ("sz", c_size_t),
        ("prog_id", c_uint32),
        ("drv_prog_id", c_uint32),
        ("hw_prog_id", c_uint32),
        ("skb_prog_id", c_uint32),
        ("attach_mode", c_uint8),
    ]


class bpf_tc_hook(Structure):
    """A TC hook (interface + ingress/egress/custom parent) for ``bpf_tc_*()``."""

    _fields_ = [
        ("sz", c_size_t),
        ("ifindex", c_int),
        ("attach_point", c_enum),  # enum bpf_tc_attach_point
        ("parent", c_uint32),
    ]


class bpf_tc_opts(Structure):
    """Options of ``bpf_tc_attach()``/``bpf_tc_detach()``/``bpf_tc_query()``."""

    _fields_ = [
        ("sz", c_size_t),
        ("prog_fd", c_int),
        ("flags", c_uint32),
        ("prog_id", c_uint32),
        ("handle", c_uint32),
        ("priority", c_uint32),
    ]


class ring_buffer_opts(Structure):
    """Options of ``ring_buffer__new()``."""

    _fields_ = [("sz", c_size_t)]


class user_ring_buffer_opts(Structure):
    """Options of ``user_ring_buffer__new()``."""

    _fields_ = [("sz", c_size_t)]


class perf_buffer_opts(Structure):
    """Options of ``perf_buffer__new()``."""

    _fields_ = [("sz", c_size_t)]


class perf_buffer_raw_opts(Structure):
    """Options of ``perf_buffer__new_raw()``."""

    # The header's two `long :0;` between sz and cpu_cnt occupy no bytes.
    _fields_ = [
        ("sz", c_size_t),
        ("cpu_cnt", c_int),
        ("cpus", POINTER(c_int)),
        ("map_keys", POINTER(c_int)),
    ]


# int (*)(struct bpf_program *prog, long cookie)
libbpf_prog_setup_fn_t = CFUNCTYPE(c_int, c_void_p, c_long)
# int (*)(struct bpf_program *prog, struct bpf_prog_load_opts *opts, long cookie)
# (bpf_prog_load_opts is defined below; the pointer is passed through as an address)
libbpf_prog_prepare_load_fn_t = CFUNCTYPE(c_int, c_void_p, c_void_p, c_long)
# int (*)(const struct bpf_program *prog, long cookie, struct bpf_link **link)
libbpf_prog_attach_fn_t = CFUNCTYPE(c_int, c_void_p, c_long, POINTER(c_void_p))


class libbpf_prog_handler_opts(Structure):
    """Options of ``libbpf_register_prog_handler()`` (custom SEC() handlers)."""

    _fields_ = [
        ("sz", c_size_t),
        ("cookie", c_long),
        ("prog_setup_fn", libbpf_prog_setup_fn_t),
        ("prog_prepare_load_fn", libbpf_prog_prepare_load_fn_t),
        ("prog_attach_fn", libbpf_prog_attach_fn_t),
    ]


# ---------------------------------------------------------------------------------------------
# <bpf/bpf.h>
# ---------------------------------------------------------------------------------------------


class bpf_map_create_opts(Structure):
    """Options of ``bpf_map_create()``."""

    _fields_ = [
        ("sz", c_size_t),
        ("btf_fd", c_uint32),
        ("btf_key_type_id", c_uint32),
        ("btf_value_type_id", c_uint32),
        ("btf_vmlinux_value_type_id", c_uint32),
        ("inner_map_fd", c_uint32),
        ("map_flags", c_uint32),
        ("map_extra", c_uint64),
        ("numa_node", c_uint32),
        ("map_ifindex", c_uint32),
    ]


class bpf_prog_load_opts(Structure):
    """Options of ``bpf_prog_load()``."""

    _fields_ = [
        ("sz", c_size_t),
        ("attempts", c_int),
        ("expected_attach_type", c_enum),  # enum bpf_attach_type
        ("prog_btf_fd", c_uint32),
        ("prog_flags", c_uint32),
        ("prog_ifindex", c_uint32),
        ("kern_version", c_uint32),
        ("attach_btf_id", c_uint32),
        ("attach_prog_fd", c_uint32),
        ("attach_btf_obj_fd", c_uint32),
        ("fd_array", POINTER(c_int)),
        ("func_info", c_void_p),
        ("func_info_cnt", c_uint32),
        ("func_info_rec_size", c_uint32),
        ("line_info", c_void_p),
        ("line_info_cnt", c_uint32),
        ("line_info_rec_size", c_uint32),
        ("log_level", c_uint32),
        ("log_size", c_uint32),
        ("log_buf", POINTER(c_char)),
    ]


class bpf_btf_load_opts(Structure):
    """Options of ``bpf_btf_load()``."""

    _fields_ = [
        ("sz", c_size_t),
        ("log_buf", POINTER(c_char)),
        ("log_level", c_uint32),
        ("log_size", c_uint32),
    ]


class bpf_map_batch_opts(Structure):
    """Options of ``bpf_map_{lookup,update,delete,lookup_and_delete}_batch()``."""

    _fields_ = [("sz", c_size_t), ("elem_flags", c_uint64), ("flags", c_uint64)]


class bpf_obj_get_opts(Structure):
    """Options of ``bpf_obj_get_opts()``."""

    _fields_ = [("sz", c_size_t), ("file_flags", c_uint32)]


class bpf_prog_attach_opts(Structure):
    """Options of ``bpf_prog_attach_opts()``."""

    _fields_ = [("sz", c_size_t), ("flags", c_uint), ("replace_prog_fd", c_int)]


class bpf_link_create_opts__perf_event(Structure):
    """``bpf_link_create_opts.perf_event``."""

    _fields_ = [("bpf_cookie", c_uint64)]


class bpf_link_create_opts__kprobe_multi(Structure):
    """``bpf_link_create_opts.kprobe_multi``."""

    _fields_ = [
        ("flags", c_uint32),
        ("cnt", c_uint32),
        ("syms", POINTER(c_char_p)),
        ("addrs", POINTER(c_ulong)),
        ("cookies", POINTER(c_uint64)),
    ]


class bpf_link_create_opts__tracing(Structure):
    """``bpf_link_create_opts.tracing``."""

    _fields_ = [("cookie", c_uint64)]


class bpf_link_create_opts__anon0(Union):
    """The anonymous per-link-type union of ``struct bpf_link_create_opts``."""

    _fields_ = [
        ("perf_event", bpf_link_create_opts__perf_event),
        ("kprobe_multi", bpf_link_create_opts__kprobe_multi),
        ("tracing", bpf_link_create_opts__tracing),
    ]


class bpf_link_create_opts(Structure):
    """Options of ``bpf_link_create()``."""

    _anonymous_ = ("_u0",)
    _fields_ = [
        ("sz", c_size_t),
        ("flags", c_uint32),
        ("iter_info", POINTER(bpf_iter_link_info)),
        ("iter_info_len", c_uint32),
        ("target_btf_id", c_uint32),
        ("_u0", bpf_link_create_opts__anon0),
    ]


class bpf_link_update_opts(Structure):
    """Options of ``bpf_link_update()``."""

    _fields_ = [("sz", c_size_t), ("flags", c_uint32), ("old_prog_fd", c_uint32)]


class bpf_get_fd_by_id_opts(Structure):
    """Options of ``bpf_{prog,map,btf,link}_get_fd_by_id_opts()``."""

    _fields_ = [("sz", c_size_t), ("open_flags", c_uint32)]


class bpf_prog_query_opts(Structure):
    """Options (partly outputs) of ``bpf_prog_query_opts()``."""

    _fields_ = [
        ("sz", c_size_t),
        ("query_flags", c_uint32),
        ("attach_flags", c_uint32),
        ("prog_ids", POINTER(c_uint32)),
        ("prog_cnt", c_uint32),
        ("prog_attach_flags", POINTER(c_uint32)),
    ]


class bpf_prog_bind_opts(Structure):
    """Options of ``bpf_prog_bind_map()``."""

    _fields_ = [("sz", c_size_t), ("flags", c_uint32)]


class bpf_test_run_opts(Structure):
    """Options (partly outputs) of ``bpf_prog_test_run_opts()``."""

    _fields_ = [
        ("sz", c_size_t),
        ("data_in", c_void_p),
        ("data_out", c_void_p),
        ("data_size_in", c_uint32),
        ("data_size_out", c_uint32),
        ("ctx_in", c_void_p),
        ("ctx_out", c_void_p),
        ("ctx_size_in", c_uint32),
        ("ctx_size_out", c_uint32),
        ("retval", c_uint32),
        ("repeat", c_int),
        ("duration", c_uint32),
        ("flags", c_uint32),
        ("cpu", c_uint32),
        ("batch_size", c_uint32),
    ]



# ---------------------------------------------------------------------------------------------
# <bpf/libbpf.h>: the skeleton, which Object.attach() hands to bpf_object__attach_skeleton()
# one program at a time (the attach half only: no maps, no embedded object)
# ---------------------------------------------------------------------------------------------


class bpf_prog_skeleton(Structure):
    """``struct bpf_prog_skeleton``: a program and the slot its link is written to."""

    _fields_ = [
        ("name", c_char_p),
        ("prog", POINTER(bpf_program_p)),
        ("link", POINTER(bpf_link_p)),
    ]


class bpf_map_skeleton(Structure):
    """``struct bpf_map_skeleton`` (1.1.2's; newer headers append ``link``)."""

    _fields_ = [
        ("name", c_char_p),
        ("map", POINTER(bpf_map_p)),
        ("mmaped", POINTER(c_void_p)),  # void **
    ]


class bpf_object_skeleton(Structure):
    """``struct bpf_object_skeleton``: ``sz`` leads, but it is not an opts struct (libbpf reads
    ``prog_skel_sz``/``map_skel_sz`` for the records' sizes)."""

    _fields_ = [
        ("sz", c_size_t),
        ("name", c_char_p),
        ("data", c_void_p),
        ("data_sz", c_size_t),
        ("obj", POINTER(bpf_object_p)),
        ("map_cnt", c_int),
        ("map_skel_sz", c_int),
        ("maps", POINTER(bpf_map_skeleton)),
        ("prog_cnt", c_int),
        ("prog_skel_sz", c_int),
        ("progs", POINTER(bpf_prog_skeleton)),
    ]



# ---------------------------------------------------------------------------------------------
# Newer than 1.1.2: opts of functions libbpf added later, each the layout of the release named in
# NEWER_C_TYPES (the tests check them against that release's headers where a tier has them).
# A class whose C struct 1.1.2 already has carries the release in its name (``__1_6``): it is
# that struct grown, and every libbpf accepts it as long as the fields it does not know stay
# zero (libbpf refuses non-zero bytes past the size it knows).
# ---------------------------------------------------------------------------------------------


class bpf_kprobe_multi_opts__1_6(Structure):
    """``struct bpf_kprobe_multi_opts`` of libbpf 1.6 (``session`` 1.5, ``unique_match`` 1.6)."""

    _fields_ = [
        ("sz", c_size_t),
        ("syms", POINTER(c_char_p)),
        ("addrs", POINTER(c_ulong)),
        ("cookies", POINTER(c_uint64)),
        ("cnt", c_size_t),
        ("retprobe", c_bool),
        ("session", c_bool),
        ("unique_match", c_bool),
    ]


class bpf_uprobe_multi_opts(Structure):
    """Options of ``bpf_program__attach_uprobe_multi()`` (1.3; ``session`` 1.6)."""

    _fields_ = [
        ("sz", c_size_t),
        ("syms", POINTER(c_char_p)),
        ("offsets", POINTER(c_ulong)),
        ("ref_ctr_offsets", POINTER(c_ulong)),
        ("cookies", POINTER(c_uint64)),
        ("cnt", c_size_t),
        ("retprobe", c_bool),
        ("session", c_bool),
    ]


class bpf_tcx_opts(Structure):
    """Options of ``bpf_program__attach_tcx()`` (1.3)."""

    _fields_ = [
        ("sz", c_size_t),
        ("flags", c_uint32),
        ("relative_fd", c_uint32),
        ("relative_id", c_uint32),
        ("expected_revision", c_uint64),
    ]


class bpf_netkit_opts(Structure):
    """Options of ``bpf_program__attach_netkit()`` (1.3)."""

    _fields_ = [
        ("sz", c_size_t),
        ("flags", c_uint32),
        ("relative_fd", c_uint32),
        ("relative_id", c_uint32),
        ("expected_revision", c_uint64),
    ]


class bpf_netfilter_opts(Structure):
    """Options of ``bpf_program__attach_netfilter()`` (1.3)."""

    _fields_ = [
        ("sz", c_size_t),
        ("pf", c_uint32),
        ("hooknum", c_uint32),
        ("priority", ctypes.c_int32),
        ("flags", c_uint32),
    ]


NEWER_C_TYPES: dict[type[Structure], tuple[str, tuple[int, int]]] = {
    bpf_kprobe_multi_opts__1_6: ("bpf_kprobe_multi_opts", (1, 6)),
    bpf_uprobe_multi_opts: ("bpf_uprobe_multi_opts", (1, 6)),
    bpf_tcx_opts: ("bpf_tcx_opts", (1, 3)),
    bpf_netkit_opts: ("bpf_netkit_opts", (1, 3)),
    bpf_netfilter_opts: ("bpf_netfilter_opts", (1, 3)),
}
"""Class -> (its C name, the libbpf release whose header it copies)."""


# Every type above that C names at top level (nested helper types are reached through these).
C_TYPES: tuple[type[Structure] | type[Union], ...] = (
    bpf_object_open_opts,
    bpf_perf_event_opts,
    bpf_kprobe_opts,
    bpf_kprobe_multi_opts,
    bpf_ksyscall_opts,
    bpf_uprobe_opts,
    bpf_usdt_opts,
    bpf_tracepoint_opts,
    bpf_trace_opts,
    bpf_iter_attach_opts,
    bpf_xdp_attach_opts,
    bpf_xdp_query_opts,
    bpf_tc_hook,
    bpf_tc_opts,
    ring_buffer_opts,
    user_ring_buffer_opts,
    perf_buffer_opts,
    perf_buffer_raw_opts,
    libbpf_prog_handler_opts,
    bpf_map_create_opts,
    bpf_prog_load_opts,
    bpf_btf_load_opts,
    bpf_map_batch_opts,
    bpf_obj_get_opts,
    bpf_prog_attach_opts,
    bpf_link_create_opts,
    bpf_link_update_opts,
    bpf_get_fd_by_id_opts,
    bpf_prog_query_opts,
    bpf_prog_bind_opts,
    bpf_test_run_opts,
    bpf_iter_link_info,
    bpf_prog_info,
    bpf_map_info,
    bpf_btf_info,
    bpf_link_info,
    bpf_perf_event_value,
    bpf_object_skeleton,
    bpf_prog_skeleton,
    bpf_map_skeleton,
)


_S = TypeVar("_S", bound=Structure)


def _settable_names(cls: type[Structure] | type[Union]) -> set[str]:
    """C-visible field names of ``cls``, including members of its anonymous unions."""
    anonymous = set(getattr(cls, "_anonymous_", ()))
    names: set[str] = set()
    for name, ctype, *_ in cls._fields_:
        if name in anonymous and issubclass(ctype, (Structure, Union)):
            names |= _settable_names(ctype)
        elif not name.startswith("_"):
            names.add(name)
    return names


def _int_bounds(ctype: Any) -> tuple[int, int]:
    bits = 8 * sizeof(ctype)
    if ctype(-1).value < 0:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


_INT_BOUNDS: dict[Any, tuple[int, int]] = {
    ctype: _int_bounds(ctype) for ctype in (
        ctypes.c_int8, ctypes.c_uint8, ctypes.c_int16, ctypes.c_uint16, ctypes.c_int32,
        ctypes.c_uint32, ctypes.c_int64, ctypes.c_uint64, ctypes.c_int, ctypes.c_uint,
        ctypes.c_long, ctypes.c_ulong, ctypes.c_size_t, ctypes.c_ssize_t)
}


def _field_types(cls: type[Structure] | type[Union]) -> dict[str, Any]:
    """C-visible field name -> ctypes type, including members of anonymous unions."""
    anonymous = set(getattr(cls, "_anonymous_", ()))
    types: dict[str, Any] = {}
    for name, ctype, *_ in cls._fields_:
        if name in anonymous and issubclass(ctype, (Structure, Union)):
            types.update(_field_types(ctype))
        else:
            types[name] = ctype
    return types


def new_opts(cls: type[_S], **fields: Any) -> _S:
    """Return a zeroed ``cls`` (a libbpf ``*_opts`` struct) with ``sz`` set and ``fields`` filled.

    ``sz`` is always ``ctypes.sizeof(cls)``, the size of the layout this module knows, which is how
    libbpf learns which fields the caller can have set. Raises :class:`ValueError` if ``cls`` is not
    an opts struct, if a field name is unknown or ``sz``, or if a value does not fit its field.
    """
    first = cls._fields_[0] if cls._fields_ else None
    if first is None or first[0] != "sz" or first[1] is not c_size_t:
        raise ValueError(f"{cls.__name__} is not a libbpf opts struct (no leading size_t sz)")
    known = _settable_names(cls) - {"sz"}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(
            f"{cls.__name__} has no field {', '.join(map(repr, unknown))} "
            f"(libbpf 1.1.2 layout; known: {', '.join(sorted(known))})"
        )
    opts = cls()
    opts.sz = sizeof(cls)
    types = _field_types(cls)
    for name, value in fields.items():
        bounds = _INT_BOUNDS.get(types.get(name))
        if bounds is not None and type(value) is not bool:
            # ctypes stores an out-of-range int truncated, without a word
            if not isinstance(value, int):
                raise ValueError(f"{cls.__name__}.{name} = {value!r}: not an int")
            if not bounds[0] <= value <= bounds[1]:
                raise ValueError(f"{cls.__name__}.{name} = {value!r}: out of range "
                                 f"[{bounds[0]}, {bounds[1]}]")
        try:
            setattr(opts, name, value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{cls.__name__}.{name} = {value!r}: {exc}") from exc
    return opts


# ---------------------------------------------------------------------------------------------
# kernel UAPI <linux/perf_event.h>: perf_event_open()'s attribute (pylibbpf.perf_event)
# ---------------------------------------------------------------------------------------------
# Linux 6.1's layout (PERF_ATTR_SIZE_VER7, 128 bytes; 6.3 appended config3).  The kernel reads
# ``size`` bytes and refuses (E2BIG) a larger size whose tail it does not know unless it is zero,
# so this layout works on every kernel that knows VER7's fields it is given (older kernels refuse
# a non-zero field they lack; every field pylibbpf sets is older than 4.1).  The flags are C
# bitfields: ctypes allocates them as the compiler does, on big-endian machines too.


class perf_event_attr__anon0(Union):
    """``perf_event_attr``'s sample period or frequency (``freq`` says which)."""

    _fields_ = [("sample_period", c_uint64), ("sample_freq", c_uint64)]


class perf_event_attr__anon1(Union):
    """``perf_event_attr``'s wakeup count or watermark (``watermark`` says which)."""

    _fields_ = [("wakeup_events", c_uint32), ("wakeup_watermark", c_uint32)]


class perf_event_attr__anon2(Union):
    """``perf_event_attr.config1`` and its names for breakpoints and probes."""

    _fields_ = [("bp_addr", c_uint64), ("kprobe_func", c_uint64), ("uprobe_path", c_uint64),
                ("config1", c_uint64)]


class perf_event_attr__anon3(Union):
    """``perf_event_attr.config2`` and its names for breakpoints and probes."""

    _fields_ = [("bp_len", c_uint64), ("kprobe_addr", c_uint64), ("probe_offset", c_uint64),
                ("config2", c_uint64)]


_PERF_FLAGS = (
    "disabled", "inherit", "pinned", "exclusive", "exclude_user", "exclude_kernel",
    "exclude_hv", "exclude_idle", "mmap", "comm", "freq", "inherit_stat", "enable_on_exec",
    "task", "watermark")
_PERF_FLAGS_2 = (
    "mmap_data", "sample_id_all", "exclude_host", "exclude_guest", "exclude_callchain_kernel",
    "exclude_callchain_user", "mmap2", "comm_exec", "use_clockid", "context_switch",
    "write_backward", "namespaces", "ksymbol", "bpf_event", "aux_output", "cgroup",
    "text_poke", "build_id", "inherit_thread", "remove_on_exec", "sigtrap")


class perf_event_attr(Structure):
    """``struct perf_event_attr``: what a perf event counts and how it samples."""

    _anonymous_ = ("_u0", "_u1", "_u2", "_u3")
    _fields_ = [
        ("type", c_uint32),
        ("size", c_uint32),
        ("config", c_uint64),
        ("_u0", perf_event_attr__anon0),
        ("sample_type", c_uint64),
        ("read_format", c_uint64),
        *[(name, c_uint64, 1) for name in _PERF_FLAGS],
        ("precise_ip", c_uint64, 2),
        *[(name, c_uint64, 1) for name in _PERF_FLAGS_2],
        ("__reserved_1", c_uint64, 26),
        ("_u1", perf_event_attr__anon1),
        ("bp_type", c_uint32),
        ("_u2", perf_event_attr__anon2),
        ("_u3", perf_event_attr__anon3),
        ("branch_sample_type", c_uint64),
        ("sample_regs_user", c_uint64),
        ("sample_stack_user", c_uint32),
        ("clockid", ctypes.c_int32),
        ("sample_regs_intr", c_uint64),
        ("aux_watermark", c_uint32),
        ("sample_max_stack", ctypes.c_uint16),
        ("__reserved_2", ctypes.c_uint16),
        ("aux_sample_size", c_uint32),
        ("__reserved_3", c_uint32),
        ("sig_data", c_uint64),
    ]


__all__ += [
    "perf_event_attr",
    "perf_event_attr__anon0",
    "perf_event_attr__anon1",
    "perf_event_attr__anon2",
    "perf_event_attr__anon3",
]
C_TYPES += (perf_event_attr,)
