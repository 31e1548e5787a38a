"""The lathist demo: a per-CPU log2 latency histogram (Linux's samples/bpf/lathist, ported)."""
