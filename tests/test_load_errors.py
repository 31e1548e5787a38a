"""A failed load says what failed and libbpf's reason, with no logging configured.

libbpf reports why a load failed only through its print callback (C programs see it on
stderr); pylibbpf collects those lines during ``load()`` and puts the relevant ones into the
exception.  Each case is ``tests/bpf/load_errors.bpf.c`` built with one ``-D`` flag, so the
failure is libbpf's or the kernel's own.
"""

from __future__ import annotations

import errno
import logging

import pytest

from pylibbpf import BpfError, Object, VerifierError
from pylibbpf.load_errors import _libbpf_reasons
from tests.support.bpfbuild import compile_bpf

pytestmark = pytest.mark.needs("tracepoint")


def load_failure(flag: str, caplog: pytest.LogCaptureFixture) -> BpfError:
    """Load the variant ``-D<flag>`` and return what it raised; libbpf's logger stays quiet
    (as it is in a program that never configured logging)."""
    caplog.set_level(logging.CRITICAL, logger="pylibbpf")
    with Object.open_file(compile_bpf("load_errors.bpf.c", cflags=(f"-D{flag}",))) as obj:
        with pytest.raises(BpfError) as info:
            obj.load()
    return info.value


def test_a_map_without_max_entries_is_named(caplog: pytest.LogCaptureFixture) -> None:
    err = load_failure("NO_MAX_ENTRIES", caplog)
    assert err.errno == errno.EINVAL
    message = str(err)
    assert message.startswith("failed to load BPF object 'load_errors': ")
    assert "map 'start': failed to create" in message
    assert "its max_entries is 0" in message
    assert "Retrying without BTF" not in message  # libbpf's retry is not the reason
    assert len(message.splitlines()) == 1


def test_a_failed_core_relocation_is_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    err = load_failure("BAD_CORE", caplog)
    assert isinstance(err, VerifierError)
    assert err.program == "on_getpid"
    head = str(err).splitlines()[0]
    assert head.startswith("the verifier rejected program 'on_getpid' of object 'load_errors'"
                           ": failed to resolve CO-RE relocation")
    assert "task_struct___pylibbpf.pylibbpf_no_such_field" in head
    assert "<invalid CO-RE relocation>" in err.log  # the whole log still travels


def test_an_unknown_kfunc_is_named(caplog: pytest.LogCaptureFixture) -> None:
    message = str(load_failure("BAD_KSYM", caplog))
    assert "'pylibbpf_no_such_kfunc'" in message
    assert "not found in kernel" in message


def test_an_unknown_kconfig_option_is_named(caplog: pytest.LogCaptureFixture) -> None:
    message = str(load_failure("BAD_KCONFIG", caplog))
    assert "extern 'CONFIG_PYLIBBPF_NO_SUCH_OPTION'" in message
    assert "not resolved" in message


def test_an_unknown_attach_target_is_named(caplog: pytest.LogCaptureFixture) -> None:
    """fentry's target is resolved in the kernel's BTF before the program is loaded, so this
    fails the same way where the kernel refuses fentry programs (lockdown)."""
    err = load_failure("BAD_TARGET", caplog)
    assert err.errno == errno.ESRCH
    message = str(err)
    assert "prog 'on_entry'" in message
    assert "'pylibbpf_no_such_function'" in message
    assert "failed to load object" not in message  # libbpf's summary adds nothing


def test_a_verifier_rejection_still_carries_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="pylibbpf")
    with Object.open_file(compile_bpf("rejected.bpf.c")) as obj:
        with pytest.raises(VerifierError) as info:
            obj.load()
    err = info.value
    assert err.program == "unchecked_lookup"
    assert str(err).startswith("the verifier rejected program 'unchecked_lookup' of object "
                               "'rejected': ")
    assert "invalid mem access 'map_value_or_null'" in str(err)
    assert len(err.log.splitlines()) > 1000


def test_the_reasons_are_a_few_lines_not_the_log() -> None:
    reasons = _libbpf_reasons(
        "libbpf: map 'a': Error in bpf_create_map_xattr(a):E2BIG. Retrying without BTF.\n"
        "libbpf: first\nlibbpf: second\nlibbpf: third\nlibbpf: second\n"
        "libbpf: prog 'p': -- BEGIN PROG LOAD LOG --\n0: (b7) r0 = 0\n"
        "-- END PROG LOAD LOG --\n"
        "libbpf: prog 'p': failed to load: -22\nlibbpf: failed to load object 'x'\n")
    assert reasons == ["first", "second", "third"]
