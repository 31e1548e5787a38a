"""The distribution tier's fast parts: command lines, environment, mount bookkeeping, and that
every mount under a run's root is gone however the run ends (the real tier: vmtest/distro.py)."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from vmtest import distro, tiers

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")


def test_tier_name() -> None:
    assert distro.tier_name("trixie") == "debian13"
    with pytest.raises(ValueError, match="unknown release 'sid'"):
        distro.tier_name("sid")


def test_debootstrap_command() -> None:
    cmd = distro.debootstrap_command("trixie", Path("/c/trixie.partial"), None)
    assert cmd == ["debootstrap", "--variant=minbase", "--include=python3", "trixie",
                   "/c/trixie.partial"]
    with_mirror = distro.debootstrap_command("trixie", Path("/t"), "http://m/debian")
    assert with_mirror[-1] == "http://m/debian"


def test_chroot_command_passes_only_the_given_environment() -> None:
    cmd = distro.chroot_command(Path("/r"), "cd /x && true", {"B": "2", "A": "1"})
    assert cmd == ["chroot", "/r", "/usr/bin/env", "-i", "A=1", "B=2", "bash", "-c",
                   "cd /x && true"]


def test_inner_env() -> None:
    env = distro.inner_env({"CI": "true", "PYLIBBPF_KEEP": "1", "PYLIBBPF_VM_CACHE": "/c",
                            "PYLIBBPF_MATRIX": "all", "https_proxy": "http://p:3128",
                            "HOME": "/home/me", "SECRET_TOKEN": "x", "PATH": "/opt/bin"})
    assert env["CI"] == "true" and env["PYLIBBPF_KEEP"] == "1"
    assert env["https_proxy"] == "http://p:3128"
    assert env["HOME"] == "/root" and env["PATH"] == "/usr/sbin:/usr/bin:/sbin:/bin"
    for dropped in ("PYLIBBPF_VM_CACHE", "PYLIBBPF_MATRIX", "SECRET_TOKEN"):
        assert dropped not in env


def test_step_scripts() -> None:
    steps = distro.step_scripts(["-k", "maps and not slow"])
    assert list(steps) == ["bootstrap", "demo", "pytest"]
    assert steps["bootstrap"] == f"cd {distro.ROOT_CHECKOUT} && ./scripts/bootstrap.sh"
    assert "./scripts/demo.sh --duration" in steps["demo"]
    words = shlex.split(steps["pytest"].split(" && ", 2)[2])
    assert words[:3] == [".venv/bin/python", "-m", "pytest"]
    assert words[3:5] == ["-p", "vmtest.pytest_plugin"]
    assert f"--junitxml={distro.ROOT_OUT}/junit.xml" in words
    assert words[-2:] == ["-k", "maps and not slow"]
    assert "-m" not in words[4:-2]  # the whole suite, not the kernel selection


def test_demo_histogram_detection() -> None:
    rows = ["CPU 0", "     nsecs               : count    distribution",
            "       256 -> 511        : 3        |****                                    |"]
    assert distro.demo_printed_histogram(rows)
    assert not distro.demo_printed_histogram(["lathist: syscall latency", "--- 1.0 s ---"])


MOUNTINFO = """\
22 1 8:1 / / rw - ext4 /dev/sda1 rw
40 22 0:5 / /c/run/root/dev rw - devtmpfs udev rw
41 22 0:20 / /c/run/root/sys rw - sysfs sysfs rw
42 41 0:30 / /c/run/root/sys/fs/bpf rw - bpf bpf rw
43 22 0:4 / /c/run/root/proc rw - proc proc rw
44 22 0:6 / /c/run/rootx/proc rw - proc proc rw
45 22 0:7 / /c/run/root/with\\040space rw - tmpfs t rw
"""


def test_mounts_under_deepest_first() -> None:
    found = distro.mounts_under(Path("/c/run/root"), MOUNTINFO)
    assert found[0] == Path("/c/run/root/sys/fs/bpf")
    assert set(found) == {Path("/c/run/root/sys/fs/bpf"), Path("/c/run/root/dev"),
                          Path("/c/run/root/sys"), Path("/c/run/root/proc"),
                          Path("/c/run/root/with space")}


def test_host_files_exist() -> None:
    assert all(f.is_file() and f.is_absolute() for f in distro.host_files())


def test_copy_checkout_copies_tracked_files(tmp_path: Path) -> None:
    dest = tmp_path / "co"
    distro.copy_checkout(tiers.CHECKOUT, dest)
    assert (dest / "scripts" / "bootstrap.sh").exists()
    assert os.access(dest / "scripts" / "bootstrap.sh", os.X_OK)
    assert not (dest / ".venv").exists() and not (dest / ".git").exists()
    # a copy without git (what the tier's root holds) lists the same sources
    again = tmp_path / "again"
    distro.copy_checkout(dest, again)
    assert sorted(distro.checkout_files(again)) == sorted(distro.checkout_files(dest))
    assert "scripts/bootstrap.sh" in distro.checkout_files(again)


@needs_root
def test_bound_unmounts_everything_on_failure(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(RuntimeError, match="inside"), distro.bound(root):
        assert distro.mounts_under(root) != []
        # what bootstrap.sh does inside: bpffs mounted below the bound /sys
        subprocess.run(["mount", "-t", "bpf", "bpf", str(root / "sys/fs/bpf")], check=True)
        assert root / "sys/fs/bpf" in distro.mounts_under(root)
        raise RuntimeError("inside")
    assert distro.mounts_under(root) == []


Runner = Callable[..., int]


@pytest.fixture
def fake_tier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Runner], Path]:
    """run_distro on a tiny fake base root with ``run_guarded`` replaced; returns the runs dir."""
    monkeypatch.setenv("PYLIBBPF_VM_CACHE", str(tmp_path / "cache"))
    base = tmp_path / "base"
    for d in ("proc", "sys", "dev", "tmp", "root", "usr/bin"):
        (base / d).mkdir(parents=True)
    monkeypatch.setattr(distro, "base_root", lambda release: base)

    def install(runner: Runner) -> Path:
        monkeypatch.setattr(distro, "run_guarded", runner)
        return tmp_path / "cache" / "distro" / "runs"

    return install


def _root_of(cmd: Sequence[str]) -> Path:
    assert cmd[0] == "chroot"
    return Path(cmd[1])


@needs_root
def test_run_distro_success(fake_tier: Callable[[Runner], Path], tmp_path: Path) -> None:
    seen: list[str] = []

    def runner(cmd: Sequence[str], *, timeout: float, on_line: Callable[[str], None]) -> int:
        root = _root_of(cmd)
        assert distro.mounts_under(root)  # /proc /sys /dev are bound while steps run
        script = cmd[-1]
        seen.append(script)
        if "demo.sh" in script:
            on_line("       256 -> 511        : 3        |****      |")
        if "pytest" in script:
            out = root / distro.ROOT_OUT.lstrip("/")
            out.mkdir(parents=True, exist_ok=True)
            (out / "junit.xml").write_text("<testsuites/>")
            return 1
        return 0

    runs = fake_tier(runner)
    result = distro.run_distro("trixie", ["-k", "x"], outdir=tmp_path / "out", quiet=True)
    assert (result.name, result.returncode) == ("debian13", 1)
    assert result.junit == tmp_path / "out" / "debian13.xml"
    assert result.junit.read_text() == "<testsuites/>"
    assert {"fresh root", "bootstrap", "demo", "pytest", "total"} <= set(result.timings)
    assert len(seen) == 3
    assert list(runs.iterdir()) == []  # the run's copy is gone


@needs_root
@pytest.mark.parametrize("failing", ["bootstrap", "demo", "raise"])
def test_run_distro_failure_leaves_no_mounts(
    fake_tier: Callable[[Runner], Path], tmp_path: Path, failing: str
) -> None:
    roots: list[Path] = []

    def runner(cmd: Sequence[str], *, timeout: float, on_line: Callable[[str], None]) -> int:
        roots.append(_root_of(cmd))
        if failing == "raise":
            raise KeyboardInterrupt
        if failing in cmd[-1]:
            return 2 if failing == "bootstrap" else 0  # the demo exits 0 but prints no rows
        return 0

    runs = fake_tier(runner)
    expected: Any = KeyboardInterrupt if failing == "raise" else distro.DistroError
    with pytest.raises(expected):
        distro.run_distro("trixie", [], outdir=tmp_path / "out", quiet=True)
    assert roots and all(distro.mounts_under(r) == [] for r in roots)
    assert list(runs.iterdir()) == []
    assert not (tmp_path / "out" / "debian13.xml").exists()
