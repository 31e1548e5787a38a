"""pylibbpf's benchmarks: ``python -m bench`` (see run.py and docs/performance.md)."""
