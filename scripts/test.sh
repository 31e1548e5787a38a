#!/bin/sh
# Installs what is needed and runs the whole test suite: lint (ruff), types (mypy), the pytest
# suite on this kernel, then the kernel matrix tiers CI runs (this host's kernel, Debian's 6.1
# under QEMU, and libbpf 1.5; see docs/kernel-matrix.md).
#
#   ./scripts/test.sh                 everything
#   ./scripts/test.sh -k maps         pytest arguments: only pytest, no matrix
#   PYLIBBPF_MATRIX=all ./scripts/test.sh    also the 6.12 and 5.10 kernels
#   PYLIBBPF_MATRIX=none ./scripts/test.sh   no matrix
set -eu
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest (host kernel $(uname -r))"
.venv/bin/python -m pytest "$@"
tiers="${PYLIBBPF_MATRIX:-ci}"
if [ $# -eq 0 ] && [ "$tiers" != none ]; then
    echo "== kernel matrix ($tiers)"
    .venv/bin/python -m vmtest matrix --tiers "$tiers" --out build/matrix
fi
