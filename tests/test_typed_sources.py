"""Types from C text, headers, ctypes and NumPy, decoded by the one codec (no kernel needed)."""

from __future__ import annotations

import ctypes
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from pylibbpf.elf.codec import FieldError
from pylibbpf.elf.csource import CompileError, declared_names
from pylibbpf.typed import Types, offsetof, sizeof, type_codec

needs_clang = pytest.mark.skipif(shutil.which("clang") is None, reason="clang not installed")

EVENT_C = """
#define ARGS 32
struct hdr { __u32 pid; __s16 prio; };
struct event {
    struct hdr hdr;
    _Bool on;
    union { __u32 word; __u8 bytes[4]; };
    unsigned char kind : 3, spare : 5;
    char comm[8];
    __u32 args_size;
    char args[ARGS];
};
struct flex { __u32 n; __u16 vals[]; };
typedef struct hdr hdr_t;
enum color { RED = 1, BLUE = 4 };
"""


class Hdr(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint32), ("prio", ctypes.c_int16)]


class Word(ctypes.Union):
    _fields_ = [("word", ctypes.c_uint32), ("bytes", ctypes.c_uint8 * 4)]


class Event(ctypes.Structure):
    _anonymous_ = ("u",)
    _fields_ = [("hdr", Hdr), ("on", ctypes.c_bool), ("u", Word),
                ("kind", ctypes.c_uint8, 3), ("spare", ctypes.c_uint8, 5),
                ("comm", ctypes.c_char * 8), ("args_size", ctypes.c_uint32),
                ("args", ctypes.c_char * 32)]


VALUE = {"hdr": {"pid": 42, "prio": -3}, "on": True, "word": 0x04030201,
         "bytes": [1, 2, 3, 4], "kind": 5, "spare": 17, "comm": "bash", "args_size": 6,
         "args": "ls"}


def sample(args: bytes = b"ls\0-l\0") -> bytes:
    e = Event(hdr=Hdr(42, -3), on=True, kind=5, spare=17, comm=b"bash", args_size=6)
    ctypes.memmove(ctypes.addressof(e) + Event.args.offset, args, len(args))
    e.word = 0x04030201
    return bytes(e)


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


@needs_clang
def test_c_text_ctypes_and_btf_decode_alike() -> None:
    types = Types.from_c(EVENT_C)
    assert {"struct event", "struct flex", "hdr_t", "enum color"} <= set(types.names())
    c = types["struct event"]
    raw = sample(b"ls")
    assert c.size == ctypes.sizeof(Event) == len(raw)
    assert c.decode(raw) == VALUE
    assert c.encode(VALUE) == raw
    from_ctypes = type_codec(Event)
    assert from_ctypes.size == c.size and from_ctypes.decode(raw) == VALUE
    assert from_ctypes.encode(VALUE) == raw
    assert types["hdr_t"].decode(raw[:8]) == {"pid": 42, "prio": -3}
    assert types["enum color"].decode(struct.pack("=I", 4)).name == "BLUE"
    assert "struct nope" not in types
    with pytest.raises(KeyError, match="struct nope.*struct event"):
        types["struct nope"]


@needs_clang
def test_header_with_includes_and_the_cache(tmp_path: Path) -> None:
    inc = tmp_path / "inc"
    inc.mkdir()
    (inc / "sizes.h").write_text("#define NAME_LEN 8\n")
    header = tmp_path / "ev.h"
    header.write_text('#include "sizes.h"\ntypedef unsigned int u32;\n'
                      "struct rec { u32 id; char name[NAME_LEN]; };\n")
    types = Types.from_header(header, include_dirs=[inc])
    assert types.sizeof("struct rec") == 12
    # cached: no clang needed the second time
    again = Types.from_header(header, include_dirs=[inc], clang="no-such-clang-binary")
    assert again.sizeof("struct rec") == 12
    # an included header changed: compiled again
    (inc / "sizes.h").write_text("#define NAME_LEN 16\n")
    assert Types.from_header(header, include_dirs=[inc]).sizeof("struct rec") == 20
    assert Types.from_header(header, "struct rec", include_dirs=[inc]).names() == [
        "struct rec", "u32"]


@needs_clang
def test_header_using_linux_types_without_including_them(tmp_path: Path) -> None:
    """A libbpf-tools header (opensnoop.h) uses __u32... and includes nothing: the .bpf.c
    includes vmlinux.h first.  from_header declares them, as from_c does."""
    header = tmp_path / "tool.h"
    header.write_text("#define NAME 4\nstruct event { __u64 ts; __s32 ret; char n[NAME]; };\n")
    types = Types.from_header(header)
    assert "struct event" in types.names()
    assert types.sizeof("struct event") == 16 and types.offsetof("struct event", "n") == 12
    with pytest.raises(CompileError, match="unknown type name '__u64'"):
        Types.from_header(header, linux_types=False)


def test_missing_clang_names_the_package() -> None:
    with pytest.raises(FileNotFoundError, match="'clang' package"):
        Types.from_c("struct only_here_once { int a; };", clang="no-such-clang-binary")


@needs_clang
def test_c_errors_carry_the_diagnostics() -> None:
    with pytest.raises(CompileError, match="unknown type name 'nope'") as info:
        Types.from_c("struct bad { nope a; };")
    assert "error" in info.value.diagnostics
    with pytest.raises(ValueError, match="declares no struct"):
        Types.from_c("#define X 1")


