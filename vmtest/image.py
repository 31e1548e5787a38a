"""Build what a guest boots: an initramfs per kernel, a system disk, a per-run disk.

* The **system disk** (read-only ext4 made with ``mke2fs -d``, cached) holds the files of a few
  host packages (Python's stdlib, clang, gcc, bpftool, busybox, iproute2, headers), every shared
  library they and the venv's extension modules need (``ldd``), and a minimal ``/etc``.  The guest
  overlays it with a tmpfs, so it is writable there and never changes on the host.
* The **run disk** (rebuilt on every run, small) holds this checkout (with its ``.venv``) and the
  stage-2 script that runs pytest; it is overlaid at the checkout's own absolute path, which the
  venv's editable install needs.
* The **initramfs** (cached per kernel) holds busybox, the kernel modules the guest needs
  (virtio, overlay, tc's ``sch_ingress``/``cls_bpf``, ...) with their dependencies, and ``/init``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from vmtest import cache_dir
from vmtest.fetch import Kernel

# Host packages copied into the system disk, when installed (missing ones are reported).
BASE_PACKAGES = (
    "busybox-static", "libbpf1", "libbpf-dev", "bpftool", "iproute2",
    "clang", "clang-14", "libclang-common-14-dev", "llvm-14", "linux-libc-dev", "libc6-dev",
    "libc6", "gcc", "gcc-12", "cpp", "cpp-12", "binutils", "binutils-x86-64-linux-gnu",
    "libgcc-12-dev", "libelf1", "zlib1g", "systemtap-sdt-dev",
    "dash", "bash", "coreutils", "util-linux", "mount", "grep", "sed", "procps",
)
# Modules the guest loads at boot, with their dependencies (those built in are skipped).
GUEST_MODULES = (
    "virtio_pci", "virtio_blk", "overlay", "sch_ingress", "cls_bpf", "act_bpf", "veth",
    "dummy", "ifb",
)
# Checkout parts never copied into the run disk.
CHECKOUT_SKIP = {".git", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"}
IMAGE_FORMAT = "4"  # bump when the layout of any image changes

INIT = r"""#!/bin/busybox sh
# vmtest stage 1 (initramfs): load modules, overlay the disks, run stage 2 in a chroot.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
while read -r m; do insmod "/modules/$m" || echo "vmtest: insmod $m failed"; done < /modules/order
for i in $(seq 50); do [ -b /dev/vdc ] && break; sleep 0.1; done
mkdir -p /sys-ro /run-ro /rw /newroot
mount -t ext4 -o ro /dev/vda /sys-ro || { echo "vmtest: cannot mount system disk"; poweroff -f; }
mount -t ext4 -o ro /dev/vdb /run-ro || { echo "vmtest: cannot mount run disk"; poweroff -f; }
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/sys-up /rw/sys-work /rw/co-up /rw/co-work
mount -t overlay overlay -o lowerdir=/sys-ro,upperdir=/rw/sys-up,workdir=/rw/sys-work /newroot
. /run-ro/run/config
mkdir -p "/newroot$CHECKOUT"
mount -t overlay overlay \
    -o "lowerdir=/run-ro/checkout,upperdir=/rw/co-up,workdir=/rw/co-work" "/newroot$CHECKOUT"
mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/tmp /newroot/root /newroot/run
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
mkdir -p /newroot/tmp/vmtest-out
cp /run-ro/run/stage2.sh /newroot/tmp/stage2.sh
if [ -f /run-ro/run/kconfig ]; then
    mkdir -p /newroot/boot && cp /run-ro/run/kconfig "/newroot/boot/config-$(uname -r)"
