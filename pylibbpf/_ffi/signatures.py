"""The signature table: every libbpf function pylibbpf calls, as data.

``SIGNATURES[name] = (restype, argtypes, check, since)``:

* ``check`` names the error convention of the return value (see :mod:`.errcheck`):
  ``"neg"`` - a negative int is ``-errno``; ``"null"`` - NULL means failure with ``errno`` set;
  ``None`` - the return value carries no error.
* ``since`` is the first libbpf version that exports the symbol.  Symbols newer than 1.1 are
  optional: the loader skips them when absent and callers ask :func:`pylibbpf._ffi.has`.

Struct pointers are written as ``Ptr("struct_name")`` and resolved against :mod:`.structs` when
the table is applied, so this module stays a plain declaration.
"""

from __future__ import annotations

from ctypes import (
    POINTER,
    c_bool,
    c_char_p,
    c_int,
    c_long,
    c_size_t,
    c_uint,
    c_uint32,
    c_uint64,
    c_ulong,
    c_void_p,
)
from typing import Any, NamedTuple

from .types import (
    bpf_link_p,
    bpf_map_p,
    bpf_object_p,
    bpf_program_p,
    btf_p,
    libbpf_print_fn_t,
    perf_buffer_lost_fn,
    perf_buffer_p,
    perf_buffer_sample_fn,
    ring_buffer_p,
    ring_buffer_sample_fn,
    ring_p,
    user_ring_buffer_p,
)


class Ptr(NamedTuple):
    """A pointer to the ctypes struct of this C name, resolved when the table is applied."""

    struct: str


class Sig(NamedTuple):
    restype: Any
    argtypes: tuple[Any, ...]
    check: str | None = None
    since: tuple[int, int] = (1, 0)


u32p = POINTER(c_uint32)
u64p = POINTER(c_uint64)
size_tp = POINTER(c_size_t)
OBJ, PROG, MAP, LINK = bpf_object_p, bpf_program_p, bpf_map_p, bpf_link_p
V = c_void_p
S = c_char_p

