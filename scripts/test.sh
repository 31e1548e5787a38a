#!/bin/sh
# Installs what is needed and runs the whole test suite: lint (ruff), types (mypy), the pytest
# suite on this kernel, then the whole kernel matrix (this host's kernel, libbpf 1.5, and
# Debian's 6.1, 6.12 and 5.10 kernels under QEMU; see docs/kernel-matrix.md), as CI does.
#
#   ./scripts/test.sh                 everything (about 20 minutes on 2 cores)
#   ./scripts/test.sh -k maps         pytest arguments: only pytest, no matrix
#   PYLIBBPF_MATRIX=quick ./scripts/test.sh  only the host, 6.1 and libbpf 1.5 tiers
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
tiers="${PYLIBBPF_MATRIX:-all}"
if [ $# -eq 0 ] && [ "$tiers" != none ]; then
    echo "== kernel matrix ($tiers)"
    .venv/bin/python -m vmtest matrix --tiers "$tiers" --out build/matrix
fi