fi
echo "VMTEST-STAGE2 $(cut -d' ' -f1 /newroot/proc/uptime)"
chroot /newroot /bin/busybox sh /tmp/stage2.sh
echo "VMTEST-POWEROFF"
sync
poweroff -f
"""

STAGE2 = r"""# vmtest stage 2 (in the overlaid system): mount kernel filesystems, run pytest.
bb=/bin/busybox
$bb mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
$bb mount -t debugfs none /sys/kernel/debug 2>/dev/null
$bb mount -t securityfs none /sys/kernel/security 2>/dev/null
$bb mount -t bpf bpf /sys/fs/bpf
$bb mount -t cgroup2 none /sys/fs/cgroup
$bb ip link set lo up 2>/dev/null || ip link set lo up
export HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LANG=C.UTF-8 PYLIBBPF_VM_GUEST=1 PYTHONUNBUFFERED=1
{env}
cd {checkout}
echo "VMTEST-PYTEST $($bb cut -d' ' -f1 /proc/uptime) kernel $($bb uname -r)"
{command}
rc=$?
echo "$rc" > /tmp/vmtest-out/rc
echo "VMTEST-EXIT $rc uptime $($bb cut -d' ' -f1 /proc/uptime)"
$bb tar -cf /dev/vdc -C /tmp/vmtest-out .
$bb sync
"""


class ImageError(OSError):
    """Building an image failed (a tool is missing, mke2fs refused, ...)."""


def _run(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise ImageError(e.errno, f"{cmd[0]} not found: see docs/kernel-matrix.md") from e
    if proc.returncode != 0:
        raise ImageError(0, f"{' '.join(cmd[:3])} ... failed: {proc.stderr.strip()}")
    return proc.stdout


def _is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def package_files(packages: Iterable[str]) -> tuple[list[Path], list[str]]:
    """Regular files and symlinks of installed ``packages``; also the names not installed."""
    files: list[Path] = []
    missing: list[str] = []
    for pkg in packages:
        proc = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True)
        if proc.returncode != 0:
            missing.append(pkg)
            continue
        for line in proc.stdout.splitlines():
            p = Path(line)
            if p.is_symlink() or p.is_file():
                files.append(p)
    return files, missing


def shared_libraries(files: Iterable[Path]) -> set[Path]:
    """Every shared library (``ldd``) the ELF files among ``files`` load, as real paths."""
    elves = [str(f) for f in files if not f.is_symlink() and _is_elf(f)]
    libs: set[Path] = set()
    for i in range(0, len(elves), 200):
        proc = subprocess.run(["ldd", *elves[i:i + 200]], capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
                libs.add(Path(parts[2]))
            elif parts and parts[0].startswith("/") and "ld-linux" in parts[0] \
                    and not parts[0].endswith(":"):
                libs.add(Path(parts[0]))
    return libs


def _dest(root: Path, path: Path) -> Path:
    """Where host ``path`` goes under ``root``: its parent resolved (merged /usr), name kept."""
    return root / str(path.parent.resolve()).lstrip("/") / path.name


def _place(root: Path, path: Path, placed: set[Path]) -> None:
    """Copy (hard-link where possible) ``path`` into ``root``, following symlink chains."""
    while True:
        dest = _dest(root, path)
        if dest in placed:
            return
        placed.add(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            target = os.readlink(path)
            if not dest.is_symlink():
                os.symlink(target, dest)
            path = (path.parent / target) if not os.path.isabs(target) else Path(target)
            continue
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            return
        if not path.exists():
            return  # the host link dangles (clang lib/ without libclang-rt): so does ours
        if not dest.exists():
            try:
                os.link(path, dest)
            except OSError:
                shutil.copy2(path, dest)
        return


def _python_version(python: Path) -> str:
    out = _run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
    return out.strip()


def system_files(python: Path) -> tuple[list[Path], list[str]]:
    """The host files the system disk holds, and the packages that were not installed."""
    ver = _python_version(python)
    packages = (*BASE_PACKAGES, f"python{ver}-minimal", f"libpython{ver}-minimal",
                f"libpython{ver}-stdlib", f"python{ver}")
    files, missing = package_files(packages)
    real_python = python.resolve()
    files.append(real_python)
    for link in (python.parent / "python3", Path(f"/usr/bin/python{ver}")):
        if link.exists():
            files.append(link)
    venv_elves = [p for p in (python.parent.parent / "lib").rglob("*.so*") if p.is_file()]
    libs = shared_libraries([*files, *venv_elves])
    files.extend(sorted(libs))
    return sorted(set(files)), missing


def _etc(root: Path) -> None:
    etc = root / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (etc / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
    (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files\n")
    for d in ("proc", "sys", "dev", "tmp", "root", "run", "var/tmp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    # merged /usr: the top-level links the host has (Debian 12: bin, sbin, lib, lib64)
    for name in ("bin", "sbin", "lib", "lib64"):
        host = Path("/") / name
        if host.is_symlink() and not (root / name).exists():
            os.symlink(os.readlink(host), root / name)
            (root / os.readlink(host).lstrip("/")).mkdir(parents=True, exist_ok=True)


def _tree_bytes(root: Path) -> tuple[int, int]:
    total, count = 0, 0
    for dirpath, dirnames, filenames in os.walk(root):
        count += len(dirnames) + len(filenames)
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode):
                total += st.st_blocks * 512
    return total, count


def make_ext4(tree: Path, image: Path, label: str) -> None:
    """``mke2fs -d`` a read-only-use ext4 image of ``tree``, sized to fit."""
    used, count = _tree_bytes(tree)
    size_mb = int(used * 1.15 / 2**20) + 32
    image.unlink(missing_ok=True)
    _run(["mke2fs", "-q", "-t", "ext4", "-F", "-L", label, "-d", str(tree),
          "-O", "^has_journal", "-m", "0", "-N", str(count + 4096), "-E", "root_owner=0:0",
          str(image), f"{size_mb}M"])


def _key(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _quick_key(python: Path) -> str:
    """Cheap key: dpkg's database and the venv's site-packages entries, with their mtimes."""
    parts: list[object] = [IMAGE_FORMAT, BASE_PACKAGES, str(python)]
    status = Path("/var/lib/dpkg/status")
    if status.exists():
        parts.append(status.stat().st_mtime_ns)
    for site in sorted((python.parent.parent / "lib").glob("python*/site-packages")):
        parts.extend(sorted((e.name, e.stat().st_mtime_ns) for e in os.scandir(site)))
    return _key(*parts)


def system_image(python: Path, log: bool = True) -> Path:
    """The cached system disk for ``python`` (rebuilt when any of its host files changed).

    A quick key (dpkg database and venv mtimes) finds the image without listing its files;
    otherwise every file's size and mtime make the key.
    """
    quick = cache_dir() / "images" / f"system-{_quick_key(python)}.quick"
    if quick.exists():
        known = quick.parent / quick.read_text().strip()
        if known.exists():
            return known
    out = _system_image(python, log)
    quick.parent.mkdir(parents=True, exist_ok=True)
    for old in quick.parent.glob("system-*.quick"):
        old.unlink()
    quick.write_text(out.name + "\n")
    return out


def _system_image(python: Path, log: bool) -> Path:
    files, missing = system_files(python)
    stamps = []
    for f in files:
        st = os.lstat(f)
        stamps.append((str(f), st.st_size, st.st_mtime_ns))
    key = _key(IMAGE_FORMAT, BASE_PACKAGES, stamps)
    out = cache_dir() / "images" / f"system-{key}.ext4"
    if out.exists():
        return out
    t0 = time.monotonic()
    if missing and log:
        print(f"vmtest: not installed, left out of the image: {' '.join(missing)}",
              file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in out.parent.glob("system-*.ext4"):
        old.unlink()
    tree = out.parent / f"system-{key}.tree"
    shutil.rmtree(tree, ignore_errors=True)
    _etc(tree)
    placed: set[Path] = set()
    for f in files:
        _place(tree, f, placed)
    ld_cache = Path("/etc/ld.so.cache")
    if ld_cache.exists():
        shutil.copy2(ld_cache, tree / "etc" / "ld.so.cache")
    tmp = out.with_suffix(".tmp")
    make_ext4(tree, tmp, "vmtest-sys")
    shutil.rmtree(tree, ignore_errors=True)
    os.replace(tmp, out)
    if log:
        print(f"vmtest: system disk {out.stat().st_size >> 20} MB ({len(files)} files) built "
              f"in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return out


def _modinfo_depends(data: bytes) -> list[str]:
    """The ``depends=`` list of a module's ``.modinfo`` (no kmod needed)."""
    i = data.find(b"\0depends=")
    if i < 0:
        return []
    end = data.index(b"\0", i + 1)
    value = data[i + 9:end].decode()
    return [d for d in value.split(",") if d]


