#!/bin/sh
# Installs what is needed and runs the whole test suite as CI does: lint (ruff), types (mypy),
# then the kernel matrix's `all` tiers, two at a time: the whole pytest suite on this kernel
# (its output shown), the suite against Debian's libbpf 1.4.6, 1.5.0 and 1.7.0, the suite and the
# README's commands in a fresh Debian 13 root, and the kernel tests inside Debian's 5.10, 6.1,
# 6.12 and 7.3 kernels under QEMU (7.3 also with libbpf 1.7.0); see docs/kernel-matrix.md.
#
#   ./scripts/test.sh                 everything (about 40 minutes on 2 cores)
#   ./scripts/test.sh -k maps         pytest arguments: only pytest on this kernel, no matrix
#   PYLIBBPF_MATRIX=quick ./scripts/test.sh  only the host, 6.1 and libbpf 1.5 tiers
#   PYLIBBPF_MATRIX=none ./scripts/test.sh   only pytest on this kernel
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
