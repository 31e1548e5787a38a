"""Fetch Debian kernels and libbpf builds with a private apt configuration.

Nothing is installed: for each Debian suite a one-line sources file (the same mirror as the
machine's own apt sources, read at run time) feeds ``apt-get update`` with private list and cache
folders, ``apt-get download`` fetches the ``.deb`` and ``dpkg -x`` unpacks it into the cache.
The machine's apt state, ``/etc/apt`` and ``/boot`` are never touched.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from vmtest import cache_dir

# kernel tier -> Debian suite whose linux-image-cloud-amd64 carries it
SUITES: dict[str, str] = {
    "5.10": "bullseye", "6.1": "bookworm", "6.12": "trixie", "7.3": "trixie-backports",
}
# libbpf tier -> suite whose libbpf1 carries it
LIBBPF_SUITES: dict[str, str] = {"1.4.6": "bookworm-backports", "1.5": "trixie", "1.7.0": "sid"}
# index files older than this are refreshed with apt-get update (seconds)
LISTS_MAX_AGE = 7 * 24 * 3600


class FetchError(OSError):
    """apt-get or dpkg failed, or the machine's apt sources name no Debian mirror."""


@dataclass(frozen=True)
class Mirror:
    """A Debian archive mirror taken from the machine's apt sources."""

    uri: str
    signed_by: str | None


@dataclass(frozen=True)
class Kernel:
    """An unpacked Debian kernel package."""

    release: str  # uname -r, e.g. 6.1.0-41-cloud-amd64
    root: Path  # where dpkg -x put the package
    vmlinuz: Path
    modules: Path  # lib/modules/<release>
    config: Path


def _codename() -> str:
    text = Path("/etc/os-release").read_text()
    m = re.search(r"^VERSION_CODENAME=\"?([a-z]+)", text, re.M)
    if m is None:
        raise FetchError(0, "cannot tell this machine's Debian codename from /etc/os-release")
    return m.group(1)