SIGNATURES: dict[str, Sig] = {
    # library
    "libbpf_major_version": Sig(c_uint32, ()),
    "libbpf_minor_version": Sig(c_uint32, ()),
    "libbpf_version_string": Sig(S, ()),
    "libbpf_strerror": Sig(c_int, (c_int, c_char_p, c_size_t)),
    "libbpf_set_print": Sig(V, (libbpf_print_fn_t,)),
    "libbpf_num_possible_cpus": Sig(c_int, (), "neg"),
    "libbpf_bpf_prog_type_str": Sig(S, (c_int,)),
    "libbpf_bpf_map_type_str": Sig(S, (c_int,)),
    "libbpf_bpf_attach_type_str": Sig(S, (c_int,)),
    "libbpf_bpf_link_type_str": Sig(S, (c_int,)),
    "libbpf_prog_type_by_name": Sig(c_int, (S, POINTER(c_int), POINTER(c_int)), "neg"),
    "libbpf_attach_type_by_name": Sig(c_int, (S, POINTER(c_int)), "neg"),
    "libbpf_probe_bpf_prog_type": Sig(c_int, (c_int, V)),
    "libbpf_probe_bpf_map_type": Sig(c_int, (c_int, V)),
    "libbpf_probe_bpf_helper": Sig(c_int, (c_int, c_int, V)),
    # bpf_object
    "bpf_object__open_file": Sig(OBJ, (S, Ptr("bpf_object_open_opts")), "null"),
    "bpf_object__open_mem": Sig(OBJ, (V, c_size_t, Ptr("bpf_object_open_opts")), "null"),
    "bpf_object__load": Sig(c_int, (OBJ,), "neg"),
    "bpf_object__close": Sig(None, (OBJ,)),
    "bpf_object__name": Sig(S, (OBJ,)),
    "bpf_object__kversion": Sig(c_uint, (OBJ,)),
    "bpf_object__set_kversion": Sig(c_int, (OBJ, c_uint32), "neg"),
    "bpf_object__btf": Sig(btf_p, (OBJ,)),
    "bpf_object__btf_fd": Sig(c_int, (OBJ,)),
    "bpf_object__find_program_by_name": Sig(PROG, (OBJ, S)),
    "bpf_object__find_map_by_name": Sig(MAP, (OBJ, S)),
    "bpf_object__find_map_fd_by_name": Sig(c_int, (OBJ, S)),
    "bpf_object__next_program": Sig(PROG, (OBJ, PROG)),
    "bpf_object__next_map": Sig(MAP, (OBJ, MAP)),
    "bpf_object__pin_maps": Sig(c_int, (OBJ, S), "neg"),
    "bpf_object__unpin_maps": Sig(c_int, (OBJ, S), "neg"),
    "bpf_object__pin_programs": Sig(c_int, (OBJ, S), "neg"),
    "bpf_object__unpin_programs": Sig(c_int, (OBJ, S), "neg"),
    "bpf_object__pin": Sig(c_int, (OBJ, S), "neg"),
    "bpf_object__unpin": Sig(c_int, (OBJ, S), "neg", (1, 3)),
    "bpf_object__prepare": Sig(c_int, (OBJ,), "neg", (1, 6)),
    # bpf_program
    "bpf_program__name": Sig(S, (PROG,)),
    "bpf_program__section_name": Sig(S, (PROG,)),
    "bpf_program__autoload": Sig(c_bool, (PROG,)),
    "bpf_program__set_autoload": Sig(c_int, (PROG, c_bool), "neg"),
    "bpf_program__autoattach": Sig(c_bool, (PROG,)),
    "bpf_program__set_autoattach": Sig(None, (PROG, c_bool)),
    "bpf_program__insns": Sig(V, (PROG,)),
    "bpf_program__insn_cnt": Sig(c_size_t, (PROG,)),
    "bpf_program__set_insns": Sig(c_int, (PROG, V, c_size_t), "neg"),
    "bpf_program__fd": Sig(c_int, (PROG,)),
    "bpf_program__pin": Sig(c_int, (PROG, S), "neg"),
    "bpf_program__unpin": Sig(c_int, (PROG, S), "neg"),
    "bpf_program__type": Sig(c_int, (PROG,)),
    "bpf_program__set_type": Sig(c_int, (PROG, c_int), "neg"),
    "bpf_program__expected_attach_type": Sig(c_int, (PROG,)),
    "bpf_program__set_expected_attach_type": Sig(c_int, (PROG, c_int), "neg"),
    "bpf_program__flags": Sig(c_uint32, (PROG,)),
    "bpf_program__set_flags": Sig(c_int, (PROG, c_uint32), "neg"),
    "bpf_program__log_level": Sig(c_uint32, (PROG,)),
    "bpf_program__set_log_level": Sig(c_int, (PROG, c_uint32), "neg"),
    "bpf_program__log_buf": Sig(V, (PROG, size_tp)),
    "bpf_program__set_log_buf": Sig(c_int, (PROG, V, c_size_t), "neg"),
    "bpf_program__set_attach_target": Sig(c_int, (PROG, c_int, S), "neg"),
    "bpf_program__set_ifindex": Sig(None, (PROG, c_uint32)),
    # attach
    "bpf_program__attach": Sig(LINK, (PROG,), "null"),
    "bpf_program__attach_perf_event_opts": Sig(
        LINK, (PROG, c_int, Ptr("bpf_perf_event_opts")), "null"),
    "bpf_program__attach_kprobe_opts": Sig(LINK, (PROG, S, Ptr("bpf_kprobe_opts")), "null"),
    "bpf_program__attach_ksyscall": Sig(LINK, (PROG, S, V), "null"),
    "bpf_program__attach_uprobe_opts": Sig(
        LINK, (PROG, c_int, S, c_size_t, Ptr("bpf_uprobe_opts")), "null"),
    "bpf_program__attach_usdt": Sig(LINK, (PROG, c_int, S, S, S, Ptr("bpf_usdt_opts")), "null"),
    "bpf_program__attach_tracepoint_opts": Sig(
        LINK, (PROG, S, S, Ptr("bpf_tracepoint_opts")), "null"),
    "bpf_program__attach_raw_tracepoint": Sig(LINK, (PROG, S), "null"),
    "bpf_program__attach_trace_opts": Sig(LINK, (PROG, Ptr("bpf_trace_opts")), "null"),
    "bpf_program__attach_lsm": Sig(LINK, (PROG,), "null"),
    "bpf_program__attach_cgroup": Sig(LINK, (PROG, c_int), "null"),
    "bpf_program__attach_netns": Sig(LINK, (PROG, c_int), "null"),
    "bpf_program__attach_xdp": Sig(LINK, (PROG, c_int), "null"),
    "bpf_program__attach_freplace": Sig(LINK, (PROG, c_int, S), "null"),
    "bpf_program__attach_iter": Sig(LINK, (PROG, Ptr("bpf_iter_attach_opts")), "null"),
    # bpf_link
    "bpf_link__open": Sig(LINK, (S,), "null"),
    "bpf_link__fd": Sig(c_int, (LINK,)),
    "bpf_link__pin_path": Sig(S, (LINK,)),
    "bpf_link__pin": Sig(c_int, (LINK, S), "neg"),
    "bpf_link__unpin": Sig(c_int, (LINK,), "neg"),
    "bpf_link__update_program": Sig(c_int, (LINK, PROG), "neg"),
    "bpf_link__disconnect": Sig(None, (LINK,)),
    "bpf_link__detach": Sig(c_int, (LINK,), "neg"),
    "bpf_link__destroy": Sig(c_int, (LINK,), "neg"),
    "bpf_link__update_map": Sig(c_int, (LINK, MAP), "neg", (1, 2)),
    # bpf_map (object maps)
    "bpf_map__name": Sig(S, (MAP,)),
    "bpf_map__fd": Sig(c_int, (MAP,)),
    "bpf_map__reuse_fd": Sig(c_int, (MAP, c_int), "neg"),
    "bpf_map__type": Sig(c_int, (MAP,)),
    "bpf_map__set_type": Sig(c_int, (MAP, c_int), "neg"),
    "bpf_map__max_entries": Sig(c_uint32, (MAP,)),
    "bpf_map__set_max_entries": Sig(c_int, (MAP, c_uint32), "neg"),
    "bpf_map__map_flags": Sig(c_uint32, (MAP,)),
    "bpf_map__set_map_flags": Sig(c_int, (MAP, c_uint32), "neg"),
    "bpf_map__numa_node": Sig(c_uint32, (MAP,)),
    "bpf_map__set_numa_node": Sig(c_int, (MAP, c_uint32), "neg"),
    "bpf_map__key_size": Sig(c_uint32, (MAP,)),
    "bpf_map__set_key_size": Sig(c_int, (MAP, c_uint32), "neg"),
    "bpf_map__value_size": Sig(c_uint32, (MAP,)),
    "bpf_map__set_value_size": Sig(c_int, (MAP, c_uint32), "neg"),
    "bpf_map__btf_key_type_id": Sig(c_uint32, (MAP,)),
    "bpf_map__btf_value_type_id": Sig(c_uint32, (MAP,)),
    "bpf_map__ifindex": Sig(c_uint32, (MAP,)),
    "bpf_map__set_ifindex": Sig(c_int, (MAP, c_uint32), "neg"),
    "bpf_map__map_extra": Sig(c_uint64, (MAP,)),
    "bpf_map__set_map_extra": Sig(c_int, (MAP, c_uint64), "neg"),
    "bpf_map__set_initial_value": Sig(c_int, (MAP, V, c_size_t), "neg"),
    "bpf_map__initial_value": Sig(V, (MAP, size_tp)),
    "bpf_map__is_internal": Sig(c_bool, (MAP,)),
    "bpf_map__set_pin_path": Sig(c_int, (MAP, S), "neg"),
    "bpf_map__pin_path": Sig(S, (MAP,)),
    "bpf_map__is_pinned": Sig(c_bool, (MAP,)),
    "bpf_map__pin": Sig(c_int, (MAP, S), "neg"),
    "bpf_map__unpin": Sig(c_int, (MAP, S), "neg"),
    "bpf_map__set_inner_map_fd": Sig(c_int, (MAP, c_int), "neg"),
    "bpf_map__inner_map": Sig(MAP, (MAP,)),
    "bpf_map__autocreate": Sig(c_bool, (MAP,)),
    "bpf_map__set_autocreate": Sig(c_int, (MAP, c_bool), "neg"),
    "bpf_map__attach_struct_ops": Sig(LINK, (MAP,), "null"),
    # low-level map syscalls (bpf.h); element ops are called without errcheck on the hot path
    "bpf_map_create": Sig(c_int, (c_int, S, c_uint32, c_uint32, c_uint32,
                                  Ptr("bpf_map_create_opts")), "neg"),
    "bpf_map_lookup_elem": Sig(c_int, (c_int, V, V)),
    "bpf_map_lookup_elem_flags": Sig(c_int, (c_int, V, V, c_uint64)),
    "bpf_map_update_elem": Sig(c_int, (c_int, V, V, c_uint64)),
    "bpf_map_delete_elem": Sig(c_int, (c_int, V)),
    "bpf_map_delete_elem_flags": Sig(c_int, (c_int, V, c_uint64)),
    "bpf_map_lookup_and_delete_elem": Sig(c_int, (c_int, V, V)),
    "bpf_map_lookup_and_delete_elem_flags": Sig(c_int, (c_int, V, V, c_uint64)),
    "bpf_map_get_next_key": Sig(c_int, (c_int, V, V)),
    "bpf_map_freeze": Sig(c_int, (c_int,), "neg"),
    "bpf_map_lookup_batch": Sig(c_int, (c_int, V, V, V, V, u32p, Ptr("bpf_map_batch_opts"))),
    "bpf_map_lookup_and_delete_batch": Sig(
        c_int, (c_int, V, V, V, V, u32p, Ptr("bpf_map_batch_opts"))),
    "bpf_map_update_batch": Sig(c_int, (c_int, V, V, u32p, Ptr("bpf_map_batch_opts"))),
    "bpf_map_delete_batch": Sig(c_int, (c_int, V, u32p, Ptr("bpf_map_batch_opts"))),
    # objects, ids, info
    "bpf_obj_pin": Sig(c_int, (c_int, S), "neg"),
    "bpf_obj_get": Sig(c_int, (S,), "neg"),
    "bpf_obj_get_info_by_fd": Sig(c_int, (c_int, V, u32p), "neg"),
    "bpf_prog_get_next_id": Sig(c_int, (c_uint32, u32p)),
    "bpf_map_get_next_id": Sig(c_int, (c_uint32, u32p)),
    "bpf_link_get_next_id": Sig(c_int, (c_uint32, u32p)),
    "bpf_btf_get_next_id": Sig(c_int, (c_uint32, u32p)),
    "bpf_prog_get_fd_by_id": Sig(c_int, (c_uint32,), "neg"),
    "bpf_map_get_fd_by_id": Sig(c_int, (c_uint32,), "neg"),
    "bpf_link_get_fd_by_id": Sig(c_int, (c_uint32,), "neg"),
    "bpf_btf_get_fd_by_id": Sig(c_int, (c_uint32,), "neg"),
    "bpf_prog_load": Sig(c_int, (c_int, S, S, V, c_size_t, Ptr("bpf_prog_load_opts")), "neg"),
    "bpf_prog_attach": Sig(c_int, (c_int, c_int, c_int, c_uint), "neg"),
    "bpf_prog_detach2": Sig(c_int, (c_int, c_int, c_int), "neg"),
    "bpf_task_fd_query": Sig(c_int, (c_int, c_int, c_uint32, c_char_p, u32p, u32p, u32p, u64p,
                                     u64p), "neg"),
    "bpf_prog_query": Sig(c_int, (c_int, c_int, c_uint32, u32p, u32p, u32p), "neg"),
    "bpf_link_create": Sig(c_int, (c_int, c_int, c_int, Ptr("bpf_link_create_opts")), "neg"),
    "bpf_link_detach": Sig(c_int, (c_int,), "neg"),
    "bpf_link_update": Sig(c_int, (c_int, c_int, Ptr("bpf_link_update_opts")), "neg"),
    "bpf_iter_create": Sig(c_int, (c_int,), "neg"),
    "bpf_raw_tracepoint_open": Sig(c_int, (S, c_int), "neg"),
    "bpf_prog_test_run_opts": Sig(c_int, (c_int, Ptr("bpf_test_run_opts")), "neg"),
    "bpf_enable_stats": Sig(c_int, (c_int,), "neg"),
    # xdp and tc
    "bpf_xdp_attach": Sig(c_int, (c_int, c_int, c_uint32, Ptr("bpf_xdp_attach_opts")), "neg"),
    "bpf_xdp_detach": Sig(c_int, (c_int, c_uint32, Ptr("bpf_xdp_attach_opts")), "neg"),
    "bpf_xdp_query_id": Sig(c_int, (c_int, c_int, u32p), "neg"),
    "bpf_tc_hook_create": Sig(c_int, (Ptr("bpf_tc_hook"),)),
    "bpf_tc_hook_destroy": Sig(c_int, (Ptr("bpf_tc_hook"),), "neg"),
    "bpf_tc_attach": Sig(c_int, (Ptr("bpf_tc_hook"), Ptr("bpf_tc_opts")), "neg"),
    "bpf_tc_detach": Sig(c_int, (Ptr("bpf_tc_hook"), Ptr("bpf_tc_opts")), "neg"),
    "bpf_tc_query": Sig(c_int, (Ptr("bpf_tc_hook"), Ptr("bpf_tc_opts")), "neg"),
    # btf
    "btf__fd": Sig(c_int, (btf_p,)),
    "btf__raw_data": Sig(V, (btf_p, u32p)),
    "btf__load_vmlinux_btf": Sig(btf_p, (), "null"),
    "btf__load_module_btf": Sig(btf_p, (S, btf_p), "null"),
    "btf__type_cnt": Sig(c_uint32, (btf_p,)),
    "btf__find_by_name": Sig(c_int, (btf_p, S)),
    "btf__free": Sig(None, (btf_p,)),
    "btf__find_by_name_kind": Sig(c_int, (btf_p, S, c_uint32)),
    "btf__type_by_id": Sig(V, (btf_p, c_uint32)),
    "btf__name_by_offset": Sig(S, (btf_p, c_uint32)),
    "btf__resolve_size": Sig(c_long, (btf_p, c_uint32)),
    # ring buffer
    "ring_buffer__new": Sig(ring_buffer_p, (c_int, ring_buffer_sample_fn, V,
                                            Ptr("ring_buffer_opts")), "null"),
    "ring_buffer__free": Sig(None, (ring_buffer_p,)),
    "ring_buffer__add": Sig(c_int, (ring_buffer_p, c_int, ring_buffer_sample_fn, V), "neg"),
    "ring_buffer__poll": Sig(c_int, (ring_buffer_p, c_int)),
    "ring_buffer__consume": Sig(c_int, (ring_buffer_p,)),
    "ring_buffer__epoll_fd": Sig(c_int, (ring_buffer_p,)),
    "ring_buffer__consume_n": Sig(c_int, (ring_buffer_p, c_size_t), None, (1, 5)),
    "ring_buffer__ring": Sig(ring_p, (ring_buffer_p, c_uint), "null", (1, 3)),
    # one ring of a ring_buffer (pylibbpf.events.ring.Ring)
    "ring__consumer_pos": Sig(c_ulong, (ring_p,), None, (1, 3)),
    "ring__producer_pos": Sig(c_ulong, (ring_p,), None, (1, 3)),
    "ring__avail_data_size": Sig(c_size_t, (ring_p,), None, (1, 3)),
    "ring__size": Sig(c_size_t, (ring_p,), None, (1, 3)),
    "ring__map_fd": Sig(c_int, (ring_p,), None, (1, 3)),
    "ring__consume": Sig(c_int, (ring_p,), None, (1, 3)),
    "ring__consume_n": Sig(c_int, (ring_p, c_size_t), None, (1, 5)),
    "user_ring_buffer__new": Sig(user_ring_buffer_p, (c_int, Ptr("user_ring_buffer_opts")),
                                 "null"),
    "user_ring_buffer__reserve": Sig(V, (user_ring_buffer_p, c_uint32)),
    "user_ring_buffer__reserve_blocking": Sig(V, (user_ring_buffer_p, c_uint32, c_int)),
    "user_ring_buffer__submit": Sig(None, (user_ring_buffer_p, V)),
    "user_ring_buffer__discard": Sig(None, (user_ring_buffer_p, V)),
    "user_ring_buffer__free": Sig(None, (user_ring_buffer_p,)),
    # perf buffer
    "perf_buffer__new": Sig(perf_buffer_p, (c_int, c_size_t, perf_buffer_sample_fn,
                                            perf_buffer_lost_fn, V, Ptr("perf_buffer_opts")),
                            "null"),
    "perf_buffer__free": Sig(None, (perf_buffer_p,)),
    "perf_buffer__epoll_fd": Sig(c_int, (perf_buffer_p,)),
    "perf_buffer__poll": Sig(c_int, (perf_buffer_p, c_int)),
    "perf_buffer__consume": Sig(c_int, (perf_buffer_p,)),
    "perf_buffer__consume_buffer": Sig(c_int, (perf_buffer_p, c_size_t)),
    "perf_buffer__buffer_cnt": Sig(c_size_t, (perf_buffer_p,)),
    "perf_buffer__buffer_fd": Sig(c_int, (perf_buffer_p, c_size_t)),
    "perf_buffer__buffer": Sig(c_int, (perf_buffer_p, c_int, POINTER(V), size_tp), "neg"),
    # the skeleton's attach (Object.attach), multi-probes, programs attached to a map, and the
    # attach points of newer libbpf releases (tcx, netkit, netfilter, sockmap links)
    "bpf_object__attach_skeleton": Sig(c_int, (Ptr("bpf_object_skeleton"),), "neg"),
    "bpf_program__attach_kprobe_multi_opts": Sig(
        LINK, (PROG, S, Ptr("bpf_kprobe_multi_opts__1_6")), "null"),
    "bpf_program__attach_uprobe_multi": Sig(
        LINK, (PROG, c_int, S, S, Ptr("bpf_uprobe_multi_opts")), "null", (1, 3)),
    "bpf_program__attach_tcx": Sig(LINK, (PROG, c_int, Ptr("bpf_tcx_opts")), "null", (1, 3)),
    "bpf_program__attach_netkit": Sig(
        LINK, (PROG, c_int, Ptr("bpf_netkit_opts")), "null", (1, 3)),
    "bpf_program__attach_netfilter": Sig(
        LINK, (PROG, Ptr("bpf_netfilter_opts")), "null", (1, 3)),
    "bpf_program__attach_sockmap": Sig(LINK, (PROG, c_int), "null", (1, 5)),
}
