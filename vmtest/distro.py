"""The distribution tier: the README's two commands in a fresh Debian root, on this kernel.

A new user on Debian 13 runs ``./scripts/demo.sh`` and ``./scripts/test.sh`` on a machine that has
nothing but ``python3``.  This tier does the same in a chroot: the release is debootstrapped
(``--variant=minbase --include=python3``) once into the vmtest cache, every run works on a fresh
copy of that root, so ``scripts/bootstrap.sh`` installs the packages and the venv from scratch
each time.  Inside, it runs the bootstrap, the lathist demo for a few seconds (it must print a
histogram), then pytest with the runner's plugin and junit arguments.

The host's network settings go in as files, only those that exist: the CA bundle and local CA
certificates, ``/etc/pip.conf``, and the ``/etc/apt/apt.conf.d`` files that set ``Acquire::``
options (a proxy).  ``/proc``, ``/sys`` and ``/dev`` are bound in as slaves, so what the bootstrap
mounts under them (bpffs, tracefs, cgroup2) never reaches the host; every mount under the root is
undone in a ``finally`` block, and the copy is removed only once nothing is mounted there.

A chroot shares this machine's kernel, so kernel features are the host tier's; what differs is
the userland: Python, libbpf, clang/LLVM, bpftool and the headers of the release.  The kernel
refuses to create user namespaces for a chrooted process, which the tests that need one handle.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from vmtest import cache_dir, cache_lock
from vmtest.fetch import FetchError, host_mirror
from vmtest.proc import run_guarded
from vmtest.tiers import (
    CHECKOUT,
    NO_PASS_ENV,
    PASS_ENV,
    PASS_ENV_PREFIXES,
    GuestError,
    TierResult,
    pytest_args,
)

# release -> tier name
RELEASES: dict[str, str] = {"trixie": "debian13"}
BIND_MOUNTS = ("proc", "sys", "dev", "dev/pts")  # dev/pts (apt's log) only if the host has it
# where the checkout and the results live inside the root
ROOT_CHECKOUT = "/root/pylibbpf"
ROOT_OUT = "/tmp/vmtest-out"
DEMO_SECONDS = 4
# proxy variables the commands inside see, when the host has them
PROXY_ENV = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
# a log2 histogram row as format_log2_hist prints it: "  64 -> 127  : 5  |****   |"
HISTOGRAM_ROW = re.compile(r"^\s*\d+ -> \d+\s*:\s*\d+\s*\|")


class DistroError(GuestError):
    """The root could not be made or entered, or a step before pytest failed."""


def tier_name(release: str) -> str:
    """``debian13`` for ``trixie``."""
    if release not in RELEASES:
        raise ValueError(f"unknown release {release!r}; choose one of {sorted(RELEASES)}")
    return RELEASES[release]


# --------------------------------------------------------------------------------------------
# the cached base root
# --------------------------------------------------------------------------------------------


def debootstrap_command(release: str, target: Path, mirror: str | None) -> list[str]:
    """The debootstrap command line for a minimal root with Python."""
    cmd = ["debootstrap", "--variant=minbase", "--include=python3", release, str(target)]
    return cmd + ([mirror] if mirror else [])


def _mirror() -> str | None:
    """The host's Debian mirror (debootstrap's default when the host names none)."""
    try:
        return host_mirror().uri
    except (FetchError, OSError):
        return None


def base_root(release: str) -> Path:
    """The debootstrapped root of ``release`` in the vmtest cache, made once.

    A root is complete when its ``.done`` marker exists; an interrupted debootstrap leaves only
    a ``.partial`` folder, which the next call removes and starts over.  Call with the cache
    lock held.
    """
    folder = cache_dir() / "distro"
    root = folder / release
    done = folder / f"{release}.done"
    if done.exists() and (root / "usr" / "bin" / "python3").exists():
        return root
    if shutil.which("debootstrap") is None:
        raise DistroError(2, "debootstrap not found: apt-get install debootstrap")
    partial = folder / f"{release}.partial"
    for stale in (partial, root):
        if stale.exists():
            _remove_tree(stale)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"vmtest: debootstrap {release} into {root}", file=sys.stderr)
    proc = subprocess.run(debootstrap_command(release, partial, _mirror()),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise DistroError(0, f"debootstrap {release} failed ({proc.returncode}):\n{tail}")
    partial.rename(root)
    done.touch()
    return root


# --------------------------------------------------------------------------------------------
# one run's root: copy, host settings, checkout, mounts
# --------------------------------------------------------------------------------------------


def host_files() -> list[Path]:
    """The host files that carry its network settings into the root (those that exist)."""
    files = [Path("/etc/ssl/certs/ca-certificates.crt"), Path("/etc/pip.conf")]
    files += sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    apt_conf = Path("/etc/apt/apt.conf.d")
    if apt_conf.is_dir():
        for path in sorted(apt_conf.iterdir()):
            try:
                if path.is_file() and "acquire::" in path.read_text(errors="replace").lower():
                    files.append(path)
            except OSError:
                continue
    return [f for f in files if f.is_file()]


def copy_host_files(root: Path, files: Sequence[Path]) -> None:
    for src in files:
        dest = root / src.relative_to("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)


# what a checkout without git (a copy made by this tier) skips: environments, caches, output
NOT_SOURCE = {".git", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache",
              "build", "pylibbpf.egg-info"}


def checkout_files(checkout: Path) -> list[str]:
    """The checkout's files as a new clone plus local edits has them (tracked and untracked,
    not ignored): no venv, no caches, no build output.  Without git (or outside a work tree,
    as in a copy this tier made) every file but :data:`NOT_SOURCE` folders."""
    if shutil.which("git") and (checkout / ".git").exists():
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=checkout, capture_output=True, check=True).stdout
        names = [n.decode() for n in out.split(b"\0") if n]
        return [n for n in names if (checkout / n).exists() or (checkout / n).is_symlink()]
    found = []
    for folder, dirs, files in os.walk(checkout):
        dirs[:] = sorted(d for d in dirs if d not in NOT_SOURCE)
        rel = Path(folder).relative_to(checkout)
        found += [str(rel / f) for f in sorted(files)]
    return found


def copy_checkout(checkout: Path, dest: Path) -> None:
    dest.mkdir(parents=True)
    for name in checkout_files(checkout):
        src, target = checkout / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)


def mounts_under(root: Path, mountinfo: str | None = None) -> list[Path]:
    """Every mount point at or below ``root``, deepest first (from /proc/self/mountinfo)."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    base = os.path.realpath(root)
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = fields[4].encode().decode("unicode_escape")  # \040 for a space
        if point == base or point.startswith(base + "/"):
            found.append(Path(point))
    return sorted(set(found), key=lambda p: (-len(p.parts), str(p)))


