"""The exporter scraped by a real Prometheus (Debian's ``prometheus``): the three example
configs served on a free port, Prometheus started on another with a temporary data folder and
a one-second scrape interval; events are triggered, the programs detached (the maps then hold
still), and once Prometheus has scraped after that, PromQL results over its HTTP API are
compared with the maps read directly.

Outside CI the test skips when ``prometheus`` is not installed; in CI (``scripts/bootstrap.sh``
installs it) a skip of this kernel test is a failure."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client")
pytest.importorskip("yaml")

from pylibbpf.export import Exporter, parse_config  # noqa: E402
from tests.support.export import example_data  # noqa: E402

pytestmark = pytest.mark.kernel
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


class Prometheus:
    def __init__(self, base: str) -> None:
        self.base = base

    def query(self, promql: str) -> list[dict[str, Any]]:
        reply = _get(f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        assert reply["status"] == "success", reply
        result: list[dict[str, Any]] = reply["data"]["result"]
        return result

    def value(self, promql: str) -> float:
        result = self.query(promql)
        assert len(result) == 1, (promql, result)
        return float(result[0]["value"][1])

    def wait_for_scrape_after(self, moment: float, timeout: float = 30.0) -> None:
        """Until the exporter's last scrape began after ``moment`` (a time.time())."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query('timestamp(up{job="pylibbpf"})')
            if result and float(result[0]["value"][1]) > moment and \
                    self.query('up{job="pylibbpf"}')[0]["value"][1] == "1":
                return
            time.sleep(0.2)
        raise AssertionError(f"no successful scrape after {moment} within {timeout} s: "
                             f"{_get(self.base + '/api/v1/targets')}")


@pytest.fixture
def prometheus(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Prometheus, int]]:
    """A Prometheus scraping 127.0.0.1:<port> every second; yields it and the port."""
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.skip("prometheus is not installed (apt install prometheus; "
                    "scripts/bootstrap.sh installs it)")
    exporter_port, web_port = _free_port(), _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: pylibbpf\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exporter_port}']\n")
    log = (tmp_path / "prometheus.log").open("w")
    server = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{web_port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{web_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise AssertionError("prometheus did not start: "
                                         + (tmp_path / "prometheus.log").read_text()) from None
                time.sleep(0.1)
        yield Prometheus(base), exporter_port
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _events() -> None:
    for _ in range(1000):
        os.getppid()
    ping = threading.Event()

    def wake() -> None:
        for _ in range(50):
            ping.set()
            time.sleep(0.001)

    thread = threading.Thread(target=wake)
    thread.start()
    for _ in range(50):
        ping.wait(0.05)
        ping.clear()
    thread.join()
    subprocess.run(["true"], check=True)


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall numbers of x86_64")
def test_prometheus_scrapes_what_the_maps_hold(prometheus: tuple[Prometheus, int]) -> None:
    prom, port = prometheus
    data = example_data("syscalls", "runqlat", "lathist")
    data["objects"][0]["globals"]["target_tgid"] = os.getpid()
    with Exporter(parse_config(data)).start() as exporter:
        exporter.serve("127.0.0.1", port)
        prom.wait_for_scrape_after(time.time())  # the target is up
        _events()
        for obj in exporter.objects.values():
            obj.detach()  # from now on the maps hold still
        frozen = time.time()
        prom.wait_for_scrape_after(frozen)

        # syscalls: a counter per name, summed over the CPUs
        counts = exporter.objects["syscalls"].maps["syscall_counts"]
        direct = {int.from_bytes(k, sys.byteorder): sum(int.from_bytes(x, sys.byteorder)
                                                        for x in v)
                  for k, v in counts.items()}
        assert direct[110] >= 1000
        assert prom.value('syscalls_total{syscall="getppid"}') == direct[110]
        assert prom.value("sum(syscalls_total)") == sum(direct.values())
        assert prom.value("count(syscalls_total)") == len(direct)

        # runqlat: slots and a sum in the value, per cgroup
        hists = exporter.objects["runqlat"].maps["runq_hists"].typed().items()
        slots = [sum(h["slots"][i] for _k, h in hists) for i in range(26)]
        assert sum(slots) > 0
        assert prom.value("sum(runqueue_latency_seconds_count)") == sum(slots)
        assert prom.value('sum(runqueue_latency_seconds_bucket{le="+Inf"})') == sum(slots)
        assert prom.value('sum(runqueue_latency_seconds_bucket{le="6.4e-05"})') == sum(slots[:6])
        assert prom.value("sum(runqueue_latency_seconds_sum)") == pytest.approx(
            sum(h["total_us"] for _k, h in hists) * 1e-6)
        assert prom.value("count(runqueue_latency_seconds_count)") == len(hists)

        # lathist: bucket and CPU from the array index
        lat = exporter.objects["lathist"].maps["my_lat"]
        buckets = [0] * 20
        for key, value in lat.items():
            buckets[int.from_bytes(key, sys.byteorder) % 20] += \
                int.from_bytes(value, sys.byteorder, signed=True)
        assert prom.value("sum(syscall_latency_seconds_count)") == sum(buckets) > 0
        by_le = {r["metric"]["le"]: float(r["value"][1]) for r in
                 prom.query("sum by (le) (syscall_latency_seconds_bucket)")}
        assert len(by_le) == 20  # 19 finite bounds and +Inf
        for i in range(19):
            le = f"{2 ** (i + 1) * 1e-9:.15g}"
            assert by_le[str(float(le)) if "e" not in le else le] == sum(buckets[:i + 1]), le
        assert by_le["+Inf"] == sum(buckets)
        median = prom.value("histogram_quantile(0.5, sum by (le) "
                            "(syscall_latency_seconds_bucket))")
        assert 0 < median <= 2 ** 19 * 1e-9

        # the exporter's own metrics
        assert prom.value('pylibbpf_export_scrape_errors_total{object="syscalls"}') == 0
        assert prom.value('pylibbpf_export_map_entries{map="syscall_counts"}') == len(direct)
        assert prom.value("count(pylibbpf_export_program_info)") == 6
