"""One opaque pointer type per libbpf C type, and the callback types.

A ``POINTER`` to an empty ``Structure`` per C type (never a bare ``c_void_p``) makes ctypes refuse a
map handle where an object handle belongs.
"""

from __future__ import annotations

import ctypes
from ctypes import CFUNCTYPE, POINTER, c_char_p, c_int, c_size_t, c_uint64, c_void_p


class bpf_object(ctypes.Structure):  # noqa: N801 - C names are kept exactly
    """struct bpf_object (opaque)."""


class bpf_program(ctypes.Structure):  # noqa: N801
    """struct bpf_program (opaque)."""


class bpf_map(ctypes.Structure):  # noqa: N801
    """struct bpf_map (opaque)."""


class bpf_link(ctypes.Structure):  # noqa: N801
    """struct bpf_link (opaque)."""


class btf(ctypes.Structure):  # noqa: N801
    """struct btf (opaque)."""


class ring_buffer(ctypes.Structure):  # noqa: N801
    """struct ring_buffer (opaque)."""


class ring(ctypes.Structure):  # noqa: N801
    """struct ring (opaque, libbpf >= 1.3)."""


class user_ring_buffer(ctypes.Structure):  # noqa: N801
    """struct user_ring_buffer (opaque)."""


class perf_buffer(ctypes.Structure):  # noqa: N801
    """struct perf_buffer (opaque)."""


bpf_object_p = POINTER(bpf_object)
bpf_program_p = POINTER(bpf_program)
bpf_map_p = POINTER(bpf_map)
bpf_link_p = POINTER(bpf_link)
btf_p = POINTER(btf)
ring_buffer_p = POINTER(ring_buffer)
ring_p = POINTER(ring)
user_ring_buffer_p = POINTER(user_ring_buffer)
perf_buffer_p = POINTER(perf_buffer)

# va_list decays to a pointer when passed as an argument on x86_64 (and is passed by reference
# on aarch64), so the print callback receives it as c_void_p and hands it on to vsnprintf.
libbpf_print_fn_t = CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)
ring_buffer_sample_fn = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)
perf_buffer_sample_fn = CFUNCTYPE(None, c_void_p, c_int, c_void_p, ctypes.c_uint32)
perf_buffer_lost_fn = CFUNCTYPE(None, c_void_p, c_int, c_uint64)
