"""Event delivery: the buffers that carry records between BPF programs and Python.

One concept per module; the public classes are re-exported from :mod:`pylibbpf`:

* ``_guard``: a buffer's C calls serialised with its release; re-entrance and ``fork()``;
* ``_batch``: the batch path, a ring's records read straight from its memory.

The rules every buffer keeps are in ``docs/events.md``.  This package imports nothing itself,
so that importing one of its modules loads only what that module needs.
"""
