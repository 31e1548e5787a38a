"""Run a pytest selection on one tier: the host, a guest kernel, or the host with another libbpf."""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vmtest import cache_lock, image
from vmtest.fetch import LIBBPF_SUITES, SUITES, fetch_kernel, fetch_libbpf, fetch_package
from vmtest.proc import run_guarded

CHECKOUT = Path(__file__).resolve().parent.parent
DEFAULT_SELECTION = ("-m", "(kernel or needs) and not slow")
# kernel tests a guest leaves to the host tiers, which run them: the hostile-argument sweep
# checks pylibbpf's own argument handling, not the kernel, and takes tens of minutes under TCG
# (its map part alone ran 6.5 minutes in the 7.3 guest); test_ci_rule checks the test suite's
# own skip-or-fail rule by running the attach files again in subprocesses under simulated
# refusals, and in the 6.12 guest (2 vCPUs under TCG) that burst of attach/detach once ended
# in a guest kernel Oops (int3 in __schedule, text patching) and panic; the exporter's
# Prometheus test checks the exporter against a Prometheus server the guest image does not
# carry (test_export_kernel.py checks its kernel side in the guests)
GUEST_IGNORE = ("tests/test_hostile_args.py", "tests/test_ci_rule.py",
                "tests/test_export_prometheus.py")
# kernel tests a guest leaves to the host tiers one by one: compat run's own translation work
# (the zCore dialect's errno mapping, a --map-symbols table, the supervisor surviving bad
# input, the --trace text), which asks the kernel nothing the rcore tests of the same file do
# not (as the privilege test's dialects, tests/compat_run/test_privileges.py); about 70 s of
# supervised children per guest
GUEST_DESELECT = (
    "tests/compat_run/test_run_legacy.py::test_maps_test_zcore",
    "tests/compat_run/test_run_legacy.py::test_map_symbols_file",
    "tests/compat_run/test_run_legacy.py::test_bad_input_gets_legacy_errors_and_supervisor_survives",
    "tests/compat_run/test_run_legacy.py::test_trace_shows_each_translation",
)
# host environment variables the guest's pytest sees too
PASS_ENV_PREFIXES = ("PYLIBBPF_",)
PASS_ENV = ("CI", "PYTEST_ADDOPTS")
# read by tests/support/bpfbuild.py: a folder searched before the system's for <bpf/*.h>
BPF_INCLUDE_ENV = "PYLIBBPF_TEST_BPF_INCLUDE"
NO_PASS_ENV = ("PYLIBBPF_VM_CACHE", "PYLIBBPF_LIBBPF", "PYLIBBPF_TEST_CACHE", BPF_INCLUDE_ENV)
QEMU = "qemu-system-x86_64"
# the guests' CPU model: the x86-64 baseline plus SSE4.2/POPCNT.  ``-cpu max`` offers AVX2,
# which glibc's string functions then use and TCG emulates slowly (one side-by-side run of the
# same selection: 97 s with ``max``, 84 s with this).  PYLIBBPF_VM_CPU overrides it.
GUEST_CPU = "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16"


class GuestError(OSError):
    """The guest never reached pytest or never reported an exit code."""


@dataclass
class TierResult:
    """What a tier run brought back."""

    name: str
    returncode: int
    junit: Path | None
    timings: dict[str, float] = field(default_factory=dict)
    console: Path | None = None


def venv_python(checkout: Path = CHECKOUT) -> Path:
    """The checkout's ``.venv`` Python (what the tests run with), else this interpreter."""
    candidate = checkout / ".venv" / "bin" / "python"
    return candidate if candidate.exists() else Path(sys.executable)


def pytest_args(junit: str, extra: Sequence[str], whole_suite: bool) -> list[str]:
    """pytest's arguments on every tier: the plugin, junit output, the selection."""
    args = ["-p", "vmtest.pytest_plugin", f"--junitxml={junit}", "-o", "junit_family=xunit1",
            "--color", "yes" if sys.stdout.isatty() else "no"]
    if not whole_suite:
        args += DEFAULT_SELECTION
    return args + list(extra)


