"""The VM runner's pieces (``vmtest/``), checked against the real tools, plus one real boot.

Everything but ``test_boot_6_1_runs_pytest_inside`` runs without a VM.  That one boots Debian's
6.1 cloud kernel under QEMU (TCG) and runs two of ``tests/vm``'s tests inside (about 30 s
warm; the first run downloads the kernel).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import features
from tests.support.repetition import IN_GUEST
from vmtest import fetch, image, proc, report, tiers

ROOT = Path(__file__).resolve().parent.parent


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# --- apt sources ------------------------------------------------------------------------------

DEB822 = textwrap.dedent("""\
    Types: deb
    URIs: http://mirror.example/debian-security
    Suites: bookworm-security
    Components: main
    Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

    Types: deb
    # a comment
    URIs: http://mirror.example/debian/
    Suites: bookworm bookworm-updates
    Components: main contrib
    Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
    """)


def test_parse_sources_deb822_skips_security_pocket() -> None:
    mirror = fetch.parse_sources({"debian.sources": DEB822}, "bookworm")
    assert mirror.uri == "http://mirror.example/debian"
    assert mirror.signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg"


def test_parse_sources_one_line_format() -> None:
    text = ("deb http://sec.example/debian-security bookworm-security main\n"
            "# deb http://old.example/debian bookworm main\n"
            "deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main non-free\n")
    mirror = fetch.parse_sources({"sources.list": text}, "bookworm")
    assert mirror == fetch.Mirror("http://m.example/debian", "/k.gpg")


def test_parse_sources_without_debian_mirror_raises_oserror() -> None:
    with pytest.raises(fetch.FetchError):
        fetch.parse_sources({"x.list": "deb https://packages.example/apt stable main\n"},
                            "bookworm")


@pytest.mark.skipif(not Path("/etc/apt").is_dir(), reason="not a Debian machine")
def test_host_mirror_is_one_of_this_machines_sources() -> None:
    mirror = fetch.host_mirror()
    texts = [p.read_text() for p in Path("/etc/apt").rglob("*") if p.is_file()
             and (p.name == "sources.list" or p.suffix in (".list", ".sources"))]
    assert any(mirror.uri in t for t in texts)


def test_apt_options_keep_apt_state_private(tmp_path: Path) -> None:
    apt = fetch.Apt("trixie", fetch.Mirror("http://m.example/debian", None), root=tmp_path)
    opts = dict(o.split("=", 1) for o in apt.options() if "=" in o)
    assert opts["Dir::Etc::SourceParts"] == "/dev/null"
    for key in ("Dir::Etc::SourceList", "Dir::State::Lists", "Dir::Cache"):
        assert opts[key].startswith(str(tmp_path / "trixie"))


def test_cache_dir_is_outside_the_checkout() -> None:
    from vmtest import cache_dir

    assert ROOT not in cache_dir().resolve().parents


# --- images -----------------------------------------------------------------------------------

def test_a_worktree_s_venv_link_becomes_the_venv_in_the_guest_copy(tmp_path: Path) -> None:
    venv = tmp_path / "shared-venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!/bin/sh\n")
    src = tmp_path / "worktree"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("x = 1\n")
    (src / ".venv").symlink_to(venv)
    dest = tmp_path / "copy"
    image._copy_checkout(src, dest)
    assert not (dest / ".venv").is_symlink()
    assert (dest / ".venv" / "bin" / "python").read_text() == "#!/bin/sh\n"
    assert (dest / "pkg" / "mod.py").read_text() == "x = 1\n"


@pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio not installed")
def test_cpio_archive_unpacks_with_gnu_cpio(tmp_path: Path) -> None:
    archive = image._cpio_newc([("bin", 0o040755, b""), ("bin/tool", 0o100755, b"#!x\n" * 3),
                                ("init", 0o100644, b"odd-length")])
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet"], input=archive, cwd=out, check=True)
    assert (out / "bin" / "tool").read_bytes() == b"#!x\n" * 3
    assert os.access(out / "bin" / "tool", os.X_OK)
    assert (out / "init").read_bytes() == b"odd-length"


def test_modinfo_depends_parses_the_modinfo_string() -> None:
    blob = b"\x7fELF...\0license=GPL\0depends=virtio,virtio_ring\0retpoline=Y\0"
    assert image._modinfo_depends(blob) == ["virtio", "virtio_ring"]
    assert image._modinfo_depends(b"\0depends=\0name=x\0") == []
    assert image._modinfo_depends(b"no modinfo") == []


@pytest.mark.skipif(shutil.which("mke2fs") is None or shutil.which("debugfs") is None,
                    reason="e2fsprogs not installed")
def test_make_ext4_holds_the_tree(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "file").write_bytes(b"payload\n")
    os.symlink("b/file", tree / "a" / "link")
    img = tmp_path / "img.ext4"
    image.make_ext4(tree, img, "t")
    cat = subprocess.run(["debugfs", "-R", "cat /a/b/file", str(img)], capture_output=True,
                         check=True)
    assert cat.stdout == b"payload\n"
    link = subprocess.run(["debugfs", "-R", "stat /a/link", str(img)], capture_output=True,
                          text=True, check=True)
    assert 'Fast link dest: "b/file"' in link.stdout


@pytest.mark.skipif(shutil.which("tar") is None, reason="tar not installed")
def test_results_disk_reads_what_tar_wrote(tmp_path: Path) -> None:
    disk = image.results_disk(tmp_path, size_mb=1)
    assert image.read_results(disk, tmp_path / "empty") == {}
    src = tmp_path / "out"
    src.mkdir()
    (src / "rc").write_text("3\n")
    (src / "junit.xml").write_text("<testsuites/>")
    with open(disk, "r+b") as f:  # what the guest does: tar -cf /dev/vdc -C out .
        f.write(subprocess.run(["tar", "-cf", "-", "-C", str(src), "."], capture_output=True,
                               check=True).stdout)
    found = image.read_results(disk, tmp_path / "back")
    assert found["rc"].read_text() == "3\n"
    assert found["junit.xml"].read_text() == "<testsuites/>"


def test_shared_libraries_match_ldd() -> None:
    python = Path(sys.executable).resolve()
    libs = image.shared_libraries([python])
    out = subprocess.run(["ldd", str(python)], capture_output=True, text=True, check=True).stdout
    expected = {Path(m) for m in re.findall(r"=> (/\S+)", out)}
    assert expected <= libs
    assert any("ld-linux" in p.name for p in libs)


def test_stage2_script_quotes_pytest_args(tmp_path: Path) -> None:
    args = ["-k", "a and not b", "--x=it's", "tests/vm"]
    script = tiers.stage2_script(Path("/some/checkout dir"), args, {"CI": "true; rm -rf /"})
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    line = next(ln for ln in script.splitlines() if ".venv/bin/python" in ln)
    assert shlex.split(line.removesuffix(" 2>&1"))[3:] == args
    assert "export CI='true; rm -rf /'" in script


def test_guest_env_passes_ci_and_project_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("PYLIBBPF_DEBUG", "1")
    monkeypatch.setenv("PYLIBBPF_VM_CACHE", "/elsewhere")
    monkeypatch.setenv("HOME", "/root")
    env = tiers.guest_env()
    assert env["CI"] == "true" and env["PYLIBBPF_DEBUG"] == "1"
    assert "PYLIBBPF_VM_CACHE" not in env and "HOME" not in env


def test_qemu_command_is_tcg_and_never_reboots(tmp_path: Path) -> None:
    cmd = tiers.qemu_command(tmp_path / "vmlinuz", tmp_path / "initrd",
                             [(tmp_path / "a", True), (tmp_path / "b", False)])
    assert cmd[cmd.index("-machine") + 1] == "q35"
    # one TCG thread: a guest patching its text (int3) must not race a second vCPU thread
    assert cmd[cmd.index("-accel") + 1] == "tcg,thread=single"
    assert "-no-reboot" in cmd and "-nographic" in cmd
    drives = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-drive"]
    assert drives[0].endswith(",readonly=on") and "readonly" not in drives[1]


# --- process guarding -------------------------------------------------------------------------

FAMILY = "sleep 300 & echo grandchild $!; sleep 300"


@pytest.mark.parametrize("config, expected", [
    ('CONFIG_BPF_LSM=y\nCONFIG_LSM="lockdown,yama,apparmor"\n', "lsm=lockdown,yama,apparmor,bpf"),
    ('CONFIG_BPF_LSM=y\nCONFIG_LSM="lockdown,yama,bpf"\n', ""),   # already on by default
    ('# CONFIG_BPF_LSM is not set\nCONFIG_LSM="lockdown,yama"\n', ""),  # not built in
])
def test_guests_turn_on_a_built_in_bpf_lsm(tmp_path: Path, config: str, expected: str) -> None:
    (tmp_path / "config").write_text(config)
    assert tiers.lsm_argument(tmp_path / "config") == expected


def test_timeout_kills_the_whole_process_group() -> None:
    lines: list[str] = []
    t0 = time.monotonic()
    with pytest.raises(proc.ChildTimeout):
        proc.run_guarded(["sh", "-c", FAMILY], timeout=1.5, on_line=lines.append)
    assert time.monotonic() - t0 < 10
    grandchild = int(lines[0].split()[1])
    # the group got SIGKILL before run_guarded returned; the grandchild (not our child, so
    # nothing to wait for) dies when it next runs, which on a busy machine can take a moment
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(grandchild)


def test_exit_status_and_lines_come_back() -> None:
    lines: list[str] = []
    rc = proc.run_guarded(["sh", "-c", "printf 'a\\r\\nb\\n'; exit 7"], timeout=30,
                          on_line=lines.append)
    assert (rc, lines) == (7, ["a", "b"])


GUARD = textwrap.dedent("""\
    import signal, sys
    # Ctrl-C's handler, even when this test runs under a shell that started it in the
    # background (such a job inherits SIGINT ignored, and Python then installs no handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, sys.argv[1])
    from vmtest.proc import run_guarded
    def show(line):
        print(line, flush=True)
    try:
        run_guarded(["sh", "-c", sys.argv[2]], timeout=300, on_line=show,
                    on_start=lambda pid: print("child", pid, flush=True))
    except KeyboardInterrupt as e:
        print("interrupted", type(e).__name__, flush=True)
        sys.exit(130)
    """)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
                         ids=lambda s: s.name)
def test_signal_to_the_runner_leaves_no_child(sig: signal.Signals) -> None:
    runner = subprocess.Popen([sys.executable, "-c", GUARD, str(ROOT), FAMILY],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert runner.stdout is not None
        child = int(runner.stdout.readline().split()[1])
        grandchild = int(runner.stdout.readline().split()[1])
        runner.send_signal(sig)
        runner.wait(timeout=60)  # its clean-up: SIGTERM to the group, a 3 s grace; generous
        if sig != signal.SIGKILL:
            assert runner.returncode == 130
            assert not _alive(grandchild)
        deadline = time.monotonic() + 30
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)  # PR_SET_PDEATHSIG even when the runner was SIGKILLed
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        if runner.stdout is not None:
            runner.stdout.close()
        if sig == signal.SIGKILL:  # qemu has no children; this shell's survive it: kill them
            try:
                os.killpg(child, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --- junit and the table ----------------------------------------------------------------------

SAMPLE = textwrap.dedent("""\
    import pytest

    @pytest.mark.needs("kprobe")
    def test_kp():
        pass

    @pytest.mark.needs("fentry", "kprobe")
    def test_both():
        pytest.skip("fentry: lockdown (integrity)")

    @pytest.mark.kernel
    def test_plain():
        assert False
    """)


def test_junit_from_real_pytest_run_makes_the_table(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    needs: x\n    kernel: y\n")
    junit = tmp_path / "out.xml"
    args = tiers.pytest_args(str(junit), ["-q", "-p", "no:cacheprovider"], whole_suite=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-m", "pytest", *args, str(tmp_path)], cwd=tmp_path,
                         env=env, capture_output=True, text=True)
    assert run.returncode == 1, run.stdout
    props = ET.parse(junit).getroot().findall(".//testcase/properties/property")
    assert ("needs", "fentry,kprobe") in {(p.get("name"), p.get("value")) for p in props}
    rep = report.parse_junit(junit, "t")
    status = {o.nodeid.split("::")[1]: (o.status, o.features) for o in rep.outcomes}
    assert status == {"test_kp": ("passed", ("kprobe",)),
                      "test_both": ("skipped", ("fentry", "kprobe")),
                      "test_plain": ("failed", ())}
    assert rep.kernel_release == os.uname().release
    table = report.matrix_table([rep])
    rows = {ln.split(" | ")[0].strip("| "): ln for ln in table.splitlines()}
    assert "passed 1, skipped 1 (lockdown (integrity))" in rows["kprobe"]
    assert "skipped 1 (lockdown (integrity))" in rows["fentry"]
    assert "**failed 1**" in rows[report.NO_FEATURE]
    assert report.unrun_kernel_tests([rep]) == sorted(
        o.nodeid for o in rep.outcomes if o.status != "passed")


# --- feature probes ---------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("bpftool") is None or not Path("/sys/kernel/btf/vmlinux")
                    .exists(), reason="needs bpftool and kernel BTF")
def test_btf_func_ids_match_bpftool() -> None:
    out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"],
                         capture_output=True, text=True, check=True).stdout
    funcs = features.btf_funcs()
    dumped = re.findall(r"^\[(\d+)\] FUNC '([^']+)'", out, re.M)
    assert len(funcs) == len({name for _, name in dumped})
    by_id = {int(type_id): name for type_id, name in dumped}
    for type_id, name in dumped[:: max(1, len(dumped) // 500)]:
        assert funcs[name] >= int(type_id)  # duplicates keep the last id
        assert by_id.get(funcs[name]) == name  # one lookup, not a regex scan of the dump


@pytest.mark.kernel
def test_probes_agree_with_expectations() -> None:
    """A feature the kernel should have is one the probe finds (what the marker relies on)."""
    for feature in features.REQUIREMENTS:
        if features.expected(feature):
            assert features.missing(feature) is None, feature


# --- one real boot ----------------------------------------------------------------------------

def _qemu_processes_using(path: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(path).encode() in cmdline and b"qemu" in cmdline:
                pids.append(int(entry.name))
    return pids


@pytest.mark.slow
@pytest.mark.skipif(IN_GUEST, reason="no nested guests")
@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86")
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mke2fs images, apt-get)")
def test_boot_6_1_runs_pytest_inside(tmp_path: Path) -> None:
    env = dict(os.environ, TMPDIR=str(tmp_path), CI="true")
    out = tmp_path / "out"
    run = subprocess.run(
        # generous: on a clean machine the guest image is built first, and in CI this runs
        # beside two TCG guests of the matrix on two cores
        [sys.executable, "-m", "vmtest", "run", "--kernel", "6.1", "--timeout", "1500",
         "--out", str(out), "--", "tests/vm/test_vm_features.py", "-k", "kprobe"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    rep = report.parse_junit(out / "6.1.xml", "6.1")
    assert rep.kernel_release.startswith("6.1.")
    assert [(o.status, o.features) for o in rep.outcomes] == [("passed", ("kprobe",))] * 2
    assert "VMTEST-EXIT 0" in (out / "6.1.console.log").read_text()
    assert _qemu_processes_using(tmp_path) == []

    # A timeout kills the guest and leaves no qemu behind.
    run = subprocess.run(
        [sys.executable, "-m", "vmtest", "run", "--kernel", "6.1", "--timeout", "3",
         "--out", str(out), "--", "tests/vm"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=300)
    assert run.returncode == 2 and "still running after 3 s" in run.stderr
    assert _qemu_processes_using(tmp_path) == []


# --- tiers, kernels, libbpf builds --------------------------------------------------------------

def test_tier_names_parse() -> None:
    assert tiers.parse_tier("host") == ("host", None)
    assert tiers.parse_tier("7.3") == ("7.3", None)
    assert tiers.parse_tier("host-libbpf-1.4.6") == ("host", "1.4.6")
    assert tiers.parse_tier("7.3-libbpf-1.7.0") == ("7.3", "1.7.0")
    assert tiers.parse_tier("debian13") == ("debian13", None)
    for bad in ("4.19", "host-libbpf-0.8", "7.3-libbpf-"):
        with pytest.raises(ValueError, match="unknown tier"):
            tiers.parse_tier(bad)


def test_matrix_sets_name_known_tiers() -> None:
    from vmtest import __main__ as cli

    for name in cli.FULL:
        tiers.parse_tier(name)
    assert set(cli.QUICK) <= set(cli.ALL) <= set(cli.FULL)
    assert set(cli.ALL) | set(cli.NOT_IN_ALL) == set(cli.FULL)
    assert {"7.3", "host-libbpf-1.4.6", "host-libbpf-1.7.0", "7.3-libbpf-1.7.0",
            "debian13"} <= set(cli.FULL)
    assert cli.select_tiers("host,7.3-libbpf-1.7.0") == ("host", "7.3-libbpf-1.7.0")
    with pytest.raises(ValueError):
        cli.select_tiers("host,nope")


def test_kernel_of_split_7x_packages_is_found(tmp_path: Path) -> None:
    """Linux 7.x packages keep vmlinuz and config in usr/lib/modules/<release>/."""
    mods = tmp_path / "usr" / "lib" / "modules" / "7.3.4+deb13-cloud-amd64"
    mods.mkdir(parents=True)
    (mods / "vmlinuz").write_bytes(b"MZ")
    (mods / "config").write_text("CONFIG_BPF_LSM=y\n")
    kernel = fetch._kernel_in(tmp_path)
    assert kernel.release == "7.3.4+deb13-cloud-amd64"
    assert kernel.vmlinuz == mods / "vmlinuz" and kernel.config == mods / "config"
    assert kernel.modules == mods
    old = tmp_path / "old"
    (old / "boot").mkdir(parents=True)
    (old / "boot" / "vmlinuz-6.1.0-9-cloud-amd64").write_bytes(b"MZ")
    assert fetch._kernel_in(old).config == old / "boot" / "config-6.1.0-9-cloud-amd64"


def test_glibc_needed_reads_symbol_versions(tmp_path: Path) -> None:
    lib = tmp_path / "libx.so"
    lib.write_bytes(b"\0GLIBC_2.3.4\0GLIBC_2.38\0GLIBC_2.4\0")
    assert tiers.glibc_needed(lib) == (2, 38)
    assert tiers.host_glibc() >= (2, 28)


def test_readme_section_is_replaced_between_markers() -> None:
    from vmtest import __main__ as cli

    text = f"intro\n{cli.README_BEGIN}\nold\n{cli.README_END}\nrest\n"
    assert cli.replace_section(text, "| new |") == (
        f"intro\n{cli.README_BEGIN}\n| new |\n{cli.README_END}\nrest\n")
    with pytest.raises(ValueError):
        cli.replace_section("no markers", "x")


def test_readme_has_the_generated_table_section() -> None:
    from vmtest import __main__ as cli

    text = (ROOT / "README.md").read_text()
    assert text.count(cli.README_BEGIN) == 1 and text.count(cli.README_END) == 1


def test_compat_table_has_a_column_per_tier_with_its_time() -> None:
    a = report.TierReport("7.3", "7.3.4+deb13-cloud-amd64", "1.1", [
        report.Outcome("t.py::a", ("kprobe",), True, "passed")], seconds=300.4)
    b = report.TierReport("host-libbpf-1.7.0", "6.18.0", "1.7", [
        report.Outcome("t.py::a", ("kprobe",), True, "skipped", "kprobe: no kprobes")])
    table = report.compat_table([a, b])
    head = next(ln for ln in table.splitlines() if ln.startswith("| feature"))
    assert head == ("| feature | 7.3 (7.3.4+deb13, libbpf 1.1), 300 s | "
                    "host-libbpf-1.7.0 (6.18.0, libbpf 1.7) |")
    row = next(ln for ln in table.splitlines() if ln.startswith("| kprobe"))
    assert row == "| kprobe | passed 1 | skipped 1 (no kprobes) |"
    assert "| all | | | 2 | 300 s |" in report.timing_table([a, b])


def test_failure_digest_names_each_failed_test_with_its_first_message_line() -> None:
    outcomes = [report.Outcome(f"t.py::f{i}", (), True, "failed", f"AssertionError: {i}\nmore")
                for i in range(4)]
    outcomes.append(report.Outcome("t.py::ok", (), True, "passed"))
    bad = report.TierReport("debian13", outcomes=outcomes)
    good = report.TierReport("host", outcomes=[report.Outcome("t.py::ok", (), True, "passed")])
    lines = report.failure_digest([good, bad], per_tier=3)
    assert lines == ["debian13: 4 failed", "  t.py::f0: AssertionError: 0",
                     "  t.py::f1: AssertionError: 1", "  t.py::f2: AssertionError: 2",
                     "  ... and 1 more"]
    assert report.failure_digest([good]) == []


# --- libbpf requirements, and a feature needing a new kernel and a new libbpf -----------------

def test_libbpf_needs_skip_on_older_and_fail_where_promised(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    assert features.libbpf_need("libbpf>=1.3") == (1, 3)
    assert features.libbpf_need("libbpf >= 1.3") == (1, 3)
    assert features.libbpf_need("kprobe") is None
    reported, _, _ = features.libbpf_loaded()
    assert reported is not None and reported >= (1, 0)
    assert features.missing("libbpf>=1.0") is None
    assert features.missing("libbpf>=99.0") == (
        f"libbpf {reported[0]}.{reported[1]} is older than 99.0")
    assert not features.expected("libbpf>=99.0")
    # a library whose file name promises 1.7 but which reports 1.1: the test must fail
    monkeypatch.setattr(features, "libbpf_loaded", lambda: ((1, 1), (1, 7), "libbpf.so.1.7.0"))
    assert features._libbpf_missing((1, 5)) == "libbpf 1.1 is older than 1.5"
    assert features.expected("libbpf>=1.5")


SESSION_BPF = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

const volatile __u32 target_pid = 0;

/* returning 0 asks for the return probe as well: two hits per call */
SEC("kprobe.session/" TARGET)
int on_session(void *ctx)
{
	__u32 key = 0;
	__u64 *v;

	if ((bpf_get_current_pid_tgid() >> 32) != target_pid)
		return 1;
	v = bpf_map_lookup_elem(&counts, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


def getpid_ftrace_symbol() -> str:
    """The name getpid's handler has in ftrace's list.  libbpf before 1.7 resolves a
    kprobe.session name through that list only, and Debian's 6.12 lists ``__do_sys_getpid``
    alone (``__x64_sys_getpid`` is an alias at the same address), 7.3 ``__x64_sys_getpid``."""
    for tracefs in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        try:
            listed = set(Path(tracefs, "available_filter_functions").read_text().split())
        except OSError:
            continue
        for name in ("__x64_sys_getpid", "__do_sys_getpid"):
            if name in listed:
                return name
        raise AssertionError(f"{tracefs}/available_filter_functions lists no getpid handler")
    raise AssertionError("no tracefs with available_filter_functions is mounted")


@pytest.mark.needs("kprobe_session", "libbpf>=1.5")
def test_kprobe_session_runs_on_entry_and_return(tmp_path: Path) -> None:
    """Needs Linux 6.10 with kprobes and libbpf 1.5: in the matrix, the 7.3-libbpf-1.7.0 tier
    (6.12-libbpf-1.5 by name)."""
    import pylibbpf
    from tests.support.bpfbuild import compile_bpf

    src = tmp_path / "session.bpf.c"
    src.write_text(SESSION_BPF)
    target = getpid_ftrace_symbol()
    obj = pylibbpf.Object.open_file(compile_bpf(src, cflags=[f'-DTARGET="{target}"']))
    try:
        obj.rodata["target_pid"] = os.getpid()
        obj.load()
        link = obj.programs["on_session"].attach()
        try:
            for _ in range(50):
                os.getpid()
        finally:
            link.destroy()
        assert int.from_bytes(obj.maps["counts"][0], "little") == 100
    finally:
        obj.close()


# --- what the host builds for the guests -------------------------------------------------------

def _no_compiling(run: Callable[..., Any]) -> Callable[..., Any]:
    """``subprocess.run`` that refuses a compile (``-c``) and passes anything else on."""
    def guarded(cmd: list[str], *args: Any, **kwargs: Any) -> Any:
        if "-c" in cmd:
            raise AssertionError(f"clang ran again: {cmd}")
        return run(cmd, *args, **kwargs)

    return guarded


def test_a_program_written_into_another_folder_is_found_in_the_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test's program written into a temporary folder is built once: the guest, whose temporary
    folder differs, finds the host's build (the key holds the folder's headers, not its path)."""
    from tests.support import bpfbuild

    source = (tiers.CHECKOUT / "tests" / "bpf" / "minimal.bpf.c").read_text()
    first, second = tmp_path / "a" / "p.bpf.c", tmp_path / "b" / "p.bpf.c"
    for src in (first, second):
        src.parent.mkdir()
        src.write_text(source)
    built = bpfbuild.compile_bpf(first)

    monkeypatch.setattr(subprocess, "run", _no_compiling(subprocess.run))
    assert bpfbuild.compile_bpf(second) == built
    (second.parent / "extra.h").write_text("#define X 1\n")  # the folder's headers count
    with pytest.raises(AssertionError, match="clang ran again"):
        bpfbuild.compile_bpf(second)


def test_prebuild_builds_the_open_validation_objects(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """After the host's prebuild, the open-validation load test compiles nothing (in a guest
    that was 100 s of clang under TCG)."""
    from tests.test_open_validation import LOADED, _suite_objects

    tiers.prebuild_bpf(Path(sys.executable))

    monkeypatch.setattr(subprocess, "run", _no_compiling(subprocess.run))
    assert len(_suite_objects(tmp_path, only=LOADED)) >= len(LOADED)


def test_a_refused_build_is_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A program clang refuses (a CO-RE read without -g) is refused again from the cache."""
    from tests.support import bpfbuild

    src = tmp_path / "bad.bpf.c"
    src.write_text(f"int broken_{os.getpid()}(void) {{ return undeclared; }}\n")
    with pytest.raises(bpfbuild.BuildError, match="undeclared"):
        bpfbuild.compile_bpf(src)
    monkeypatch.setattr(subprocess, "run", _no_compiling(subprocess.run))
    with pytest.raises(bpfbuild.BuildError, match="undeclared"):
        bpfbuild.compile_bpf(src)
