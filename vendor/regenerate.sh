#!/bin/sh
# Regenerates vendor/vmlinux.h from the running kernel's BTF (needs bpftool and /sys/kernel/btf).
# The BPF test programs use CO-RE, so one header serves every kernel in the VM matrix.
set -eu
cd "$(dirname "$0")"
bpftool btf dump file /sys/kernel/btf/vmlinux format c > vmlinux.h.tmp
mv vmlinux.h.tmp vmlinux.h
