"""The suite's own rule: with CI=true a skipped kernel test fails the run, except a `needs`
skip for a feature this kernel is not expected to have (the VM tiers run those, and a kernel
whose security policy refuses it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import pylibbpf
from tests.support import features
from tests.support.bpfbuild import compile_bpf

TESTS = Path(__file__).resolve().parent

INNER = '''
import pytest

@pytest.mark.kernel
def test_kernel_skip():
    pytest.skip("something missing")

def test_plain_skip():
    pytest.skip("not a kernel test")

@pytest.mark.needs("bpf")
def test_needs_expected_feature():
    pass
'''


def run_inner(tmp_path: Path, ci: str, tests: str = INNER, refuse: str = ""
              ) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text((TESTS / "conftest.py").read_text())
    (tmp_path / "test_inner.py").write_text(tests)
    # the copied conftest imports its helpers from this checkout's tests.support
    env = {**os.environ, "CI": ci, features.REFUSE_ENV: refuse,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS.parent),
                                                        os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           "-o", "markers=kernel\nneeds(*f)", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def test_ci_turns_kernel_skips_into_failures(tmp_path: Path) -> None:
    proc = run_inner(tmp_path, "true")
    assert "1 failed" in proc.stdout, proc.stdout
    assert "kernel test skipped in CI" in proc.stdout
    assert "1 skipped" in proc.stdout  # the plain skip stays a skip
    assert "1 passed" in proc.stdout


def test_outside_ci_kernel_skips_stay_skips(tmp_path: Path) -> None:
    proc = run_inner(tmp_path, "")
    assert "2 skipped" in proc.stdout and "failed" not in proc.stdout, proc.stdout


# --- a kernel that refuses a feature -----------------------------------------------------------
# PYLIBBPF_TEST_REFUSE makes the raw-syscall probes answer EPERM (what lockdown or an LSM says)
# and compiles the programs concerned so that the verifier really rejects them.

REFUSED_INNER = '''
import pytest

@pytest.mark.needs("iter_map_elem")
def test_needs_a_refused_feature():
    raise AssertionError("must not run: the probe said the kernel refuses it")

@pytest.mark.needs("iter_task")
def test_needs_a_feature_the_kernel_has():
    pass
'''


@pytest.mark.kernel
def test_a_policy_refusal_skips_in_ci_with_its_reason(tmp_path: Path) -> None:
    proc = run_inner(tmp_path, "true", REFUSED_INNER, refuse="iter_map_elem")
    assert "1 passed, 1 skipped" in proc.stdout, proc.stdout
    assert "iter_map_elem: refused by the kernel's security policy (EPERM" in proc.stdout


def answer_with(reason: str) -> Callable[[], str | None]:
    """A stand-in probe that always gives ``reason``."""
    return lambda: reason


@pytest.mark.kernel
def test_only_a_policy_refusal_makes_a_feature_unexpected(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """EPERM from the raw probe: skip; any other refusal on a kernel new enough: fail (the
    probe, or the test's idea of the kernel, is wrong)."""
    answers = {"policy": features.PolicyRefusal("loading fails: EPERM"),
               "other": "loading fails: EINVAL"}
    features._probe.cache_clear()
    features.missing.cache_clear()
    real = features.missing("iter_map_elem")  # None, or this build's own refusal
    try:
        for kind, answer in answers.items():
            monkeypatch.setitem(features.PROBES, "iter_map_elem", answer_with(answer))
            features._probe.cache_clear()
            features.missing.cache_clear()
            assert features.missing("iter_map_elem") == answer
            assert features.expected("iter_map_elem") is (kind == "other"), kind
    finally:
        monkeypatch.undo()
        features._probe.cache_clear()
        features.missing.cache_clear()
    # this kernel, really probed again (some builds refuse iter/bpf_map_elem under lockdown)
    assert features.missing("iter_map_elem") == real


def assert_only_refused_features_skip(output: str, refused: tuple[str, ...]) -> None:
    """pytest ``-rs`` output: every skip names one of ``refused`` as refused by the kernel's
    policy, each of them skipped at least one test, and the skips add up to the summary's."""
    summary = output.strip().splitlines()[-1]
    total = re.fullmatch(r"\d+ passed, (\d+) skipped in .*", summary)
    assert total, output[-3000:]
    skips = re.findall(r"^SKIPPED \[(\d+)\] [^:]+:\d+: (.*)$", output, re.M)
    by_feature: dict[str, int] = {}
    for count, reason in skips:
        feature = reason.split(":", 1)[0]
        assert feature in refused and "refused by the kernel's security policy (EPERM" in reason, \
            f"a test skipped for another reason: {reason}"
        by_feature[feature] = by_feature.get(feature, 0) + int(count)
    assert set(by_feature) == set(refused), output[-3000:]
    assert sum(by_feature.values()) == int(total.group(1)), output[-3000:]


@pytest.mark.kernel
def test_a_refused_program_costs_only_the_tests_that_use_it() -> None:
    """The whole attach suite on a kernel that refuses both iterator types: the iterator tests
    skip with the reason, every other test of the shared object passes."""
    env = {**os.environ, "CI": "true", features.REFUSE_ENV: "iter_map_elem,iter_task"}
    # the simulated kernel really refuses them: loading every program of the object fails
    obj = pylibbpf.Object.open_file(compile_bpf(
        "attach_trace.bpf.c", cflags=("-DREFUSE_ITER_MAP_ELEM", "-DREFUSE_ITER_TASK")))
    try:
        with pytest.raises(pylibbpf.VerifierError) as refused:
            obj.load()
        assert "dump_" in str(refused.value)
    finally:
        obj.close()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           "tests/test_attach_trace.py", "tests/test_links.py"],
                          capture_output=True, text=True, env=env, cwd=TESTS.parent, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert_only_refused_features_skip(proc.stdout, ("iter_map_elem", "iter_task"))


