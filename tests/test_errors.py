"""Errors: every failure is an OSError with errno and a sentence; the verifier log travels whole;
permission errors name the missing capability; bad objects never crash the process."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

import pylibbpf
from pylibbpf import BpfError, BpfPermissionError, Object, VerifierError
from tests.support import unprivileged
from tests.support.bpfbuild import compile_bpf

pytestmark = pytest.mark.kernel
ROOT = Path(__file__).resolve().parent.parent


def test_verifier_error_carries_the_whole_log() -> None:
    with Object.open_file(compile_bpf("rejected.bpf.c")) as obj:
        with pytest.raises(VerifierError) as info:
            obj.load()
    err = info.value
    assert isinstance(err, OSError) and isinstance(err, BpfError)
    assert err.errno == errno.EACCES
    assert err.program == "unchecked_lookup"
    lines = err.log.splitlines()
    # the whole log: from the first instruction to the verdict, over a thousand lines
    assert len(lines) > 1000
    # it starts before the first instruction (kernels before 5.13 first warn about the BTF
    # of the argument: "Unrecognized arg#0 type PTR")
    first_insn = next(i for i, line in enumerate(lines) if line.startswith("0: "))
    assert first_insn < 5, lines[:5]
    assert "invalid mem access 'map_value_or_null'" in err.log
    assert err.verdict == "R0 invalid mem access 'map_value_or_null'"
    text = str(err)
    assert "the verifier rejected program 'unchecked_lookup' of object 'rejected'" in text
    assert "earlier lines omitted" in text
    assert "invalid mem access" in text
    assert len(text.splitlines()) < 25


def test_verifier_log_in_a_small_user_buffer_is_still_reported() -> None:
    with Object.open_file(compile_bpf("rejected.bpf.c")) as obj:
        obj.programs["unchecked_lookup"].set_log_buf(4096)
        with pytest.raises(BpfError) as info:
            obj.load()
    assert info.value.errno in (errno.EACCES, errno.ENOSPC)


def test_a_failed_load_leaves_the_object_closable() -> None:
    obj = Object.open_file(compile_bpf("rejected.bpf.c"))
    with pytest.raises(VerifierError):
        obj.load()
    with pytest.raises(pylibbpf.StateError):
        obj.load()
    obj.close()


@pytest.mark.parametrize("data, what", [
    (b"", "empty"),
    (b"hello world", "not ELF"),
    (b"\x7fELF" + b"\0" * 60, "zeroed header"),
])
def test_malformed_objects_raise(data: bytes, what: str) -> None:
    if not data:
        with pytest.raises(ValueError, match="non-empty"):
            Object.open_mem(data)
        return
    with pytest.raises(BpfError) as info:
        Object.open_mem(data, object_name="bad")
    assert info.value.errno in (errno.EINVAL, errno.ENOEXEC, errno.EOPNOTSUPP,
                                errno.ENOENT, errno.EILSEQ)
    assert "failed to open BPF object bad" in str(info.value)


def test_truncated_and_foreign_elf_files(tmp_path: Path) -> None:
    real = compile_bpf("counters.bpf.c").read_bytes()
    for cut in (64, len(real) // 3, len(real) - 100):
        with pytest.raises(BpfError):
            Object.open_mem(real[:cut])
    with pytest.raises(BpfError) as info:
        Object.open_file(sys.executable)  # an x86-64 ELF, not BPF
    assert info.value.errno == errno.ENOEXEC
    assert "not a valid eBPF object file" in str(info.value)
    with pytest.raises(BpfError) as info:
        Object.open_file(tmp_path / "missing.o")
    assert info.value.errno == errno.ENOENT
    assert "missing.o" in str(info.value)


def _as_unprivileged(code: str, caps: str) -> subprocess.CompletedProcess[str]:
    setpriv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
               f"--inh-caps={caps}"]
    if caps != "-all":
        setpriv.append(f"--ambient-caps={caps}")
    return subprocess.run([*setpriv, unprivileged.python(), "-c", code], capture_output=True,
                          text=True, env=unprivileged.env(), timeout=60, cwd="/")


LOAD_AND_REPORT = """
import sys, pylibbpf
try:
    with pylibbpf.Object.open_file(sys.argv[1] if len(sys.argv) > 1 else {path!r}) as obj:
        obj.load()
        print("LOADED")