def _stanzas_deb822(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if fields:
            stanzas.append(fields)
    return stanzas


def parse_sources(files: dict[str, str], codename: str) -> Mirror:
    """Pick the mirror that serves ``codename`` (``main``) from apt source files' text.

    ``files`` maps a file name (``*.sources`` is deb822, anything else one-line format) to its
    text.  Security and other pockets (``bookworm-security``) are not the main archive.
    """
    for name, text in sorted(files.items()):
        if name.endswith(".sources"):
            for st in _stanzas_deb822(text):
                if "deb" not in st.get("types", "").split():
                    continue
                if st.get("enabled", "yes").lower() == "no":
                    continue
                if codename in st.get("suites", "").split() and "main" in st.get(
                    "components", ""
                ).split():
                    uri = st.get("uris", "").split()[0]
                    return Mirror(uri.rstrip("/"), st.get("signed-by") or None)
        else:
            for line in text.splitlines():
                line = line.split("#", 1)[0].strip()
                m = re.match(r"deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s+(.*)$", line)
                if m is None:
                    continue
                options, uri, suite, components = m.groups()
                if suite != codename or "main" not in components.split():
                    continue
                signed = None
                if options:
                    sm = re.search(r"signed-by=(\S+)", options)
                    signed = sm.group(1) if sm else None
                return Mirror(uri.rstrip("/"), signed)
    raise FetchError(0, f"no apt source for Debian {codename} main found in {sorted(files)}")


def host_mirror() -> Mirror:
    """The Debian mirror this machine's own apt sources use."""
    files: dict[str, str] = {}
    main = Path("/etc/apt/sources.list")
    if main.exists():
        files[str(main)] = main.read_text()
    parts = Path("/etc/apt/sources.list.d")
    if parts.is_dir():
        for path in parts.iterdir():
            if path.suffix in (".list", ".sources"):
                files[str(path)] = path.read_text()
    return parse_sources(files, _codename())


class Apt:
    """apt-get bound to a private configuration for one Debian suite."""

    def __init__(self, suite: str, mirror: Mirror | None = None, root: Path | None = None) -> None:
        self.suite = suite
        self.mirror = mirror or host_mirror()
        self.root = (root or cache_dir() / "apt") / suite
        self.sources = self.root / "sources.list"
        self.lists = self.root / "lists"
        self.cache = self.root / "cache"

    def options(self) -> list[str]:
        """``-o`` options that make apt-get use only this suite's private state."""
        return [
            "-o", f"Dir::Etc::SourceList={self.sources}",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={self.lists}",
            "-o", f"Dir::Cache={self.cache}",
            "-o", "APT::Sandbox::User=root",
            "-o", "Debug::NoLocking=1",
            "-o", "Acquire::Languages=none",
        ]

    def _run(self, args: list[str], cwd: Path | None = None) -> str:
        cmd = ["apt-get", "-q", *self.options(), *args]
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise FetchError(0, f"{' '.join(args)} ({self.suite}) failed:\n{proc.stderr.strip()}")
        return proc.stdout

    def _cache_tool(self, args: list[str]) -> str:
        cmd = ["apt-cache", *self.options(), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise FetchError(0, f"apt-cache {' '.join(args)} ({self.suite}):\n{proc.stderr}")
        return proc.stdout

    def update(self, force: bool = False) -> None:
        """Refresh this suite's index files unless they are recent."""
        stamp = self.root / "updated"
        if not force and stamp.exists() and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE:
            return
        for d in (self.lists / "partial", self.cache / "archives" / "partial"):
            d.mkdir(parents=True, exist_ok=True)
        signed = f" [signed-by={self.mirror.signed_by}]" if self.mirror.signed_by else ""
        self.sources.write_text(f"deb{signed} {self.mirror.uri} {self.suite} main\n")
        print(f"vmtest: apt-get update for {self.suite} ({self.mirror.uri})", file=sys.stderr)
        self._run(["update"])
        stamp.touch()

    def depends(self, package: str) -> list[str]:
        """The first-alternative Depends of ``package`` in this suite."""
        out = self._cache_tool(["show", "--no-all-versions", package])
        m = re.search(r"^Depends: (.*)$", out, re.M)
        if m is None:
            return []
        return [dep.split("|")[0].split("(")[0].strip() for dep in m.group(1).split(",")]

    def version(self, package: str) -> str:
        """The candidate version of ``package`` (remembered until the next update)."""
        memo = self.root / "versions.json"
        stamp = str((self.root / "updated").stat().st_mtime_ns)
        known: dict[str, str] = {}
        if memo.exists():
            data = json.loads(memo.read_text())
            if data.get("stamp") == stamp:
                known = data["versions"]
        if package in known:
            return known[package]
        out = self._cache_tool(["show", "--no-all-versions", package])
        m = re.search(r"^Version: (\S+)$", out, re.M)
        if m is None:
            raise FetchError(0, f"{package} has no version in {self.suite}")
        known[package] = m.group(1)
        memo.write_text(json.dumps({"stamp": stamp, "versions": known}))
        return m.group(1)

    def unpack(self, package: str) -> Path:
        """Download ``package`` and ``dpkg -x`` it; cached by name and version."""
        version = self.version(package)
        dest = cache_dir() / "pkgs" / self.suite / f"{package}_{version}"
        if (dest / ".done").exists():
            return dest
        debs = self.root / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        found = [p for p in debs.glob(f"{package}_*.deb")
                 if p.name.startswith(f"{package}_{version.replace(':', '%3a')}_")]
        if not found:
            print(f"vmtest: downloading {package} {version} ({self.suite})", file=sys.stderr)
            self._run(["download", f"{package}={version}"], cwd=debs)
            found = [p for p in debs.glob(f"{package}_*.deb")
                     if p.name.startswith(f"{package}_{version.replace(':', '%3a')}_")]
        if not found:
            raise FetchError(0, f"apt-get download {package} left no .deb in {debs}")
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        proc = subprocess.run(["dpkg", "-x", str(found[0]), str(dest)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise FetchError(0, f"dpkg -x {found[0].name}: {proc.stderr}")
        (dest / ".done").touch()
        return dest

    def unpack_together(self, name: str, packages: list[str]) -> Path:
        """Unpack ``packages`` into one folder named after ``name`` and its version."""
        dest = cache_dir() / "pkgs" / self.suite / f"{name}_{self.version(name)}+parts"
        if (dest / ".done").exists():
            return dest
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for package in packages:
            part = self.unpack(package)
            proc = subprocess.run(["cp", "-al", f"{part}/.", str(dest)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise FetchError(0, f"merging {package} into {dest.name}: {proc.stderr}")
        (dest / ".done").unlink(missing_ok=True)
        (dest / ".done").touch()
        return dest


def _usr_or_root(root: Path, rel: str) -> Path:
    """``root/rel`` or, for merged-/usr packages, ``root/usr/rel``."""
    plain = root / rel
    return plain if plain.exists() else root / "usr" / rel


def fetch_kernel(tier: str) -> Kernel:
    """Download and unpack the cloud kernel of ``tier`` (``5.10``, ``6.1``, ``6.12``)."""
    if tier not in SUITES:
        raise ValueError(f"unknown kernel {tier!r}; choose from {sorted(SUITES)} or 'host'")
    apt = Apt(SUITES[tier])
    apt.update()
    # the package the metapackage resolved to, remembered until the next apt-get update
    resolved = apt.root / "kernel-package"
    stamp = (apt.root / "updated").stat().st_mtime_ns
    root: Path | None = None
    if resolved.exists():
        when, _, path = resolved.read_text().strip().partition(" ")
        if when == str(stamp) and (Path(path) / ".done").exists():
            root = Path(path)
    if root is None:
        image = next((d for d in apt.depends("linux-image-cloud-amd64")
                      if d.startswith("linux-image-")), None)
        if image is None:
            raise FetchError(0, f"linux-image-cloud-amd64 in {apt.suite} depends on no image")
        root = apt.unpack(image)
        if not list((root / "boot").glob("vmlinuz-*")):
            # Linux 7.x packaging: linux-image-* only depends on linux-binary-* (vmlinuz,
            # config), linux-modules-* and linux-base-*; unpack them together
            parts = [d for d in apt.depends(image)
                     if d.startswith(("linux-binary-", "linux-modules-", "linux-base-"))]
            root = apt.unpack_together(image, parts)
        resolved.write_text(f"{stamp} {root}\n")
    return _kernel_in(root)


def _kernel_in(root: Path) -> Kernel:
    """The kernel unpacked in ``root``: ``boot/vmlinuz-<release>`` and ``boot/config-*``, or
    (Linux 7.x packages) ``usr/lib/modules/<release>/vmlinuz`` and ``config`` beside it."""
    vmlinuz = sorted((root / "boot").glob("vmlinuz-*"))
    if vmlinuz:
        release = vmlinuz[0].name.removeprefix("vmlinuz-")
        config = root / "boot" / f"config-{release}"
    else:
        vmlinuz = sorted(root.glob("usr/lib/modules/*/vmlinuz"))
        if not vmlinuz:
            raise FetchError(0, f"{root.name} holds no boot/vmlinuz-* nor lib/modules/*/vmlinuz")
        release = vmlinuz[0].parent.name
        config = vmlinuz[0].parent / "config"
    return Kernel(
        release=release,
        root=root,
        vmlinuz=vmlinuz[0],
        modules=_usr_or_root(root, f"lib/modules/{release}"),
        config=config,
    )


def fetch_libbpf(tier: str) -> Path:
    """Download and unpack ``libbpf1`` of ``tier`` (``1.5``); return its ``libbpf.so.X.Y.Z``."""
    if tier not in LIBBPF_SUITES:
        raise ValueError(f"unknown libbpf {tier!r}; choose from {sorted(LIBBPF_SUITES)}")
    apt = Apt(LIBBPF_SUITES[tier])
    apt.update()
    root = apt.unpack("libbpf1")
    libs = sorted(root.glob("usr/lib/*/libbpf.so.1.*")) + sorted(root.glob("lib/*/libbpf.so.1.*"))
    if not libs:
        raise FetchError(0, f"libbpf1 ({apt.suite}) holds no libbpf.so.1.*")
    return libs[0]


def fetch_package(suite: str, package: str) -> Path:
    """Download and unpack any package of ``suite``; return the unpack folder."""
    apt = Apt(suite)
    apt.update()
    return apt.unpack(package)


def libbpf_env(tier: str) -> dict[str, str]:
    """Environment that selects libbpf ``tier`` for pylibbpf (``PYLIBBPF_LIBBPF``)."""
    return {"PYLIBBPF_LIBBPF": str(fetch_libbpf(tier))}


