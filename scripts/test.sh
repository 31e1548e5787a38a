#!/bin/sh
# Installs what is needed and runs the whole test suite: lint (ruff), types (mypy), the pytest
# suite on this kernel, then the kernel matrix's `all` tiers (this host's kernel, libbpf 1.4.6
# and 1.5, and Debian's 6.1, 6.12 and 5.10 kernels under QEMU; see docs/kernel-matrix.md), as CI
# does.  PYLIBBPF_MATRIX=full adds 7.3, libbpf 1.7.0 (host and 7.3 guest) and debian13.
#
#   ./scripts/test.sh                 everything (about 30 minutes on 2 cores)
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
tiers="${PYLIBBPF_MATRIX:-all}"
if [ $# -gt 0 ] || [ "$tiers" = none ]; then
    echo "== pytest (host kernel $(uname -r))"
    exec .venv/bin/python -m pytest "$@"
fi
# the matrix's `host` tier is the whole pytest suite on this kernel (its output is shown);
# the other tiers run beside it, two at a time, their logs in build/matrix
echo "== pytest on this kernel ($(uname -r)) and the kernel matrix ($tiers)"
exec .venv/bin/python -m vmtest matrix --tiers "$tiers" --out build/matrix