except pylibbpf.BpfPermissionError as e:
    print("PERM", e.errno, e)
except OSError as e:
    print("OTHER", type(e).__name__, e.errno, e)
"""


@pytest.mark.skipif(not Path("/proc/sys/kernel/unprivileged_bpf_disabled").exists(),
                    reason="no unprivileged_bpf_disabled sysctl")
def test_without_capabilities_the_error_names_cap_bpf() -> None:
    path = unprivileged.share(compile_bpf("minimal.bpf.c"))
    proc = _as_unprivileged(LOAD_AND_REPORT.format(path=str(path)), "-all")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("PERM 1"), proc.stdout
    assert "missing capability CAP_BPF" in proc.stdout
    assert "CAP_SYS_ADMIN" in proc.stdout


def test_with_cap_bpf_only_a_tracing_program_needs_cap_perfmon() -> None:
    path = unprivileged.share(compile_bpf("minimal.bpf.c"))
    proc = _as_unprivileged(LOAD_AND_REPORT.format(path=str(path)), "+bpf")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("PERM"), proc.stdout
    assert "missing capability CAP_PERFMON" in proc.stdout


def test_with_cap_bpf_and_perfmon_a_tracing_program_loads() -> None:
    path = unprivileged.share(compile_bpf("minimal.bpf.c"))
    proc = _as_unprivileged(LOAD_AND_REPORT.format(path=str(path)), "+bpf,+perfmon")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "LOADED", proc.stdout


def test_map_create_without_capabilities() -> None:
    code = ("import pylibbpf\n"
            "try:\n"
            "    pylibbpf.Map.create(pylibbpf.MapType.ARRAY, 4, 4, 1)\n"
            "except pylibbpf.BpfPermissionError as e:\n"
            "    print('PERM', e.errno, e)\n")
    proc = _as_unprivileged(code, "-all")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("PERM 1")
    assert "missing capability CAP_BPF" in proc.stdout


def test_lockdown_refusal_is_not_blamed_on_capabilities() -> None:
    """As root, an EPERM cannot be a missing capability: the message says so."""
    err = pylibbpf.errors.error_from_errno(errno.EPERM, "failed to load X", ("CAP_BPF",))
    assert isinstance(err, BpfPermissionError) and isinstance(err, PermissionError)
    assert "not a capability problem" in str(err)


def test_kernel_enotsupp_is_a_not_supported_error() -> None:
    """Some BPF commands return the kernel-internal ENOTSUPP (524), which ``os.strerror`` does
    not know: it is a NotSupportedError, keeps 524 and still reads as a sentence."""
    err = pylibbpf.errors.error_from_errno(pylibbpf.errors.ENOTSUPP, "lookup_batch failed")
    assert isinstance(err, pylibbpf.NotSupportedError) and err.errno == 524
    assert str(err) == "lookup_batch failed: Operation not supported (kernel ENOTSUPP) (errno 524)"


def test_the_reason_stays_in_the_message_when_explanations_follow_it() -> None:
    # newer kernels (7.x) follow the reason with pages of explanation, more than the tail shows
    log = "\n".join(["0: (b7) r0 = 0", "1: (79) r1 = *(u64 *)(r0 +0)",
                     "R0 invalid mem access 'map_value_or_null'", "",
                     "Verification failed: Register Type Safety: Invalid dereference",
                     *(f"  explanation {i}" for i in range(40)),
                     "processed 2 insns (limit 1000000)"])
    err = VerifierError(errno.EACCES, "the verifier rejected program 'p'", "p", log)
    assert err.verdict == "R0 invalid mem access 'map_value_or_null'"
    text = str(err).splitlines()
    assert text[2] == "  reason: R0 invalid mem access 'map_value_or_null'"
    assert text[-1] == "  processed 2 insns (limit 1000000)" and len(text) < 25
    short = VerifierError(errno.EACCES, "rejected", "p", "0: (b7) r0 = 0\nR0 !read_ok")
    assert short.verdict == "R0 !read_ok" and "reason:" not in str(short)  # already shown
