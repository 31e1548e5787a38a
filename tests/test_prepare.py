"""The three states of an object: opened -> prepared -> loaded (``Object.prepare()``, libbpf's
``bpf_object__prepare``, libbpf >= 1.6).

``prepare()`` creates the maps without loading the programs, so between the two a map can be
filled before any program runs, and ``.data``/``.bss`` are the kernel's memory; ``.rodata`` is
frozen already.  What needs the maps absent (map setters, initial values) or the programs
loaded (program fds, attach) says which state the object is in.  Programs:
``tests/bpf/prepare.bpf.c``.
"""

from __future__ import annotations

import errno
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pylibbpf import BpfError, Object, StateError
from tests.support.attach import getpid_loop
from tests.support.bpfbuild import compile_bpf


@pytest.fixture
def obj() -> Iterator[Object]:
    with Object.open_file(compile_bpf("prepare.bpf.c")) as opened:
        yield opened


def test_an_opened_object_has_no_map_fds(obj: Object) -> None:
    assert obj.state == "opened" and not obj.prepared and not obj.loaded
    steps = obj.maps["steps"]
    with pytest.raises(StateError, match=r"no fd before load\(\) \(or prepare\(\)") as info:
        steps.fd  # noqa: B018
    assert info.value.errno == errno.EINVAL
    with pytest.raises(StateError, match="prepare"):
        steps[0] = 1
    with pytest.raises(StateError, match="prepare"):
        obj.pin_maps("/sys/fs/bpf/never")
    assert repr(obj).startswith("<Object 'prepare' opened")


@pytest.mark.needs("tracepoint", "libbpf>=1.6")
def test_maps_are_usable_between_prepare_and_load(obj: Object) -> None:
    obj.rodata["scale"] = 3
    obj.bss["total"] = 100            # libbpf's image: copied into the map by prepare()
    obj.prepare()
    assert obj.state == "prepared" and obj.prepared and not obj.loaded
    assert repr(obj).startswith("<Object 'prepare' prepared")

    # the maps exist: fds, elements, global data in the kernel's memory
    steps = obj.maps["steps"]
    fd = steps.fd
    assert fd >= 0 and steps.info().name == "steps"
    steps[0] = 7
    assert int.from_bytes(steps[0], sys.byteorder) == 7
    assert obj.bss.get_int("total") == 100
    obj.data["target_tgid"] = os.getpid()
    assert obj.rodata.get_int("scale") == 3

    # .rodata is frozen by prepare(): neither its variables nor its map element can change
    assert obj.rodata.readonly
    with pytest.raises(StateError, match=r"read-only after load \(and prepare\(\)\).*is "
                       r"prepared") as info:
        obj.rodata["scale"] = 4
    assert info.value.errno == errno.EPERM
    rodata = obj.find_map_by_name(".rodata")
    with pytest.raises(BpfError) as raised:
        rodata[0] = rodata[0]
    assert raised.value.errno == errno.EPERM

    # map definitions are settled
    for change in (lambda: steps.set_max_entries(2), lambda: steps.set_value_size(16),
                   obj.maps[".bss" if ".bss" in obj.maps else "prepare.bss"].initial_value_buffer):
        with pytest.raises(StateError, match=r"before prepare\(\), which creates the maps\); "
                           r"object 'prepare' is already prepared") as info:
            change()
        assert info.value.errno == errno.EBUSY

    # the programs are not loaded yet, and can still be configured
    prog = obj.programs["on_getpid"]
    prog.set_log_level(1)
    with pytest.raises(StateError, match="no fd before load"):
        prog.fd  # noqa: B018
    with pytest.raises(StateError, match="only prepared"):
        obj.attach()
    with pytest.raises(StateError, match="only prepared"):
        prog.attach()
    with pytest.raises(StateError, match="already prepared"):
        obj.prepare()

    # pinning the maps works once they exist
    pins = Path("/sys/fs/bpf") / f"pylibbpf-prepare-{uuid.uuid4().hex[:8]}"
    obj.pin_maps(pins)
    try:
        assert (pins / "steps").exists()
    finally:
        obj.unpin_maps(pins)
        pins.rmdir()

    # load() keeps the maps (same fd, same contents) and loads the program that reads them
    obj.load()
    assert obj.state == "loaded" and steps.fd == fd
    assert int.from_bytes(steps[0], sys.byteorder) == 7
    with prog.attach():
        getpid_loop(4)
    assert obj.bss.get_int("total") == 100 + 4 * 7 * 3