def test_declared_names() -> None:
    src = """/* struct commented { int x; }; */
    #define M(x) struct macro_##x { int a; }
    typedef unsigned long long u64, *u64p;
    typedef struct { int a; } anon_t;
    typedef int (*callback_t)(int, char *);
    typedef char name_t[16];
    struct outer { struct inner { int x; } in; };
    union u { int a; };
    enum e { A };
    """
    assert declared_names(src) == ["struct outer", "struct inner", "union u", "enum e",
                                   "u64", "u64p", "anon_t", "callback_t", "name_t"]


def test_numpy_dtype_decodes_like_the_array() -> None:
    dt = np.dtype([("pid", "<u4"), ("comm", "S6"), ("v", [("a", "<i2"), ("ok", "?")]),
                   ("m", "<f8", (2, 2))], align=True)
    row = np.zeros(1, dt)
    row[0]["pid"], row[0]["comm"] = 7, b"sh"
    row[0]["v"]["a"], row[0]["v"]["ok"] = -4, True
    row[0]["m"] = [[1.5, 2], [3, 4]]
    c = type_codec(dt)
    assert c.size == dt.itemsize
    value = c.decode(row.tobytes())
    assert value == {"pid": 7, "comm": "sh", "v": {"a": -4, "ok": True},
                     "m": [[1.5, 2.0], [3.0, 4.0]]}
    assert c.encode(value) == row.tobytes()
    assert Types.from_dtype(dt, "rec").numpy_dtype("struct rec").itemsize == dt.itemsize


def test_ctypes_refusals() -> None:
    class Big(ctypes.BigEndianStructure):
        _fields_ = [("a", ctypes.c_uint32)]

    with pytest.raises(ValueError, match="byte order"):
        type_codec(Big)
    with pytest.raises(TypeError, match="cannot make a codec"):
        type_codec(3.5)
    with pytest.raises(ValueError, match="needs the BTF"):
        type_codec("struct event")


def test_variable_length_records() -> None:
    c = type_codec(Event)
    prefix = Types.from_ctypes(Event).offsetof("Event", "args")
    assert c.min_size == prefix == ctypes.sizeof(Event) - 32
    raw = sample()
    short = c.decode(raw[:prefix + 6])  # a record sent only as far as args_size
    assert short["args"] == b"ls\0-l\0"
    assert {k: v for k, v in short.items() if k != "args"} == {
        k: v for k, v in VALUE.items() if k != "args"}
    assert c.decode(raw[:prefix])["args"] == b""
    with pytest.raises(ValueError, match=rf"at least {prefix}"):
        c.decode(raw[:prefix - 1])


@needs_clang
def test_flexible_array_member() -> None:
    c = Types.from_c(EVENT_C, "struct flex")["struct flex"]
    assert c.size == c.min_size == 4
    assert c.decode(struct.pack("=I3H", 3, 10, 20, 30)) == {"n": 3, "vals": [10, 20, 30]}
    assert c.decode(struct.pack("=IHB", 1, 9, 0)) == {"n": 1, "vals": [9]}  # whole elements
    assert c.decode(struct.pack("=I", 0)) == {"n": 0, "vals": []}


@needs_clang
def test_offsetof_and_sizeof() -> None:
    types = Types.from_c(EVENT_C)
    assert sizeof(types, "struct event") == ctypes.sizeof(Event)
    assert offsetof(types, "struct event", "hdr.prio") == 4
    assert offsetof(types.btf, "struct event", "word") == Event.u.offset  # anonymous union
    assert offsetof(types, "struct event", "bytes[2]") == Event.u.offset + 2
    assert offsetof(types, "struct event", "args") == Event.args.offset
    assert offsetof(types, "struct event", "args[3]") == Event.args.offset + 3
    with pytest.raises(KeyError, match="no member 'hdr.nope'"):
        types.offsetof("struct event", "hdr.nope")
    with pytest.raises(ValueError, match="bitfield"):
        types.offsetof("struct event", "kind")
    with pytest.raises(ValueError, match="past"):
        types.offsetof("struct event", "comm[8]")
    with pytest.raises(ValueError, match="not an array"):
        types.offsetof("struct event", "on[1]")


def test_typed_writes_range_check_and_name_the_field() -> None:
    c = type_codec(Event)
    with pytest.raises(FieldError, match=r"^hdr\.prio: 40000 does not fit short") as info:
        c.encode({"hdr": {"prio": 40000}})
    assert info.value.field == "hdr.prio"
    with pytest.raises(FieldError, match="^on: bool needs True or False, not 5"):
        c.encode({"on": 5})
    with pytest.raises(FieldError, match="^kind: 8 does not fit 3 bits"):
        c.encode({"kind": 8})
    with pytest.raises(FieldError, match=r"^bytes\[2\]: 256 does not fit"):
        c.encode({"bytes": [0, 0, 256]})
    with pytest.raises(FieldError, match="^comm: 9 bytes do not fit char"):
        c.encode({"comm": "x" * 9})
    assert c.decode(c.encode({"comm": b"12345678"}))["comm"] == "12345678"
    with pytest.raises(ValueError, match="needs an int"):
        c.encode({"args_size": 1.0})
