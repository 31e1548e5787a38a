"""The exporter on this kernel: the example configs load, attach and export what their maps
hold; per-CPU values are summed; deleted keys vanish; a broken object fails at start with
libbpf's reason; program variants are chosen by probing; bpf_stats run counts are exported."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client")
pytest.importorskip("yaml")

from pylibbpf.export import Exporter, StartError, parse_config  # noqa: E402
from pylibbpf.export import exporter as exporter_module  # noqa: E402
from tests.support.export import example_data, samples, vendor  # noqa: E402

pytestmark = pytest.mark.kernel
ROOT = Path(__file__).resolve().parent.parent
GETPPID = 110  # x86_64


def _start(data: dict[str, Any]) -> Exporter:
    return Exporter(parse_config(data)).start()


@pytest.fixture
def syscalls_exporter() -> Iterator[Exporter]:
    data = example_data("syscalls")
    data["objects"][0]["globals"]["target_tgid"] = os.getpid()
    with _start(data) as exporter:
        yield exporter


def _per_cpu_total(raw: list[bytes]) -> int:
    return sum(int.from_bytes(v, sys.byteorder) for v in raw)


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall numbers of x86_64")
def test_syscall_counts_by_name_summed_over_cpus(syscalls_exporter: Exporter) -> None:
    for _ in range(500):
        os.getppid()
    obj = syscalls_exporter.objects["syscalls"]
    obj.detach()  # freeze the map: this process's own scrape makes system calls too
    got = samples(syscalls_exporter.collect())
    raw = obj.maps["syscall_counts"].lookup(GETPPID)
    assert isinstance(raw, list) and len(raw) > 1  # per CPU
    direct = _per_cpu_total(raw)
    assert direct >= 500
    assert got[("syscalls_total", (("syscall", "getppid"),))] == direct
    everything = {int.from_bytes(k, sys.byteorder): _per_cpu_total(v)
                  for k, v in obj.maps["syscall_counts"].items()}
    exported = {labels[0][1]: value for (name, labels), value in got.items()
                if name == "syscalls_total"}
    assert sum(exported.values()) == sum(everything.values())
    assert len(exported) == len(everything)
    assert got[("pylibbpf_export_map_entries", (("map", "syscall_counts"),
                                                ("object", "syscalls")))] == len(everything)
    assert got[("pylibbpf_export_scrape_errors_total", (("map", "syscall_counts"),
                                                        ("object", "syscalls")))] == 0


def test_deleted_keys_vanish(syscalls_exporter: Exporter) -> None:
    os.getppid()
    obj = syscalls_exporter.objects["syscalls"]
    obj.detach()
    counts = obj.maps["syscall_counts"]
    before = samples(syscalls_exporter.collect())
    names = {labels for (name, labels) in before if name == "syscalls_total"}
    assert (("syscall", "getppid"),) in names or os.uname().machine != "x86_64"
    victim = counts.keys()[0]
    counts.delete(victim)
    after = {labels for (name, labels) in samples(syscalls_exporter.collect())
             if name == "syscalls_total"}
    assert len(after) == len(names) - 1 and after < names


def test_lathist_histogram_matches_the_array() -> None:
    with _start(example_data("lathist")) as exporter:
        for _ in range(200):
            os.getppid()
        obj = exporter.objects["lathist"]
        obj.detach()
        got = samples(exporter.collect())
        lat = obj.maps["my_lat"]
        per_cpu: dict[int, list[int]] = {}
        for key, value in lat.items():
            index = int.from_bytes(key, sys.byteorder)
            per_cpu.setdefault(index // 20, [0] * 20)[index % 20] += \
                int.from_bytes(value, sys.byteorder, signed=True)
    seen = {cpu: counts for cpu, counts in per_cpu.items() if any(counts)}
    assert seen
    for cpu, counts in seen.items():
        labels = (("cpu", str(cpu)),)
        assert got[("syscall_latency_seconds_count", labels)] == sum(counts)
        # bucket 9 (512..1023 ns) ends at 1024 ns: le="1.024e-06" counts buckets 0..9
        assert got[("syscall_latency_seconds_bucket", (("cpu", str(cpu)),
                                                       ("le", "1.024e-06")))] == sum(counts[:10])
        assert ("syscall_latency_seconds_sum", labels) not in got
    exported_cpus = {dict(labels)["cpu"] for (name, labels) in got
                     if name == "syscall_latency_seconds_count"}
    assert exported_cpus == {str(cpu) for cpu in seen}  # skip_zero


def _switches(seconds: float = 0.3) -> None:
    """Context switches: threads that sleep and wake each other."""
    stop = time.monotonic() + seconds
    ping, pong = threading.Event(), threading.Event()

    def other() -> None:
        while time.monotonic() < stop:
            ping.wait(0.05)
            ping.clear()
            pong.set()

    thread = threading.Thread(target=other)
    thread.start()
    while time.monotonic() < stop:
        ping.set()
        pong.wait(0.05)
        pong.clear()
    thread.join()
    subprocess.run(["true"], check=True)


def _runqlat_check(exporter: Exporter) -> None:
    obj = exporter.objects["runqlat"]
    obj.detach()
    got = samples(exporter.collect())
    hists = obj.maps["runq_hists"].typed().items()
    assert hists
    total = sum(sum(h["slots"]) for _k, h in hists)
    total_us = sum(h["total_us"] for _k, h in hists)
    exported = sum(v for (name, _l), v in got.items() if name == "runqueue_latency_seconds_count")
    assert exported == total > 0
    exported_sum = sum(v for (name, _l), v in got.items() if name == "runqueue_latency_seconds_sum")
    assert exported_sum == pytest.approx(total_us * 1e-6)
    cgroups = {dict(labels)["cgroup"] for (name, labels) in got
               if name == "runqueue_latency_seconds_count"}
    assert any(c.startswith("/") for c in cgroups), cgroups  # ids decoded to paths


def test_runqlat_loads_the_variant_the_kernel_supports() -> None:
    with _start(example_data("runqlat")) as exporter:
        programs = {name for name, p in exporter.objects["runqlat"].programs.items()
                    if p.autoload}
        assert len(programs) == 3
        _switches()
        _runqlat_check(exporter)


def test_runqlat_raw_tp_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    real = exporter_module._supported

    def no_tp_btf(program: Any) -> tuple[bool, str]:
        if program.section_name.startswith("tp_btf/"):
            return False, "pretend this kernel has no BTF"
        return real(program)

    monkeypatch.setattr(exporter_module, "_supported", no_tp_btf)
    with _start(example_data("runqlat")) as exporter:
        programs = {name for name, p in exporter.objects["runqlat"].programs.items()
                    if p.autoload}
        assert programs == {"wakeup_raw", "wakeup_new_raw", "switch_raw"}
        _switches()
        _runqlat_check(exporter)


BROKEN = """
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} m SEC(".maps");
SEC("tp/raw_syscalls/sys_enter")
int broken(void *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&m, &k);
	*v += 1;	/* no NULL check: the verifier refuses it */
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_broken_object_fails_at_start_with_libbpfs_reason(tmp_path: Path) -> None:
    source = tmp_path / "broken.bpf.c"
    source.write_text(BROKEN)
    data = example_data("syscalls")
    data["objects"].append({"name": "broken", "source": str(source),
                            "include_dirs": [str(vendor())],
                            "metrics": {"counters": [{"name": "b", "map": "m"}]}})
    exporter = Exporter(parse_config(data))
    with pytest.raises(StartError) as info:
        exporter.start()
    message = str(info.value)
    assert "object 'broken'" in message and "map_value_or_null" in message, message
    assert exporter.objects == {}  # the object that had loaded was closed again


