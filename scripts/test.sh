#!/bin/sh
# Installs what is needed and runs the whole test suite: lint (ruff), types (mypy), the pytest
# suite on this kernel, and the kernel matrix tiers that CI runs (see docs/kernel-matrix.md).
# Arguments go to pytest: e.g. ./scripts/test.sh -k maps
set -eu
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
echo "== ruff"
.venv/bin/ruff check pylibbpf compat fuzz vmtest examples bench
echo "== mypy"
.venv/bin/mypy
echo "== pytest (host kernel $(uname -r))"
.venv/bin/python -m pytest "$@"
