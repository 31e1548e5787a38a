#!/bin/sh
# Installs what is needed and runs the lathist latency-histogram demo (Ctrl-C to stop).
# Arguments go to the demo: e.g. ./scripts/demo.sh --duration 10
set -eu
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
exec .venv/bin/python -m examples.lathist "$@"
