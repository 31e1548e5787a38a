"""BPF maps: one implementation of the map operations, carried by two kinds of map.

* ``_elements``: what every operation on a map fd needs, written once — the key and value
  rules, the per-CPU layout (the possible-CPU count and a CPU's slot size), error building,
  the per-thread value buffers — and the element operations over (fd, layout) that
  :class:`~pylibbpf.Map` and :mod:`pylibbpf.lowlevel` both use;
* ``_bulk``: the batch and dict-like operations, built on the element operations;
* :mod:`.base`: :class:`~pylibbpf.Map`, what every map has and does;
* :mod:`.of_object`: :class:`~pylibbpf.ObjectMap`, a map of an :class:`~pylibbpf.Object`
  (libbpf's ``bpf_map``: configured before load, used after it);
* :mod:`.standalone`: :class:`~pylibbpf.StandaloneMap`, a map that owns its own fd
  (:meth:`Map.create <pylibbpf.Map.create>`, ``from_pinned``, ``from_id``, ``from_fd``).

The public classes are re-exported from :mod:`pylibbpf` and :mod:`pylibbpf.map`.  This package
imports nothing itself, so that :mod:`pylibbpf.lowlevel` can use ``_elements`` without loading
the classes (which use :mod:`pylibbpf.lowlevel` in turn).
"""
