"""Event delivery: the buffers that carry records between BPF programs and Python.

One concept per module; the public classes are re-exported from :mod:`pylibbpf`:

* :mod:`.ring`: :class:`~pylibbpf.RingBuffer`, BPF → Python through ``RINGBUF`` maps;
* :mod:`.user_ring`: :class:`~pylibbpf.UserRingBuffer`, Python → BPF through a
  ``USER_RINGBUF`` map;
* :mod:`.perf`: :class:`~pylibbpf.PerfBuffer`, BPF → Python through a ``PERF_EVENT_ARRAY``;
* ``_batch``: the batch path, a ring's records read straight from its memory;
* ``_guard``: a buffer's C calls serialised with its release; re-entrance and ``fork()``;
* ``_common``: what the buffers share (callback types, the map check, timeouts, queue mode).

The rules every buffer keeps are in ``docs/events.md``.  This package imports nothing itself,
so that importing one of its modules loads only what that module needs.
"""
