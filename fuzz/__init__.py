"""Fuzzing pylibbpf with atheris (libFuzzer for Python).

Targets (see :mod:`fuzz.targets`): ``open_mem`` (libbpf's ELF parser through
``pylibbpf.Object.open_mem``), ``elf`` (``pylibbpf.elf.ObjectFile.from_bytes``), ``insn`` (the
instruction codec), ``attr`` (compat's legacy attr codecs and ``compat.sys_bpf``) and
``legacy_load`` (``compat.bpf_prog_load_ex``).  Seeds come from the test suite's objects
(:mod:`fuzz.corpus`).  ``python -m fuzz --seconds 60`` runs them all; see ``docs/reliability.md``.
"""