def _module_closure(kernel: Kernel, wanted: Iterable[str]) -> list[str]:
    """Module files (relative to the modules dir) in load order, dependencies first.

    modules.dep is written by depmod at install time, so the deb lacks it: dependencies come
    from each module's own ``.modinfo``.
    """
    by_name: dict[str, str] = {}
    for path in (kernel.modules / "kernel").rglob("*.ko*"):
        base = path.name.split(".ko")[0].replace("-", "_")
        by_name[base] = str(path.relative_to(kernel.modules))
    order: list[str] = []

    def visit(name: str) -> None:
        mod = by_name.get(name.replace("-", "_"))
        if mod is None or mod in order:  # absent: built in (or not in this kernel)
            return
        for dep in _modinfo_depends(_module_bytes(kernel.modules / mod)):
            visit(dep)
        order.append(mod)

    for name in wanted:
        visit(name)
    return order


def _cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A ``newc`` cpio archive of (name, mode, data) entries (directories have no data)."""
    out = io.BytesIO()
    ino = 1
    for name, mode, data in [*entries, ("TRAILER!!!", 0, b"")]:
        encoded = name.encode() + b"\0"
        header = "070701" + "".join(f"{v:08x}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0))
        out.write(header.encode() + encoded)
        out.write(b"\0" * (-(110 + len(encoded)) % 4))
        out.write(data)
        out.write(b"\0" * (-len(data) % 4))
        ino += 1
    return out.getvalue()


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", str(path)], capture_output=True,
                              check=True).stdout
    return data


def initramfs(kernel: Kernel) -> Path:
    """The cached initramfs (busybox, modules, ``/init``) for ``kernel``."""
    busybox = shutil.which("busybox")
    if busybox is None:
        raise ImageError(2, "busybox not found: install busybox-static")
    bb = Path(busybox).resolve()
    mods = _module_closure(kernel, GUEST_MODULES)
    key = _key(IMAGE_FORMAT, INIT, kernel.release, str(kernel.root), mods, bb.stat().st_size)
    out = cache_dir() / "images" / f"initramfs-{kernel.release}-{key}.cpio.gz"
    if out.exists():
        return out
    if b"ld-linux" in bb.read_bytes()[:4096]:
        raise ImageError(0, f"{bb} is dynamically linked: install busybox-static")
    entries: list[tuple[str, int, bytes]] = [
        (d, stat.S_IFDIR | 0o755, b"") for d in ("bin", "dev", "proc", "sys", "modules", "tmp")
    ]
    entries.append(("bin/busybox", stat.S_IFREG | 0o755, bb.read_bytes()))
    entries.append(("init", stat.S_IFREG | 0o755, INIT.encode()))
    names = []
    for mod in mods:
        name = Path(mod).name.split(".ko")[0] + ".ko"
        entries.append((f"modules/{name}", stat.S_IFREG | 0o644,
                        _module_bytes(kernel.modules / mod)))
        names.append(name)
    entries.append(("modules/order", stat.S_IFREG | 0o644, "".join(f"{n}\n" for n in names)
                    .encode()))
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in out.parent.glob(f"initramfs-{kernel.release}-*.cpio.gz"):
        old.unlink()
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(_cpio_newc(entries), compresslevel=1))
    os.replace(tmp, out)
    return out


def _copy_checkout(src: Path, dest: Path) -> None:
    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n in CHECKOUT_SKIP}

    def copy(tree_src: Path, tree_dest: Path) -> None:
        try:
            shutil.copytree(tree_src, tree_dest, symlinks=True, ignore=ignore,
                            copy_function=os.link)
        except (OSError, shutil.Error):
            shutil.rmtree(tree_dest, ignore_errors=True)
            shutil.copytree(tree_src, tree_dest, symlinks=True, ignore=ignore)

    copy(src, dest)
    venv = src / ".venv"
    if venv.is_symlink() and venv.resolve().is_dir():
        # a git worktree sharing another checkout's venv: the guest gets the venv itself
        (dest / ".venv").unlink()
        copy(venv.resolve(), dest / ".venv")


def run_disk(checkout: Path, stage2: str, workdir: Path, kconfig: Path | None = None,
             extra_dirs: Sequence[tuple[str, Path]] = ()) -> Path:
    """The per-run disk: ``checkout/`` (this tree) and ``run/`` (config, stage-2 script).

    ``kconfig`` (the kernel's build configuration) becomes the guest's ``/boot/config-*``,
    which the feature probes read.  ``extra_dirs`` (name, folder) are copied into the
    checkout under that name (another libbpf for the guest).
    """
    tree = workdir / "run-tree"
    _copy_checkout(checkout, tree / "checkout")
    for name, folder in extra_dirs:
        shutil.copytree(folder, tree / "checkout" / name, symlinks=True)
    (tree / "run").mkdir(parents=True)
    (tree / "run" / "config").write_text(f"CHECKOUT='{checkout}'\n")
    (tree / "run" / "stage2.sh").write_text(stage2)
    if kconfig is not None and kconfig.exists():
        shutil.copy(kconfig, tree / "run" / "kconfig")
    image = workdir / "run.ext4"
    make_ext4(tree, image, "vmtest-run")
    shutil.rmtree(tree, ignore_errors=True)
    return image


def results_disk(workdir: Path, size_mb: int = 64) -> Path:
    """A zeroed raw disk the guest writes a tar archive of its results onto."""
    path = workdir / "results.raw"
    with open(path, "wb") as f:
        f.truncate(size_mb << 20)
    return path


def read_results(path: Path, dest: Path) -> dict[str, Path]:
    """Unpack the guest's tar archive from the results disk; name -> path (empty if none)."""
    found: dict[str, Path] = {}
    with open(path, "rb") as f:
        if f.read(512).strip(b"\0") == b"":
            return found
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar.getmembers():
                if not member.isfile() or "/" in member.name.removeprefix("./"):
                    continue
                name = member.name.removeprefix("./")
                src = tar.extractfile(member)
                if src is None:
                    continue
                target = dest / name
                target.write_bytes(src.read())
                found[name] = target
    except tarfile.TarError as e:
        raise ImageError(0, f"the guest's results disk holds no readable tar: {e}") from e
    return found
