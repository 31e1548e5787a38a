#!/bin/sh
# Installs everything pylibbpf's demo and tests need on Debian 12 or 13 (run as root), then a virtual
# environment in .venv with pylibbpf installed in editable mode.  Idempotent: a second run only
# checks.  Set PYLIBBPF_SKIP_APT=1 to skip the system packages.
set -eu
cd "$(dirname "$0")/.."

PACKAGES="python3 python3-venv libbpf1 libbpf-dev clang llvm bpftool gcc libc6-dev make \
systemtap-sdt-dev iproute2 util-linux kmod qemu-system-x86 busybox-static cpio e2fsprogs \
ca-certificates debootstrap prometheus"

if [ "${PYLIBBPF_SKIP_APT:-0}" != 1 ]; then
    missing=""
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        echo "bootstrap: installing$missing" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
fi

# The system interpreter, whatever python3 a PATH may put first (PEP 668: never pip into it).
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.pylibbpf-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e '.[test,export]'
    touch "$stamp"
fi

# A cgroup v2 hierarchy (cgroup BPF programs attach to one); systemd mounts it at boot, a
# container or chroot may not have it.
cgroup2=""
for d in /sys/fs/cgroup /sys/fs/cgroup/unified; do
    [ "$(stat -fc %T "$d" 2>/dev/null)" = cgroup2fs ] && cgroup2=$d
done
if [ -z "$cgroup2" ]; then
    d=/sys/fs/cgroup
    if mountpoint -q "$d" 2>/dev/null; then d=/sys/fs/cgroup/unified; mkdir -p "$d" 2>/dev/null || true; fi
    mount -t cgroup2 none "$d" 2>/dev/null || echo "bootstrap: could not mount cgroup2 on $d" >&2
fi

# bpffs, tracefs and debugfs are not mounted at boot on every machine.
for spec in "bpf bpf /sys/fs/bpf" "tracefs nodev /sys/kernel/tracing" "debugfs none /sys/kernel/debug"; do
    set -- $spec
    if ! mountpoint -q "$3" 2>/dev/null; then
        mkdir -p "$3" 2>/dev/null || true
        mount -t "$1" "$2" "$3" 2>/dev/null || echo "bootstrap: could not mount $1 on $3" >&2
    fi
done