def _printer(prefix: str) -> Callable[[str], None]:
    def emit(line: str) -> None:
        print(f"{prefix}{line}", flush=True)

    return emit


PREBUILD = """
import os
from tests.support.bpfbuild import BPF_SRC, EXAMPLES_CACHE, compile_bpf
for src in sorted(BPF_SRC.glob("*.bpf.c")):
    try:
        compile_bpf(src)
    except Exception:
        pass  # needs flags of its own: the guest's clang builds it at test time
os.environ["PYLIBBPF_EXAMPLES_CACHE"] = str(EXAMPLES_CACHE)
from examples._build import build_all
build_all()  # the examples the tests run, as the guest's examples would build them
import tempfile
from pathlib import Path
try:  # the open-validation load test's objects (with and without BTF): 100 s of guest clang
    from tests.test_open_validation import LOADED, _suite_objects
    with tempfile.TemporaryDirectory() as tmp:
        _suite_objects(Path(tmp), only=LOADED)
except Exception:
    pass  # renamed or failing: the guest builds them itself
"""


def prebuild_bpf(python: Path, checkout: Path = CHECKOUT, include: Path | None = None) -> None:
    """Compile ``tests/bpf/*.bpf.c`` and the examples on the host so the guest finds most of
    them cached (``include``: the libbpf headers the guest's tests build with; the cache key
    holds their contents, not their path)."""
    if (checkout / "tests" / "support" / "bpfbuild.py").exists():
        env = dict(os.environ)
        env.pop(BPF_INCLUDE_ENV, None)
        if include is not None:
            env[BPF_INCLUDE_ENV] = str(include)
        subprocess.run([str(python), "-c", PREBUILD], cwd=checkout, check=False, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# the checkout's Python packages, byte-compiled on the host for the guest
PYTHON_DIRS = ("pylibbpf", "compat", "tests", "examples", "fuzz", "vmtest")


def precompile_python(python: Path, checkout: Path = CHECKOUT) -> None:
    """Write the checkout's bytecode on the host, where it takes seconds, for a guest that
    would otherwise compile every module (and pytest rewrite every test module's asserts) at
    software-emulated speed, once per tier: ``compileall``, then a pytest collection for the
    rewritten test modules.  The run disk hard-links the files, so the sources' modification
    times, which the bytecode is checked against, are the same inside."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    dirs = [d for d in PYTHON_DIRS if (checkout / d).is_dir()]
    subprocess.run([str(python), "-m", "compileall", "-q", *dirs], cwd=checkout, env=env,
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run([str(python), "-m", "pytest", "--collect-only", "-q", "-p",
                    "no:cacheprovider", "tests"], cwd=checkout, env=env, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def glibc_loader(suite: str) -> tuple[Path, Path]:
    """(ld.so, library dir) of ``suite``'s glibc, for a libbpf built against a newer glibc."""
    root = fetch_package(suite, "libc6")
    libdir = next(iter(sorted(root.glob("usr/lib/*-linux-gnu/libc.so.6")))).parent
    return libdir / "ld-linux-x86-64.so.2", libdir


WRAPPER_C = r"""
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) { perror("readlink"); return 127; }
    self[n] = 0;
    char **args = calloc(argc + 7, sizeof *args);
    int i = 0;
    args[i++] = LOADER; args[i++] = "--library-path"; args[i++] = LIBDIR;
    args[i++] = "--argv0"; args[i++] = self; args[i++] = PYTHON;
    for (int j = 1; j < argc; j++) args[i++] = argv[j];
    execv(LOADER, args);
    perror("execv");
    return 127;
}
"""


def shadow_venv(python: Path, glibc: Path, where: Path) -> Path:
    """A venv in ``where`` whose ``bin/python`` runs ``python`` on the glibc in ``glibc``.

    trixie's and sid's libbpf need glibc 2.38.  ``bin/python`` (a small ELF, since tests treat
    ``sys.executable`` as one) execs that glibc's loader with ``--argv0`` pointing at itself, so
    ``sys.executable`` is the wrapper and every child Python the tests spawn takes the same
    road; ``pyvenv.cfg`` and ``lib`` are the real venv's, so the same packages are found.
    ``glibc`` is the path the wrapper will see (a guest's copy may live elsewhere).
    """
    venv = python.parent.parent
    (where / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(venv / "pyvenv.cfg", where / "pyvenv.cfg")
    (where / "lib").symlink_to(venv / "lib")
    defines = {"LOADER": glibc / "ld-linux-x86-64.so.2", "LIBDIR": glibc,
               "PYTHON": python.resolve()}
    src = "".join(f"#define {k} {json.dumps(str(v))}\n" for k, v in defines.items()) + WRAPPER_C
    wrapper = where / "bin" / "python"
    proc = subprocess.run(["gcc", "-O2", "-x", "c", "-", "-o", str(wrapper)], input=src,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise GuestError(0, f"gcc could not build the libbpf tier's python wrapper: {proc.stderr}")
    return wrapper


def glibc_needed(lib: Path) -> tuple[int, ...]:
    """The newest ``GLIBC_x.y`` symbol version ``lib`` asks for (read from its bytes)."""
    found = re.findall(rb"GLIBC_(\d+)\.(\d+)", lib.read_bytes())
    return max((tuple(int(p) for p in v) for v in found), default=(0,))


def host_glibc() -> tuple[int, ...]:
    """This machine's glibc version, e.g. (2, 36)."""
    version = os.confstr("CS_GNU_LIBC_VERSION") or "glibc 0"
    return tuple(int(p) for p in version.split()[1].split("."))


@dataclass
class LibbpfRuntime:
    """A libbpf tier's files as the tests will see them."""

    python: Path | None  # the wrapper Python (a newer glibc), else None: the venv's own
    library: Path  # libbpf.so.X.Y.Z
    include: Path  # that release's headers (``bpf/*.h``, from libbpf-dev)

    def env(self) -> dict[str, str]:
        """The variables that make pylibbpf load this libbpf and the tests' BPF programs
        compile against its headers (``tests/support/bpfbuild.py``)."""
        return {"PYLIBBPF_LIBBPF": str(self.library), BPF_INCLUDE_ENV: str(self.include)}



def libbpf_runtime(libbpf: str, where: Path, seen_at: Path | None = None) -> LibbpfRuntime:
    """Copy libbpf ``libbpf``, its headers (``libbpf-dev`` of the same suite) and, if the
    library needs a newer glibc than this machine's, that suite's glibc with a wrapper Python
    into ``where``, world-readable as tests run children as nobody.  ``seen_at`` is where
    ``where`` will appear (a guest's run disk), if elsewhere.

    The headers matter: a program built with one release's ``usdt.bpf.h`` reads USDT arguments
    another release lays out differently (libbpf 1.7), so the tier builds with its own.
    """
    seen = seen_at or where
    suite = LIBBPF_SUITES[libbpf]
    with cache_lock():
        lib = fetch_libbpf(libbpf)
        dev = fetch_package(suite, "libbpf-dev")
        libdir = None
        if glibc_needed(lib) > host_glibc():
            _, libdir = glibc_loader(suite)
    where.mkdir(parents=True, exist_ok=True)
    where.chmod(0o755)
    shutil.copy2(lib, where / lib.name)
    headers = dev / "usr" / "include" / "bpf"
    if not (headers / "bpf_helpers.h").exists():
        raise GuestError(0, f"libbpf-dev of {suite} has no usr/include/bpf/bpf_helpers.h")
    shutil.copytree(headers, where / "include" / "bpf")
    if libdir is None:
        return LibbpfRuntime(None, seen / lib.name, seen / "include")
    glibc = where / "glibc"
    glibc.mkdir()
    for so in libdir.glob("*.so*"):
        shutil.copy2(so, glibc / so.name)
    shadow_venv(venv_python(), seen / "glibc", where / "venv")
    return LibbpfRuntime(seen / "venv" / "bin" / "python", seen / lib.name, seen / "include")


def run_host(
    extra: Sequence[str], *, libbpf: str | None = None, whole_suite: bool = False,
    timeout: float = 1800, outdir: Path, quiet: bool = False,
) -> TierResult:
    """Run pytest on this machine's kernel (with libbpf ``libbpf`` if given)."""
    python = venv_python()
    name = "host" if libbpf is None else f"host-libbpf-{libbpf}"
    junit = outdir / f"{name}.xml"
    env = dict(os.environ)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vmtest-libbpf-") as tmp:
        cmd = [str(python)]
        if libbpf is not None:
            runtime = libbpf_runtime(libbpf, Path(tmp))
            env.update(runtime.env())
            if runtime.python is not None:
                cmd = [str(runtime.python)]
        cmd += ["-m", "pytest", *pytest_args(str(junit), extra, whole_suite)]
        rc = run_guarded(cmd, timeout=timeout, env=env, cwd=str(CHECKOUT),
                         on_line=(lambda line: None) if quiet else _printer(""))
    return TierResult(name, rc, junit if junit.exists() else None,
                      {"total": time.monotonic() - t0})


def qemu_command(
    vmlinuz: Path, initrd: Path, disks: Sequence[tuple[Path, bool]], *, mem_mb: int = 2048,
    smp: int = 2, append: str = "",
) -> list[str]:
    """The qemu command line: TCG, serial console on stdout, virtio disks (path, read-only).

    TCG runs single-threaded (the vCPUs take turns on one host thread).  With one thread per
    vCPU, a guest kernel patching its own text (jump labels toggled by every tracepoint
    attach and detach, through int3) once executed a stale breakpoint on the other vCPU and
    died with "Oops: int3" in __schedule (6.12 and 7.3 guests); the matrix runs two guests on
    two cores anyway, so one thread each costs no speed."""
    cpu = os.environ.get("PYLIBBPF_VM_CPU", GUEST_CPU)
    cmd = [QEMU, "-machine", "q35", "-accel", "tcg,thread=single", "-cpu", cpu,
           "-smp", str(smp),
           "-m", str(mem_mb), "-nographic", "-no-reboot", "-nic", "none",
           "-kernel", str(vmlinuz), "-initrd", str(initrd),
           "-append", f"console=ttyS0 quiet loglevel=4 panic=-1 rdinit=/init {append}".strip()]
    for path, readonly in disks:
        ro = ",readonly=on" if readonly else ""
        cmd += ["-drive", f"file={path},if=virtio,format=raw,cache=unsafe{ro}"]
    return cmd


def lsm_argument(config: Path) -> str:
    """``lsm=...,bpf`` when the kernel has the BPF LSM built in but not in its default list
    (Debian's 5.10), so LSM programs can be tested there; else nothing."""
    text = config.read_text(errors="replace")
    built = re.search(r"^CONFIG_BPF_LSM=y$", text, re.M)
    default = re.search(r'^CONFIG_LSM="([^"]*)"$', text, re.M)
    if not built or default is None or "bpf" in default.group(1).split(","):
        return ""
    return f"lsm={default.group(1)},bpf"


def stage2_script(checkout: Path, args: Sequence[str], env: dict[str, str],
                  python: str = ".venv/bin/python") -> str:
    """Stage-2 shell script: env exports and the pytest command line, quoted."""
    exports = "\n".join(f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items()))
    command = " ".join(shlex.quote(a) for a in [python, "-m", "pytest", *args])
    return image.STAGE2.format(env=exports, checkout=shlex.quote(str(checkout)),
                               command=command + " 2>&1")


def guest_exclusions(extra: Sequence[str]) -> list[str]:
    """pytest arguments leaving :data:`GUEST_IGNORE` and :data:`GUEST_DESELECT` to the host
    tiers, but for a file named in ``extra`` (the command line asked for it)."""
    def named(path: str) -> bool:
        return any(a.startswith(path) for a in extra)

    return ([f"--ignore={path}" for path in GUEST_IGNORE if not named(path)]
            + [f"--deselect={test}" for test in GUEST_DESELECT
               if not named(test.partition("::")[0])])


def guest_env() -> dict[str, str]:
    """The host variables the guest's pytest should see (CI, PYLIBBPF_*)."""
    env = {k: v for k, v in os.environ.items()
           if (k in PASS_ENV or k.startswith(PASS_ENV_PREFIXES)) and k not in NO_PASS_ENV}
    return env


# where a guest tier's libbpf (and glibc, wrapper) appear: inside the checkout's overlay
GUEST_LIBBPF_DIR = ".vmtest-libbpf"


def run_guest(
    kernel_tier: str, extra: Sequence[str], *, libbpf: str | None = None,
    whole_suite: bool = False, timeout: float = 1800, outdir: Path, quiet: bool = False,
    mem_mb: int = 2048,
) -> TierResult:
    """Boot ``kernel_tier`` under QEMU, run the pytest selection inside, bring results back.

    With ``libbpf`` the guest's pytest loads that libbpf (``PYLIBBPF_LIBBPF``), through the
    glibc wrapper when the library needs a newer glibc than the guest's (the host's).
    """
    if shutil.which(QEMU) is None:
        raise GuestError(2, f"{QEMU} not found: install qemu-system-x86")
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    python = venv_python()
    with cache_lock():
        kernel = fetch_kernel(kernel_tier)
        timings["fetch"] = time.monotonic() - t0
        t = time.monotonic()
        system = image.system_image(python)
        initrd = image.initramfs(kernel)
        timings["system image+initramfs"] = time.monotonic() - t
    name = kernel_tier if libbpf is None else f"{kernel_tier}-libbpf-{libbpf}"
    outdir.mkdir(parents=True, exist_ok=True)
    console_path = outdir / f"{name}.console.log"
    with tempfile.TemporaryDirectory(prefix="vmtest-") as tmp:
        work = Path(tmp)
        t = time.monotonic()
        args = pytest_args("/tmp/vmtest-out/junit.xml", extra, whole_suite)
        args += ["-o", "cache_dir=/tmp/pytest-cache"]
        if not whole_suite:
            args += guest_exclusions(extra)
        env = guest_env()
        guest_python = ".venv/bin/python"
        extra_dirs: list[tuple[str, Path]] = []
        include: Path | None = None
        if libbpf is not None:
            staged = work / "libbpf"
            runtime = libbpf_runtime(libbpf, staged, CHECKOUT / GUEST_LIBBPF_DIR)
            env.update(runtime.env())
            if runtime.python is not None:
                guest_python = str(runtime.python)
            extra_dirs.append((GUEST_LIBBPF_DIR, staged))
            include = staged / "include"
        prebuild_bpf(python, include=include)
        precompile_python(python)
        run = image.run_disk(CHECKOUT, stage2_script(CHECKOUT, args, env, guest_python), work,
                             kernel.config, extra_dirs)
        results = image.results_disk(work)
        timings["run disk"] = time.monotonic() - t
        cmd = qemu_command(kernel.vmlinuz, initrd, [(system, True), (run, True), (results, False)],
                           mem_mb=mem_mb, append=lsm_argument(kernel.config))
        marks: dict[str, float] = {}
        exit_code: list[int] = []
        emit = _printer(f"[{name}] ")
        boot = time.monotonic()
        with open(console_path, "w", buffering=1) as console:
            def on_line(line: str) -> None:
                console.write(line + "\n")
                if line.startswith("VMTEST-PYTEST"):
                    marks["pytest start"] = time.monotonic() - boot
                elif line.startswith("VMTEST-EXIT"):
                    marks["pytest end"] = time.monotonic() - boot
                    exit_code.append(int(line.split()[1]))
                if not quiet and not line.startswith("VMTEST-STAGE2"):
                    emit(line)

            status = run_guarded(cmd, timeout=timeout, on_line=on_line)
        timings["boot to pytest"] = marks.get("pytest start", float("nan"))
        timings["qemu total"] = time.monotonic() - boot
        if status != 0:
            raise GuestError(0, f"qemu exited with {status}; console: {console_path}")
        found = image.read_results(results, outdir / f"{name}.out")
    if not exit_code and "rc" not in found:
        raise GuestError(0, f"the guest reported no pytest exit code; console: {console_path}")
    rc = exit_code[0] if exit_code else int(found["rc"].read_text())
    junit = outdir / f"{name}.xml"
    if "junit.xml" in found:
        shutil.move(str(found["junit.xml"]), junit)
    timings["total"] = time.monotonic() - t0
    return TierResult(name, rc, junit if junit.exists() else None, timings, console_path)


def run_tier(tier: str, extra: Sequence[str], *, libbpf: str | None = None,
             whole_suite: bool = False, timeout: float = 1800, outdir: Path,
             quiet: bool = False) -> TierResult:
    """Run one tier: ``host``, a kernel from :data:`vmtest.fetch.SUITES` (either with libbpf
    ``libbpf`` from :data:`vmtest.fetch.LIBBPF_SUITES`), or a distribution tier
    (``debian13``, :mod:`vmtest.distro`)."""
    if libbpf is not None and libbpf not in LIBBPF_SUITES:
        raise ValueError(f"unknown libbpf {libbpf!r}; choose one of {sorted(LIBBPF_SUITES)}")
    if tier in DISTRO_TIERS:
        if libbpf is not None:
            raise ValueError(f"{tier} runs its distribution's own libbpf")
        try:  # vmtest/distro.py is written separately; imported only when named
            distro = importlib.import_module("vmtest.distro")
        except ImportError as e:
            raise ValueError(f"tier {tier} needs vmtest/distro.py: {e}") from e
        result: TierResult = distro.run_distro(DISTRO_TIERS[tier], extra, outdir=outdir,
                                               timeout=timeout, quiet=quiet)
        return result
    if tier == "host":
        return run_host(extra, libbpf=libbpf, whole_suite=whole_suite, timeout=timeout,
                        outdir=outdir, quiet=quiet)
    if tier not in SUITES:
        raise ValueError(f"unknown kernel {tier!r}; choose host or one of {sorted(SUITES)}")
    return run_guest(tier, extra, libbpf=libbpf, whole_suite=whole_suite, timeout=timeout,
                     outdir=outdir, quiet=quiet)


# distribution tiers (vmtest/distro.py) -> the release run_distro takes
DISTRO_TIERS: dict[str, str] = {"debian13": "trixie"}


def parse_tier(name: str) -> tuple[str, str | None]:
    """A tier name -> (kernel tier, libbpf tier or None): ``host``, ``6.1``,
    ``host-libbpf-1.4.6``, ``7.3-libbpf-1.7.0``, ``debian13``."""
    kernel, sep, libbpf = name.partition("-libbpf-")
    if kernel not in ("host", *SUITES, *DISTRO_TIERS) or (sep and libbpf not in LIBBPF_SUITES):
        known = ["host", *SUITES, *DISTRO_TIERS,
                 *(f"host-libbpf-{v}" for v in LIBBPF_SUITES)]
        raise ValueError(f"unknown tier {name!r}; e.g. {', '.join(known)}")
    return kernel, (libbpf if sep else None)