@pytest.mark.kernel
def test_a_refused_tp_btf_or_net_type_costs_only_the_tests_that_use_it() -> None:
    """The map, global-data, object and network tests on a kernel that refuses tp_btf and
    sk_lookup: the tests loading those programs skip with the reason, all the others (the map
    and global-data tests too, though counters.bpf.c has a tp_btf program) pass."""
    env = {**os.environ, "CI": "true", features.REFUSE_ENV: "tp_btf,sk_lookup"}
    # the simulated kernel really refuses them: loading every program of either object fails
    for src, flag, refused_prog in (("counters.bpf.c", "-DREFUSE_TP_BTF", "count_btf"),
                                    ("attach_net.bpf.c", "-DREFUSE_SK_LOOKUP", "lookup_count")):
        obj = pylibbpf.Object.open_file(compile_bpf(src, cflags=(flag,)))
        try:
            with pytest.raises(pylibbpf.VerifierError) as refused:
                obj.load()
            assert refused_prog in str(refused.value)
        finally:
            obj.close()
    files = ["tests/test_object.py", "tests/test_maps.py", "tests/test_lowlevel.py",
             "tests/test_errors.py", "tests/test_globals.py", "tests/hardening/test_resources.py",
             "tests/test_attach_net.py"]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           *files], capture_output=True, text=True, env=env, cwd=TESTS.parent,
                          timeout=600)
    summary = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 0, proc.stdout[-3000:]
    # tp_btf: test_object's two per-type tests for it, the custom BTF path, pinning every
    # program; sk_lookup: the two netns tests
    assert re.fullmatch(r"\d+ passed, 6 skipped in .*", summary), proc.stdout[-3000:]
    for feature, n in (("tp_btf", 4), ("sk_lookup", 2)):
        assert re.search(rf"^SKIPPED \[{n}\] tests/conftest.py:\d+: {feature}: refused by the "
                         rf"kernel's security policy \(EPERM", proc.stdout, re.M), proc.stdout
