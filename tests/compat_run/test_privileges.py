"""``compat run`` acts with the program's privileges, not the supervisor's.

``c/privileges.c`` sets up as root, then lowers its credentials (a user, a capability mask)
and makes one call of each kind.  Run natively with the Linux calls compat translates the legacy
ones into, it gives the kernel's own answers; run under ``python -m compat run`` with the legacy
calls, it must give the same errno, call by call (zCore: ``ENOEXEC`` for every failure).
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from compat.supervisor._privileges import (
    CAP_BPF,
    CAP_NET_ADMIN,
    CAP_PERFMON,
    CAP_SYS_ADMIN,
    EVERY,
    NONE,
    Credentials,
    entry_check,
    perf_restricted,
    read_credentials,
    sysctl,
)
from compat.supervisor._seccomp import native_arch
from tests.support.repetition import IN_GUEST

Run = Callable[..., subprocess.CompletedProcess[str]]
NOBODY = 65534

CREDENTIALS = {
    "nobody": (NOBODY, 0),
    "nobody+CAP_BPF": (NOBODY, 1 << CAP_BPF),
    "nobody+CAP_BPF+CAP_PERFMON": (NOBODY, 1 << CAP_BPF | 1 << CAP_PERFMON),
    "nobody+CAP_SYS_ADMIN": (NOBODY, 1 << CAP_SYS_ADMIN),
    "root without capabilities": (0, 0),
}


def _calls(proc: subprocess.CompletedProcess[str]) -> dict[str, int]:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\n" \
                                 f"stderr:\n{proc.stderr}"
    lines = proc.stdout.splitlines()
    assert lines[-1] == "privileges done"
    return {step: int(err) for step, err in
            (ln.split() for ln in lines[:-1] if not ln.startswith("#"))}


def _status(proc: subprocess.CompletedProcess[str]) -> dict[str, list[str]]:
    return {ln.split()[1].rstrip(":"): ln.split()[2:] for ln in proc.stdout.splitlines()
            if ln.startswith("# ")}


def _credential_cases() -> list[tuple[str, str]]:
    """(who, dialect): every pair on the host tiers.  In a guest the kernel's side is what is
    new, and it depends on the credentials only (the dialect is the supervisor's translation,
    which the host tiers cover): each credential once, the dialects taking turns."""
    who = sorted(CREDENTIALS)
    if IN_GUEST:
        return [(w, ("rcore", "zcore")[i % 2]) for i, w in enumerate(who)]
    return [(w, d) for w in who for d in ("rcore", "zcore")]


@pytest.mark.kernel
@pytest.mark.parametrize(("who", "dialect"), _credential_cases(),
                         ids=[f"{w}-{d}" for w, d in _credential_cases()])
def test_supervised_calls_get_the_native_errnos(run_cli: Run, c_program: Callable[..., Path],
                                                legacy_objects: dict[str, Path], who: str,
                                                dialect: str) -> None:
    uid, caps = CREDENTIALS[who]
    program = c_program("privileges", zcore=dialect == "zcore")
    args = [str(uid), f"{caps:x}", str(legacy_objects["map"])]
    native = subprocess.run([program, "linux", *args], capture_output=True, text=True,
                            timeout=60)
    supervised = run_cli("--dialect", dialect, "--", program, "legacy", *args)
    want, got = _calls(native), _calls(supervised)
    assert _status(supervised) == _status(native)
    assert _status(native)["CapEff"] == [f"{caps:016x}"]
    if dialect == "zcore":  # zCore turned every failure into ENOEXEC
        want = {step: errno.ENOEXEC if err else 0 for step, err in want.items()}
    assert got == want, f"native (Linux calls): {want}\nunder compat run: {got}\n" \
                        f"{supervised.stderr}"
    # the kernel's rules on this machine, as docs/compat-run.md states them: since 6.5
    # map_create checks sizes before privileges; before, bpf() refused map creation (before
    # 5.19 every command) at entry; Debian's perf_event_paranoid=3 wants CAP_SYS_ADMIN
    native_calls = _calls(native)
    disabled = sysctl("unprivileged_bpf_disabled")
    bpf = bool(caps & (1 << CAP_BPF | 1 << CAP_SYS_ADMIN))
    perfmon = bool(caps & (1 << CAP_PERFMON | 1 << CAP_SYS_ADMIN))
    may_create = bpf or not disabled
    at_entry = NONE if may_create else entry_check(native_arch().nr_bpf, disabled)
    for step in ("map_create_array", "map_create_hash", "thread_map_create"):
        assert native_calls[step] == (0 if may_create else errno.EPERM), step
    assert native_calls["main_map_create"] == 0  # the other thread's credentials are root's
    bad_size = errno.EINVAL if at_entry == NONE else errno.EPERM
    assert native_calls["map_create_no_entries"] == bad_size
    assert native_calls["map_create_no_value"] == bad_size
    for step in ("update", "lookup", "delete"):  # the map fd is the permission
        assert native_calls[step] == (errno.EPERM if at_entry == EVERY else 0), step
    assert native_calls["get_next_key"] == (errno.EPERM if at_entry == EVERY else errno.ENOENT)
    assert native_calls["load"] == (0 if bpf and perfmon else errno.EPERM)
    perf_refused = perf_restricted(sysctl("perf_event_paranoid", 2)) and \
        not caps & 1 << CAP_SYS_ADMIN
    assert native_calls["attach"] == (errno.EPERM if not (bpf and perfmon)
                                      else errno.EACCES if perf_refused else 0)


@pytest.mark.kernel
def test_trace_names_the_missing_capability(run_cli: Run, c_program: Callable[..., Path],
                                            legacy_objects: dict[str, Path]) -> None:
    program = c_program("privileges")
    proc = run_cli("--trace", "--", program, "legacy", str(NOBODY), f"{1 << CAP_BPF:x}",
                   legacy_objects["map"])
    assert _calls(proc)["load"] == errno.EPERM
    assert "BPF_PROG_LOAD of program type 5 needs CAP_PERFMON and the caller (uid 65534, " \
           "CapEff 0x8000000000) lacks it" in proc.stderr
    assert "= -EPERM" in proc.stderr


def test_credentials_rules() -> None:
    nobody = Credentials(1, NOBODY, 0)
    with pytest.raises(OSError) as refused:
        nobody.check_map_create(2)
    assert refused.value.errno == errno.EPERM
    nobody.check_map_create(0)  # HASH and ARRAY are unprivileged types
    with pytest.raises(OSError):
        nobody.check_prog_load(5, 0)
    nobody.check_prog_load(1, 0)  # SOCKET_FILTER needs nothing with the sysctl at 0
    with pytest.raises(OSError):
        nobody.check_prog_load(1, 1)
    bpf_only = Credentials(1, NOBODY, 1 << CAP_BPF)
    bpf_only.check_prog_load(31, 2)  # SYSCALL: CAP_BPF alone
    for prog_type, cap in ((5, "CAP_PERFMON"), (6, "CAP_NET_ADMIN"), (28, "CAP_NET_ADMIN")):
        with pytest.raises(OSError, match=cap):
            bpf_only.check_prog_load(prog_type, 2)
    Credentials(1, NOBODY, 1 << CAP_BPF | 1 << CAP_NET_ADMIN).check_prog_load(6, 2)
    admin = Credentials(1, 0, 1 << CAP_SYS_ADMIN)
    for prog_type in (2, 5, 6, 26, 28):
        admin.check_prog_load(prog_type, 2)
    with pytest.raises(OSError) as perf:
        bpf_only.check_perf_event_open(True, -1)
    assert perf.value.errno == errno.EACCES
    bpf_only.check_perf_event_open(False, 0)
    with pytest.raises(OSError):
        bpf_only.check_perf_event_open(False, 1)
    # capabilities held in another user namespace do not count for capable()
    elsewhere = Credentials(1, 0, (1 << 41) - 1, same_userns=False)
    assert not elsewhere.bpf_token_capable(CAP_BPF)
    with pytest.raises(OSError):
        elsewhere.check_map_create(1)


def _in_another_user_namespace() -> subprocess.Popen[bytes]:
    """A ``sleep`` in a new user namespace.  The kernel refuses CLONE_NEWUSER to a chrooted
    caller (a freshly made Debian root entered with chroot is one), so there the child first
    returns to init's root directory."""
    commands = [["unshare", "--user", "--map-root-user", "sleep", "30"]]
    try:
        if os.stat("/") != os.stat("/proc/1/root"):
            commands.append(["chroot", "/proc/1/root", *commands[0]])
    except OSError:
        pass  # init's root is out of reach here: the plain unshare is all there is
    for command in commands:
        proc = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        for _ in range(250):  # until unshare has exec'd sleep in the new namespace
            try:
                if os.readlink(f"/proc/{proc.pid}/ns/user") != os.readlink("/proc/self/ns/user"):
                    return proc
            except OSError:
                pass
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        proc.kill()
        proc.wait()
    pytest.skip("no user namespace can be created here (unshare --user refused)")


def test_read_credentials_of_a_thread_in_another_user_namespace() -> None:
    proc = _in_another_user_namespace()
    try:
        creds = read_credentials(proc.pid, proc.pid)
        assert not creds.same_userns
        assert creds.cap_eff & 1 << CAP_SYS_ADMIN  # full capabilities, in its own namespace
        assert not creds.capable(CAP_SYS_ADMIN)
        mine = read_credentials(os.getpid(), os.getpid())
        assert mine.same_userns and mine.uid == os.geteuid()
    finally:
        proc.kill()
        proc.wait()
    with pytest.raises(OSError) as gone:
        read_credentials(proc.pid, proc.pid)
    assert gone.value.errno == errno.ESRCH