def unmount_all(root: Path, run: Callable[[list[str]], int] | None = None) -> list[Path]:
    """Unmount everything below ``root``; return what is still mounted (empty on success)."""
    def default_run(cmd: list[str]) -> int:
        return subprocess.run(cmd, capture_output=True).returncode

    run = run or default_run
    for _ in range(3):
        left = mounts_under(root)
        if not left:
            return []
        for point in left:
            if run(["umount", str(point)]) != 0:
                run(["umount", "--lazy", str(point)])
    return mounts_under(root)


def _remove_tree(path: Path) -> None:
    """``rm -rf`` that refuses while anything below ``path`` is mounted."""
    if mounts_under(path):
        raise DistroError(0, f"not removing {path}: something is still mounted below it")
    shutil.rmtree(path)


@contextmanager
def bound(root: Path) -> Iterator[None]:
    """/proc, /sys, /dev (and /dev/pts) of the host bound into ``root``; all mounts below it
    undone after."""
    try:
        for name in BIND_MOUNTS:
            if name == "dev/pts" and not os.path.ismount("/dev/pts"):
                continue
            point = root / name
            point.mkdir(exist_ok=True)
            subprocess.run(["mount", "--bind", f"/{name}", str(point)], check=True,
                           capture_output=True)
            subprocess.run(["mount", "--make-rslave", str(point)], check=True,
                           capture_output=True)
        yield
    finally:
        left = unmount_all(root)
        if left:
            raise DistroError(0, f"could not unmount {[str(p) for p in left]}")


# --------------------------------------------------------------------------------------------
# the commands inside
# --------------------------------------------------------------------------------------------


def inner_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the commands inside: a login's basics, CI and PYLIBBPF_*, proxies."""
    source = dict(os.environ) if env is None else env
    inner = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
             "DEBIAN_FRONTEND": "noninteractive"}
    for key, value in source.items():
        passed = key in PASS_ENV or key.startswith(PASS_ENV_PREFIXES)
        if (passed and key not in NO_PASS_ENV) or key in PROXY_ENV:
            inner[key] = value
    inner.pop("PYLIBBPF_MATRIX", None)  # no matrix inside a tier
    return inner


