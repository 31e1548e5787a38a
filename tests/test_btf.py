"""pylibbpf.btf: an object's BTF from libbpf, parsed once; the kernel's BTF through libbpf,
decoded type by type with the same decoder as pylibbpf.elf.Btf."""

from __future__ import annotations

import ctypes
import errno
import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pylibbpf import BpfError, ClosedError, Object, _ffi
from pylibbpf.btf import KernelBtf, object_btf
from pylibbpf.elf import Btf, BtfKind, ObjectFile
from pylibbpf.typed import btf_of
from tests.support import features
from tests.support.bpfbuild import compile_bpf

VMLINUX = Path("/sys/kernel/btf/vmlinux")
needs_vmlinux_btf = pytest.mark.skipif(not VMLINUX.exists(),
                                       reason="the kernel has no BTF (CONFIG_DEBUG_INFO_BTF)")


@pytest.fixture
def infer() -> Iterator[Object]:
    with Object.open_file(compile_bpf("events_infer.bpf.c")) as obj:
        yield obj


def test_object_btf_is_parsed_once_per_object(infer: Object) -> None:
    btf = object_btf(infer)
    assert object_btf(infer) is btf and btf_of(infer) is btf
    elf = ObjectFile.from_bytes(infer.elf_bytes(), name=infer.name).btf
    assert elf is not None
    # libbpf fixed up the DATASECs at open; every other type is the ELF's
    assert [t for t in btf.types if t.kind not in (BtfKind.DATASEC, BtfKind.VAR)] == [
        t for t in elf.types if t.kind not in (BtfKind.DATASEC, BtfKind.VAR)]
    with Object.open_file(compile_bpf("events_infer.bpf.c")) as other:
        assert object_btf(other) is not btf
        assert object_btf(other).types == btf.types


def test_object_btf_is_parsed_again_when_libbpf_changes_it(infer: Object) -> None:
    before = object_btf(infer)
    assert before.find("pyl_note", BtfKind.STRUCT) is not None
    # rename the struct in libbpf's own copy, as a BTF-editing call would
    handle = _ffi.lib().bpf_object__btf(infer._p)
    size = ctypes.c_uint32(0)
    address = _ffi.lib().btf__raw_data(handle, ctypes.byref(size))
    raw = ctypes.string_at(address, size.value)
    at = raw.index(b"\0pyl_note\0") + 1
    ctypes.memmove(address + at, b"x", 1)
    after = object_btf(infer)
    assert after is not before
    assert after.find("xyl_note", BtfKind.STRUCT) is not None
    assert after.find("pyl_note", BtfKind.STRUCT) is None


def test_object_btf_of_an_object_without_btf() -> None:
    nobtf = Path(__file__).resolve().parent / "elf" / "bpf" / "elf_nobtf.bpf.c"
    with Object.open_file(compile_bpf(nobtf, btf=False)) as obj:
        with pytest.raises(BpfError) as exc:
            object_btf(obj)
        assert exc.value.errno == errno.ENOENT and "has no BTF" in str(exc.value)


def test_the_cache_does_not_keep_objects_alive() -> None:
    import weakref

    obj = Object.open_file(compile_bpf("events_infer.bpf.c"))
    object_btf(obj)
    ref = weakref.ref(obj)
    obj.close()
    del obj
    gc.collect()
    assert ref() is None


@pytest.fixture(scope="module")
def vmlinux() -> Btf:
    """The whole vmlinux BTF parsed in Python, to compare libbpf's lookups with."""
    return Btf.from_bytes(VMLINUX.read_bytes())


@needs_vmlinux_btf
def test_kernel_types_decode_as_the_python_parser_does(vmlinux: Btf) -> None:
    with KernelBtf.vmlinux() as kernel:
        assert len(kernel) == len(vmlinux)
        assert repr(kernel) == f"<KernelBtf 'vmlinux' ({len(vmlinux)} types)>"
        for type_id in [*range(0, len(vmlinux), 997), len(vmlinux) - 1]:
            assert kernel.type_by_id(type_id) == vmlinux.types[type_id]
        for name, kind in [("vfs_read", BtfKind.FUNC), ("task_struct", BtfKind.STRUCT),
                           ("u32", BtfKind.TYPEDEF), ("bpf_prog_type", BtfKind.ENUM)]:
            found = kernel.find(name, kind)
            assert found is not None and found == vmlinux.find(name, kind)
        assert kernel.find("task_struct") == vmlinux.find("task_struct")
        assert kernel.find("no_such_type_anywhere") is None
        assert kernel.find("vfs_read", BtfKind.STRUCT) is None
        u32 = kernel.find("u32", BtfKind.TYPEDEF)
        assert u32 is not None and kernel.resolve(u32) == vmlinux.resolve(u32.id)
        assert kernel.resolve(u32.id).kind == BtfKind.INT
        with pytest.raises(ValueError, match="has no type id"):
            kernel.type_by_id(len(vmlinux))
        assert Btf.from_bytes(kernel.raw_data()).types[-1] == vmlinux.types[-1]


@needs_vmlinux_btf
def test_a_function_prototype_from_kernel_btf() -> None:
    with KernelBtf.vmlinux() as kernel:
        func = kernel.find("vfs_read", BtfKind.FUNC)
        assert func is not None
        proto = kernel.type_by_id(func.type_id or 0)
        assert proto.kind == BtfKind.FUNC_PROTO
        assert [p.name for p in proto.params] == ["file", "buf", "count", "pos"]
        file_ptr = kernel.type_by_id(proto.params[0].type_id)
        assert file_ptr.kind == BtfKind.PTR
        assert kernel.resolve(file_ptr.type_id or 0).name == "file"


@needs_vmlinux_btf
def test_closed_kernel_btf_refuses_lookups() -> None:
    kernel = KernelBtf.vmlinux()
    kernel.close()
    kernel.close()
    assert kernel.closed and repr(kernel) == "<KernelBtf 'vmlinux' (closed)>"
    with pytest.raises(ClosedError):
        kernel.find("vfs_read")
    with pytest.raises(ClosedError):
        len(kernel)


@needs_vmlinux_btf
def test_btf_of_a_module_not_loaded_is_enoent() -> None:
    with pytest.raises(BpfError, match="kernel module 'no_such_module'") as exc:
        KernelBtf.module("no_such_module")  # the vmlinux loaded for it is freed: no warning
    assert exc.value.errno == errno.ENOENT


@pytest.mark.needs("module_btf")
def test_module_btf() -> None:
    modules = features.module_btf_names()
    with KernelBtf.vmlinux() as base:
        module = KernelBtf.module(modules[0], base)
        with module:
            assert len(module) > len(base)
            last = module.type_by_id(len(module) - 1)
            assert module.find(last.name, last.kind) is not None if last.name else True
            assert module.type_by_id(1) == base.type_by_id(1)
        base.close()
        with pytest.raises(ClosedError):
            module.find("x")


def test_no_ctypes_in_the_pure_halves() -> None:
    import subprocess

    code = ("import sys, pylibbpf.elf.codec, pylibbpf.elf.records, pylibbpf.elf.btftypes\n"
            "print('ctypes' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, check=True)
    assert done.stdout.strip() == "False"
