"""pylibbpf's test suite.

``tests/support`` holds the helpers the tests import by package path (``from
tests.support.bpfbuild import compile_bpf``); every other folder holds tests, their conftest,
and the C sources and data they use.  Each folder is a package, so test files in different
folders may share a basename and mypy sees one module name per file.
"""