def chroot_command(root: Path, script: str, env: dict[str, str]) -> list[str]:
    """``chroot ROOT env -i VAR=... bash -c SCRIPT`` (nothing of the host's environment leaks)."""
    return ["chroot", str(root), "/usr/bin/env", "-i",
            *(f"{k}={v}" for k, v in sorted(env.items())), "bash", "-c", script]


def step_scripts(extra: Sequence[str]) -> dict[str, str]:
    """The shell script of each step, in order: bootstrap, demo, pytest."""
    cd = f"cd {ROOT_CHECKOUT} && "
    args = pytest_args(f"{ROOT_OUT}/junit.xml", extra, whole_suite=True)
    pytest = " ".join(shlex.quote(a) for a in [".venv/bin/python", "-m", "pytest", *args])
    return {
        "bootstrap": cd + "./scripts/bootstrap.sh",
        "demo": cd + f"./scripts/demo.sh --duration {DEMO_SECONDS} --interval 1",
        "pytest": cd + f"mkdir -p {ROOT_OUT} && {pytest}",
    }


def demo_printed_histogram(lines: Sequence[str]) -> bool:
    """The demo printed at least one histogram with a row."""
    return any(HISTOGRAM_ROW.match(line) for line in lines)


# --------------------------------------------------------------------------------------------
# the tier
# --------------------------------------------------------------------------------------------


def run_distro(release: str, extra: Sequence[str], *, outdir: Path, timeout: float = 1800,
               quiet: bool = False) -> TierResult:
    """Run the README's commands in a fresh ``release`` root on this kernel; junit to
    ``outdir/<tier>.xml``, every line of output to ``outdir/<tier>.console.log``."""
    name = tier_name(release)
    if os.geteuid() != 0:
        raise DistroError(1, "the distribution tier needs root (debootstrap, chroot, mount)")
    outdir.mkdir(parents=True, exist_ok=True)
    junit = outdir / f"{name}.xml"
    junit.unlink(missing_ok=True)
    console_path = outdir / f"{name}.console.log"
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    with cache_lock():
        base = base_root(release)
    timings["debootstrap"] = time.monotonic() - t0  # about 0 once the root is cached
    runs = cache_dir() / "distro" / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{release}-", dir=runs))
    root = work / "root"
    env = inner_env()
    rc = 1
    try:
        t = time.monotonic()
        # a fresh root per run (hard links would share the installed files with the base)
        subprocess.run(["cp", "-a", str(base), str(root)], check=True, capture_output=True)
        copy_host_files(root, host_files())
        copy_checkout(CHECKOUT, root / ROOT_CHECKOUT.lstrip("/"))
        timings["fresh root"] = time.monotonic() - t
        with open(console_path, "w", buffering=1) as console, bound(root):
            deadline = t0 + timeout
            for step, script in step_scripts(extra).items():
                lines: list[str] = []

                def on_line(line: str, lines: list[str] = lines, step: str = step) -> None:
                    lines.append(line)
                    console.write(line + "\n")
                    if not quiet:
                        print(f"[{name} {step}] {line}", flush=True)

                t = time.monotonic()
                status = run_guarded(chroot_command(root, script, env),
                                     timeout=max(deadline - t, 1), on_line=on_line)
                timings[step] = time.monotonic() - t
                if step == "pytest":
                    rc = status
                elif status != 0:
                    raise DistroError(0, f"{step} failed ({status}) in the {release} root; "
                                         f"console: {console_path}")
                elif step == "demo" and not demo_printed_histogram(lines):
                    raise DistroError(0, f"the demo printed no histogram; console: {console_path}")
            produced = root / ROOT_OUT.lstrip("/") / "junit.xml"
            if produced.exists():
                shutil.copy(produced, junit)
    finally:
        t = time.monotonic()
        left = mounts_under(work)
        if left:  # bound() could not undo them: leave the copy rather than rm -rf through them
            print(f"vmtest: {work} left in place, still mounted: {left}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
        timings["cleanup"] = time.monotonic() - t
    timings["total"] = time.monotonic() - t0
    return TierResult(name, rc, junit if junit.exists() else None, timings, console_path)
