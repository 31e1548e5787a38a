"""The exporter without a kernel: config checks, label decoders, per-CPU sums, histogram
buckets, and what the text exposition of a scrape looks like."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.core import Metric  # noqa: E402

from pylibbpf._ffi import syscall_names, syscalls  # noqa: E402
from pylibbpf.export import decoders  # noqa: E402
from pylibbpf.export.config import (  # noqa: E402
    ConfigError,
    HistogramSpec,
    MetricSpec,
    field_path,
    load_config,
    parse_config,
)
from pylibbpf.export.decoders import make_decoder  # noqa: E402
from pylibbpf.export.metrics import (  # noqa: E402
    bucket_bounds,
    build_family,
    cumulative_buckets,
    sum_per_cpu,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "exporter"


def _config(metrics: dict[str, Any], **obj: Any) -> dict[str, Any]:
    return {"objects": [{"name": "o", "object": "o.bpf.o", "metrics": metrics, **obj}]}


def _one(metrics: dict[str, Any]) -> MetricSpec | HistogramSpec:
    return parse_config(_config(metrics)).objects[0].metrics[0]


def _samples(family: Metric) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}


def _raise(exc: BaseException) -> None:
    raise exc


# ------------------------------------------------------------------------------ config

def test_example_configs_parse() -> None:
    names = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        config = load_config(path)
        (obj,) = config.objects
        built = obj.source or obj.object
        assert built is not None and built.exists()
        names[obj.name] = [m.name for m in obj.metrics]
    assert names == {"lathist": ["syscall_latency_seconds"],
                     "runqlat": ["runqueue_latency_seconds"], "syscalls": ["syscalls_total"]}


def test_json_config_needs_no_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"objects": [{"name": "o", "object": "x.o", "metrics": {"gauges": '
                    '[{"name": "g", "map": "m", "labels": [{"name": "pid", "field": "pid"}]}]}}]}')
    config = load_config(path)
    assert config.objects[0].object == tmp_path / "x.o"
    metric = config.objects[0].metrics[0]
    assert isinstance(metric, MetricSpec) and metric.kind == "gauge"
    assert metric.labels[0].field == "pid"


@pytest.mark.parametrize(("metrics", "message"), [
    ({"counters": [{"name": "c", "map": "m", "colour": 1}]}, "unknown key(s) 'colour'"),
    ({"counters": [{"name": "c"}]}, "'map' is required"),
    ({"counters": [{"name": "bad-name", "map": "m"}]}, "not a valid Prometheus metric name"),
    ({"counters": [{"name": "c", "map": "m", "labels": [{"name": "le"}]}]},
     "not a usable label name"),
    ({"counters": [{"name": "c", "map": "m", "labels": [{"name": "a"}, {"name": "a"}]}]},
     "appears twice"),
    ({"counters": [{"name": "c", "map": "m", "labels": [{"name": "a", "decoders": ["nope"]}]}]},
     "unknown decoder 'nope'"),
    ({"counters": [{"name": "c", "map": "m",
                    "labels": [{"name": "a", "decoders": [{"div": 0}]}]}]}, "positive integer"),
    ({"histograms": [{"name": "h", "map": "m"}]}, "either 'bucket'"),
    ({"histograms": [{"name": "h", "map": "m", "slots": "s", "bucket": "b"}]}, "either 'bucket'"),
    ({"histograms": [{"name": "h", "map": "m", "bucket": "b"}]}, "'buckets' (how many)"),
    ({"histograms": [{"name": "h", "map": "m", "slots": "s", "bucket_type": "exp"}]},
     "'log2' or 'linear'"),
    ({"histograms": [{"name": "h", "map": "m", "slots": "s", "bucket_step": 5}]},
     "for linear histograms"),
    ({"counters": [{"name": "x", "map": "m"}], "gauges": [{"name": "x", "map": "m"}]},
     "both a counter and a gauge"),
    ({"summaries": []}, "unknown key(s) 'summaries'"),
])
def test_config_errors_name_the_place(metrics: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_config(metrics))
    assert message in str(info.value)
    assert "objects[0]" in str(info.value) or "metric 'x'" in str(info.value)


def test_config_object_errors() -> None:
    with pytest.raises(ConfigError, match="either 'object'"):
        parse_config({"objects": [{"name": "o"}]})
    with pytest.raises(ConfigError, match="first_of"):
        parse_config({"objects": [{"name": "o", "object": "x", "programs": [{"first_of": []}]}]})
    with pytest.raises(ConfigError, match="appears twice"):
        parse_config({"objects": [{"name": "o", "object": "x"}, {"name": "o", "object": "y"}]})
    with pytest.raises(ConfigError, match="'objects' is required"):
        parse_config({})


def test_field_paths() -> None:
    assert field_path("") == ()
    assert field_path("hdr.addr[2]") == ("hdr", "addr", 2)
    assert field_path("a[1][3].b") == ("a", 1, 3, "b")


# ------------------------------------------------------------------------------ decoders

def test_syscall_names_agree_with_the_numbers_pylibbpf_calls() -> None:
    table = syscall_names.NAMES["x86_64"]
    for name, number in syscalls.NUMBERS["x86_64"].items():
        assert table[number] == name
    assert (table[0], table[59], table[231], table[435]) == ("read", "execve", "exit_group",
                                                           "clone3")
    assert syscall_names.name(10_000, "x86_64") is None
    assert syscall_names.name(1, "sparc") is None


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the x86_64 table")
def test_syscall_decoder() -> None:
    decode = make_decoder("syscall", "d")
    assert decode(39) == "getpid" and decode(9999) == "9999"


@pytest.mark.parametrize(("spec", "value", "text"), [
    ("errno", -errno.ENOENT, "ENOENT"),
    ("errno", errno.EPERM, "EPERM"),
    ("errno", 4095, "4095"),
    ("ipv4", int.from_bytes(bytes([10, 1, 2, 3]), sys.byteorder), "10.1.2.3"),
    ("ipv4", [192, 168, 0, 1], "192.168.0.1"),
    ("ipv6", [0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [1], "2001:db8::1"),
    ("ipv6", [int.from_bytes(bytes([0x20, 1, 0xd, 0xb8]), sys.byteorder), 0, 0,
              int.from_bytes(bytes([0, 0, 0, 2]), sys.byteorder)], "2001:db8::2"),
    ("inet", [0] * 10 + [0xff, 0xff, 127, 0, 0, 1], "127.0.0.1"),
    ("inet", int.from_bytes(bytes([8, 8, 4, 4]), sys.byteorder), "8.8.4.4"),
    ("port", int.from_bytes((443).to_bytes(2, "big"), sys.byteorder), 443),
    ("cstring", "bash\0junk", "bash"),
    ("cstring", [ord("s"), ord("h"), 0, ord("x")], "sh"),
    ("cstring", b"sshd\0\0", "sshd"),
    ("majorminor", (8 << 20) | 16, "8:16"),
    ("majorminor", (259 << 20) | 1, "259:1"),
    ("hex", 255, "0xff"),
    ({"div": 20}, 65, 3),
    ({"mod": 20}, 65, 5),
    ({"static_map": {1: "read", 2: "write"}}, 2, "write"),
    ({"static_map": {1: "read"}}, 7, 7),
    ({"name": "static_map", "static_map": {1: "read"}, "default": "other"}, 7, "other"),
    ({"name": "static_map", "static_map": {1: "read"}, "drop_unknown": True}, 7, None),
    ({"name": "static_map", "static_map": {"x": "y"}}, "x", "y"),
])
def test_decoders(spec: Any, value: Any, text: Any) -> None:
    assert make_decoder(spec, "d")(value) == text


def test_ksym_decoder_finds_the_containing_symbol(tmp_path: Path) -> None:
    kallsyms = tmp_path / "kallsyms"
    kallsyms.write_text("ffffffff81000000 T _stext\n"
                        "ffffffff81000100 t do_one\n"
                        "ffffffff81000200 D some_data\n"
                        "ffffffff81000300 T do_two\t[mod]\n")
    ksym = decoders.Kallsyms(str(kallsyms))
    assert ksym(0xFFFFFFFF81000150) == "do_one"
    assert ksym(0xFFFFFFFF81000250) == "do_one"  # data symbols are not code
    assert ksym(0xFFFFFFFF81000300) == "do_two"
    assert ksym(0x1000) == "0x1000"
    hidden = tmp_path / "hidden"  # what a process without CAP_SYSLOG reads
    hidden.write_text("0000000000000000 T _stext\n")
    assert decoders.Kallsyms(str(hidden))(0xFFFFFFFF81000150) == "0xffffffff81000150"


def test_cgroup_decoder_maps_inodes_to_paths(tmp_path: Path) -> None:
    (tmp_path / "system.slice" / "ssh.service").mkdir(parents=True)
    cgroups = decoders.Cgroups(str(tmp_path))
    ino = os.stat(tmp_path / "system.slice" / "ssh.service").st_ino
    assert cgroups(ino) == "/system.slice/ssh.service"
    assert cgroups(os.stat(tmp_path).st_ino) == "/"
    (tmp_path / "new").mkdir()  # made after the first read: found once the table is stale
    new = os.stat(tmp_path / "new").st_ino
    cgroups._loaded_at -= decoders.REFRESH_SECONDS
    assert cgroups(new) == "/new"
    assert cgroups(1) == "1"


# ------------------------------------------------------------------------------ values

def test_per_cpu_sums() -> None:
    assert sum_per_cpu([1, 2, 3]) == 6
    assert sum_per_cpu([[1, 2], [10, 20]]) == [11, 22]
    assert sum_per_cpu([{"slots": [1, 0], "total": 5, "comm": "a"},
                        {"slots": [2, 3], "total": 7, "comm": "b"}]) == \
        {"slots": [3, 3], "total": 12, "comm": "a"}


def test_counter_labels_sum_and_vanish() -> None:
    spec = _one({"counters": [{"name": "calls_total", "map": "m", "value": "n",
                               "labels": [{"name": "proc", "field": "comm"}]}]})
    items = [({"pid": 1, "comm": "a"}, {"n": 2}), ({"pid": 2, "comm": "a"}, {"n": 3}),
             ({"pid": 3, "comm": "b"}, {"n": 4})]
    first = _samples(build_family(spec, items, _raise))
    assert first == {("calls_total", (("proc", "a"),)): 5.0,
                     ("calls_total", (("proc", "b"),)): 4.0}
    # the next scrape reads the map again: what is gone is gone
    second = _samples(build_family(spec, items[2:], _raise))
    assert second == {("calls_total", (("proc", "b"),)): 4.0}


def test_bad_entries_are_counted_not_raised() -> None:
    spec = _one({"gauges": [{"name": "g", "map": "m",
                             "labels": [{"name": "n", "decoders": ["ipv4"]}]}]})
    errors: list[BaseException] = []
    family = build_family(spec, [(1, 5), ("not an address", 6)], errors.append)
    assert len(family.samples) == 1 and len(errors) == 1


def test_drop_unknown_drops_the_sample() -> None:
    spec = _one({"gauges": [{"name": "g", "map": "m", "labels": [{"name": "op", "decoders": [
        {"name": "static_map", "static_map": {1: "read"}, "drop_unknown": True}]}]}]})
    assert _samples(build_family(spec, [(1, 5), (2, 6)], _raise)) == \
        {("g", (("op", "read"),)): 5.0}


# ------------------------------------------------------------------------------ histograms

def _hist(**kw: Any) -> HistogramSpec:
    spec = _one({"histograms": [{"name": "h", "map": "m", **kw}]})
    assert isinstance(spec, HistogramSpec)
    return spec


def test_log2_bounds_are_exclusive_upper_ends() -> None:
    spec = _hist(slots="s", bucket_multiplier=1e-6)
    assert bucket_bounds(spec, 5) == [2e-6, 4e-6, 8e-6, 1.6e-5]  # the 5th bucket is open
    closed = _hist(slots="s", last_bucket_open=False)
    assert bucket_bounds(closed, 3) == [2.0, 4.0, 8.0]
    ns = _hist(slots="s", bucket_multiplier=1e-9)
    assert bucket_bounds(ns, 13)[-1] == 4.096e-06  # not 4.0960000000000005e-06


def test_linear_bounds() -> None:
    spec = _hist(slots="s", bucket_type="linear", bucket_min=10, bucket_step=5,
                 last_bucket_open=False)
    assert bucket_bounds(spec, 3) == [15.0, 20.0, 25.0]


def test_cumulative_buckets() -> None:
    spec = _hist(slots="s")
    assert cumulative_buckets(spec, [1, 0, 2, 5], 4) == [
        ("2.0", 1.0), ("4.0", 1.0), ("8.0", 3.0), ("+Inf", 8.0)]
    # an index past the last bucket (a BPF side that does not clamp) reaches +Inf only
    assert cumulative_buckets(spec, {0: 1, 9: 4}, 3) == [("2.0", 1.0), ("4.0", 1.0),
                                                         ("+Inf", 5.0)]


def test_slots_histogram_with_sum_and_labels() -> None:
    spec = _hist(slots="slots", sum="total", bucket_multiplier=0.5,
                 labels=[{"name": "cg", "decoders": [{"static_map": {7: "/a"}}]}])
    items = [(7, {"slots": [1, 2, 0, 1], "total": 40}), (7, {"slots": [0, 1, 0, 0], "total": 2}),
             (8, {"slots": [0, 0, 0, 0], "total": 0})]
    got = _samples(build_family(spec, items, _raise))
    a = (("cg", "/a"),)
    assert got[("h_bucket", (("cg", "/a"), ("le", "1.0")))] == 1.0
    assert got[("h_bucket", (("cg", "/a"), ("le", "2.0")))] == 4.0
    assert got[("h_bucket", (("cg", "/a"), ("le", "4.0")))] == 4.0
    assert got[("h_bucket", (("cg", "/a"), ("le", "+Inf")))] == 5.0
    assert got[("h_count", a)] == 5.0 and got[("h_sum", a)] == 21.0
    assert ("h_count", (("cg", "8"),)) in got  # an all-zero label set is kept ...
    spec_skip = _hist(slots="slots", sum="total", skip_zero=True,
                      labels=[{"name": "cg"}])
    got = _samples(build_family(spec_skip, items, _raise))
    assert ("h_count", (("cg", "8"),)) not in got  # ... unless skip_zero


def test_key_layout_histogram_lathist_style() -> None:
    # lathist's my_lat: index cpu * 20 + slot -> count
    spec = _hist(buckets=20, bucket={"decoders": [{"mod": 20}]},
                 labels=[{"name": "cpu", "decoders": [{"div": 20}]}], skip_zero=True)
    items = [(i, 0) for i in range(60)]
    items[3] = (3, 2)
    items[20 + 19] = (39, 5)
    items[20 + 0] = (20, 1)
    got = _samples(build_family(spec, items, _raise))
    assert got[("h_bucket", (("cpu", "0"), ("le", "8.0")))] == 0.0
    assert got[("h_bucket", (("cpu", "0"), ("le", "16.0")))] == 2.0
    assert got[("h_bucket", (("cpu", "1"), ("le", "524288.0")))] == 1.0  # 19 is open
    assert got[("h_bucket", (("cpu", "1"), ("le", "+Inf")))] == 6.0
    assert got[("h_count", (("cpu", "1"),))] == 6.0
    assert ("h_sum", (("cpu", "1"),)) not in got  # log2 counts do not give a sum
    assert not any(labels == (("cpu", "2"),) for _n, labels in got)


def test_text_exposition() -> None:
    spec = _hist(slots="slots", bucket_multiplier=1e-6)

    class Fake:
        def collect(self) -> Iterator[Metric]:
            yield build_family(spec, [(0, {"slots": [1, 1, 1]})], _raise)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fake())
    text = generate_latest(registry).decode()
    assert "# TYPE h histogram" in text
    assert 'h_bucket{le="2e-06"} 1.0' in text
    assert 'h_bucket{le="4e-06"} 2.0' in text
    assert 'h_bucket{le="+Inf"} 3.0' in text
    assert "h_count 3.0" in text and "h_sum" not in text