@pytest.mark.parametrize(("change", "message"), [
    ({"value": "count"}, "value 'count' is not in the map's type"),
    ({"map": "nope"}, "no map 'nope'"),
    ({"labels": [{"name": "x", "field": "pid"}]}, "label 'x': 'pid' is not in the map's type"),
])
def test_config_that_does_not_fit_the_object_fails_at_start(change: dict[str, Any],
                                                             message: str) -> None:
    data = example_data("syscalls")
    data["objects"][0]["metrics"]["counters"][0].update(change)
    with pytest.raises(StartError, match="object 'syscalls'") as info:
        _start(data)
    assert message in str(info.value)


def test_unknown_global_fails_at_start() -> None:
    data = example_data("syscalls")
    data["objects"][0]["globals"] = {"no_such_global": 1}
    with pytest.raises(StartError, match="no global variable 'no_such_global'"):
        _start(data)


def test_program_run_counts_with_bpf_stats(syscalls_exporter: Exporter) -> None:
    path = Path(exporter_module.BPF_STATS)
    before = path.read_text().strip()
    path.write_text("1")
    try:
        for _ in range(50):
            os.getppid()
        got = samples(syscalls_exporter.collect())
    finally:
        path.write_text(before)
    labels = (("object", "syscalls"), ("program", "count_syscall"))
    assert got[("pylibbpf_export_program_run_count_total", labels)] >= 50
    assert got[("pylibbpf_export_program_run_time_seconds_total", labels)] > 0
    assert any(name == "pylibbpf_export_program_info" for name, _l in got)


def test_command_line_check() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pylibbpf", "export", "--config",
                           str(ROOT / "examples/exporter/syscalls.yaml"), "--check"],
                          capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "# TYPE syscalls_total counter" in done.stdout
    assert 'pylibbpf_export_map_entries{map="syscall_counts",object="syscalls"}' in done.stdout
