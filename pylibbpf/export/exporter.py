"""The exporter: objects opened, configured, loaded and attached at start; their maps read at
every scrape by a ``prometheus_client`` collector; an HTTP server for ``/metrics``.

Start fails, with libbpf's reason, on anything that could otherwise fail at scrape time: an
object that does not open or load, a program variant no kernel feature allows, a map the config
names that is not there or has no BTF, a field path the map's types do not have.  A scrape
itself never raises: an entry that cannot be read or decoded is counted in
``pylibbpf_export_scrape_errors_total`` and left out.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .. import probe
from ..build import build_object, cache_root
from ..enums import MapType
from ..info import ProgramInfo, program_run_stats
from ..map import ObjectMap
from ..object import Object
from ..program import Program
from ..typed import TypedGlobals, TypedMap
from .config import Config, HistogramSpec, LabelSpec, MetricSpec, ObjectSpec, load_config
from .metrics import build_family, get_field, sum_per_cpu

__all__ = ["Exporter", "MetricsServer", "StartError"]

PREFIX = "pylibbpf_export_"
BPF_STATS = "/proc/sys/kernel/bpf_stats_enabled"
_UNREADABLE = {MapType.RINGBUF, MapType.USER_RINGBUF, MapType.PERF_EVENT_ARRAY, MapType.QUEUE,
               MapType.STACK, MapType.BLOOM_FILTER, MapType.PROG_ARRAY}
_PER_CPU = {MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH,
            MapType.PERCPU_CGROUP_STORAGE}


class StartError(RuntimeError):
    """The exporter could not start; the message names the object and says why (for a load
    failure, libbpf's reason; ``__cause__`` is pylibbpf's error)."""


# ------------------------------------------------------------------------------ start-up

def _supported(program: Program) -> tuple[bool, str]:
    """Can this program variant load and attach here?  Asked from its section, as libbpf-tools
    decide between tp_btf and raw_tp, fentry and kprobe (docs/probing.md)."""
    section = program.section_name
    kind, _, target = section.partition("/")
    answer: Any = True
    if kind == "tp_btf":
        answer = probe.tp_btf_can_attach(target)
    elif kind in ("fentry", "fexit", "fmod_ret"):
        answer = probe.fentry_can_attach(target)
    elif kind in ("kprobe", "kretprobe") and target:
        answer = probe.kprobe_exists(target)
    elif kind in ("tp", "tracepoint") and "/" in target:
        answer = probe.tracepoint_exists(*target.split("/", 1))
    return bool(answer), getattr(answer, "reason", "")


def _choose_programs(obj: Object, spec: ObjectSpec) -> list[str]:
    if spec.programs is None:
        return [name for name, p in obj.programs.items() if p.autoload]
    chosen = []
    for choice in spec.programs:
        reasons = []
        for name in choice.alternatives:
            program = obj.find_program_by_name(name)
            if len(choice.alternatives) == 1:
                chosen.append(name)
                break
            ok, why = _supported(program)
            if ok:
                chosen.append(name)
                break
            reasons.append(f"{name} ({program.section_name}): {why}")
        else:
            raise StartError(f"object {spec.name!r}: no variant of {list(choice.alternatives)} "
                             f"is supported here: {'; '.join(reasons)}")
    for name, program in obj.programs.items():
        program.set_autoload(name in chosen)
    return chosen


def _set_globals(obj: Object, spec: ObjectSpec) -> None:
    sections = ["." + m.name.split(".", 1)[1] for m in obj.maps.values()
                if m.is_internal and "." in m.name and not m.name.endswith(".kconfig")]
    views = [obj.global_data(s) for s in sections]
    for name, value in spec.globals.items():
        for view in views:
            if name in view.variables:
                TypedGlobals(view)[name] = value
                break
        else:
            raise StartError(f"object {spec.name!r}: no global variable {name!r} (sections: "
                             f"{', '.join(sections) or 'none'})")


def _check_path(value: Any, path: str, what: str, want: type | None = None) -> Any:
    try:
        found = get_field(value, path)
    except (KeyError, IndexError, TypeError, ValueError):
        raise ValueError(f"{what} {path!r} is not in the map's type") from None
    if want is int and (isinstance(found, bool) or not isinstance(found, int)):
        raise ValueError(f"{what} {path or '(the whole value)'!r} is not an integer "
                         f"({type(found).__name__})")
    if want is list and not (isinstance(found, list)
                             and all(isinstance(x, int) for x in found)):
        raise ValueError(f"{what} {path!r} is not an array of integers")
    return found


def _check_metric(metric: MetricSpec | HistogramSpec, key: Any, value: Any) -> None:
    """Walk every path of ``metric`` over a zero key and value, so that a path the map's types
    do not have fails at start."""
    labels: Sequence[LabelSpec] = metric.labels
    for label in labels:
        _check_path(value if label.from_value else key, label.field, f"label {label.name!r}:")
    if isinstance(metric, HistogramSpec):
        if metric.slots is not None:
            slots = _check_path(value, metric.slots, "slots", list)
            if metric.buckets is not None and metric.buckets > len(slots):
                raise ValueError(f"buckets {metric.buckets} > the {len(slots)} slots")
        else:
            assert metric.bucket is not None
            _check_path(key, metric.bucket.field, "bucket field", int)
            _check_path(value, metric.count, "count", int)
        if metric.sum is not None:
            _check_path(value, metric.sum, "sum", int)
    else:
        _check_path(value, metric.value, "value", int)


@dataclass
class _MapSource:
    """One map as the collector reads it: typed, once per scrape whatever metrics use it."""

    object_name: str
    map: ObjectMap
    typed: TypedMap[ObjectMap]
    per_cpu: bool
    metrics: list[MetricSpec | HistogramSpec] = field(default_factory=list)
    errors: int = 0

    def read(self) -> list[tuple[Any, Any]]:
        pairs = self.typed.items()
        if self.per_cpu:
            return [(k, sum_per_cpu(v)) for k, v in pairs]
        return pairs


@dataclass
class _Loaded:
    spec: ObjectSpec
    obj: Object
    programs: list[str]
    maps: dict[str, _MapSource]


def _open(spec: ObjectSpec) -> _Loaded:
    path = spec.object
    try:
        if spec.source is not None:
            path = build_object(spec.source, spec.include_dirs, spec.cflags,
                                cache=cache_root() / "export")
        assert path is not None
        obj = Object.open_file(path)
    except Exception as exc:
        raise StartError(f"object {spec.name!r}: {exc}") from exc
    try:
        programs = _choose_programs(obj, spec)
        _set_globals(obj, spec)
        obj.load()
        obj.attach()
        maps: dict[str, _MapSource] = {}
        for metric in spec.metrics:
            source = maps.get(metric.map)
            if source is None:
                source = maps[metric.map] = _map_source(spec.name, obj, metric.map)
            zero_key = source.typed.key.decode(bytes(source.typed.key.size)) \
                if source.typed.key is not None else b""
            try:
                _check_metric(metric, zero_key, source.typed.value.decode(
                    bytes(source.typed.value.size)))
            except ValueError as exc:
                raise StartError(f"object {spec.name!r}, metric {metric.name!r} (map "
                                 f"{metric.map!r}): {exc}") from None
            source.metrics.append(metric)
        return _Loaded(spec, obj, programs, maps)
    except StartError:
        obj.close()
        raise
    except Exception as exc:
        obj.close()
        raise StartError(f"object {spec.name!r} ({path}): {exc}") from exc


def _map_source(object_name: str, obj: Object, name: str) -> _MapSource:
    m = obj.find_map_by_name(name)
    kind = m.type
    if kind in _UNREADABLE:
        raise StartError(f"object {object_name!r}: map {name!r} is a {kind!r}, which has no "
                         "key/value pairs to export")
    try:
        typed = TypedMap(m)
    except (ValueError, KeyError) as exc:
        raise StartError(f"object {object_name!r}: map {name!r}: {exc}") from None
    if typed.key is None:
        raise StartError(f"object {object_name!r}: map {name!r} has no BTF key type "
                         "(declare it with __type(key, ...))")
    return _MapSource(object_name, m, typed, kind in _PER_CPU)


# ------------------------------------------------------------------------------ the exporter

class Exporter:
    """BPF objects served as Prometheus metrics: a ``prometheus_client`` collector.

    ``Exporter(config).start()`` opens, configures, loads and attaches every object of the
    config (:class:`StartError` if any fails, with nothing left loaded); :meth:`collect` reads
    the maps (what a registry calls at each scrape); :meth:`serve` starts an HTTP server for it;
    :meth:`close` detaches and frees everything.  A context manager.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._loaded: list[_Loaded] = []
        self._lock = threading.Lock()
        self._durations: dict[tuple[str, str], float] = {}
        self._entries: dict[tuple[str, str], int] = {}
        self._program_info: list[tuple[str, str, ProgramInfo]] = []
        self._servers: list[MetricsServer] = []

    @classmethod
    def from_file(cls, path: str) -> Exporter:
        """An exporter (not started) for the config file at ``path``."""
        return cls(load_config(path))

    def start(self) -> Exporter:
        """Open, configure, load and attach every object; returns the exporter."""
        try:
            for spec in self.config.objects:
                loaded = _open(spec)
                self._loaded.append(loaded)
                for name in loaded.programs:
                    info = ProgramInfo.from_fd(loaded.obj.programs[name].fd)
                    self._program_info.append((spec.name, name, info))
        except BaseException:
            self.close()
            raise
        return self

    @property
    def objects(self) -> dict[str, Object]:
        """The loaded objects by their config name."""
        return {loaded.spec.name: loaded.obj for loaded in self._loaded}

    def close(self) -> None:
        """Stop the servers, destroy the links and close the objects."""
        for server in self._servers:
            server.close()
        self._servers.clear()
        for loaded in self._loaded:
            loaded.obj.close()
        self._loaded.clear()
        self._program_info.clear()

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------------------- scraping

    def collect(self) -> Iterator[Metric]:
        """Every metric, read now (the ``prometheus_client`` collector protocol)."""
        with self._lock:  # two scrapes at once would only read everything twice
            families: dict[str, Metric] = {}
            for loaded in self._loaded:
                for source in loaded.maps.values():
                    self._collect_map(source, families)
            yield from families.values()
            yield from self._own_metrics()

    def _collect_map(self, source: _MapSource, families: dict[str, Metric]) -> None:
        started = time.perf_counter()
        where = (source.object_name, source.map.name)

        def on_error(exc: BaseException) -> None:
            source.errors += 1

        try:
            items = source.read()
        except Exception as exc:
            on_error(exc)
            items = []
        self._entries[where] = len(items)
        for metric in source.metrics:
            family = build_family(metric, items, on_error)
            known = families.get(family.name)
            if known is None:
                families[family.name] = family
            else:  # the same metric from several objects or maps: one family
                known.samples.extend(family.samples)
        self._durations[where] = time.perf_counter() - started

    def _own_metrics(self) -> Iterator[Metric]:
        labels = ["object", "map"]
        duration = GaugeMetricFamily(PREFIX + "scrape_duration_seconds",
                                     "Time the last scrape took to read and decode a map",
                                     labels=labels)
        entries = GaugeMetricFamily(PREFIX + "map_entries",
                                    "Entries read from a map at the last scrape", labels=labels)
        errors = CounterMetricFamily(PREFIX + "scrape_errors",
                                     "Map reads or entries that could not be exported",
                                     labels=labels)
        for loaded in self._loaded:
            for name, source in loaded.maps.items():
                where = (loaded.spec.name, name)
                duration.add_metric(list(where), self._durations.get(where, 0.0))
                entries.add_metric(list(where), self._entries.get(where, 0))
                errors.add_metric(list(where), source.errors)
        yield from (duration, entries, errors)
        info = GaugeMetricFamily(PREFIX + "program_info", "A loaded program (always 1)",
                                 labels=["object", "program", "id", "tag"])
        for object_name, program, pinfo in self._program_info:
            info.add_metric([object_name, program, str(pinfo.id), pinfo.tag], 1)
        yield info
        if not _bpf_stats_enabled():
            return
        runs = CounterMetricFamily(PREFIX + "program_run_count",
                                   "Times a program ran (kernel.bpf_stats_enabled)",
                                   labels=["object", "program"])
        run_time = CounterMetricFamily(PREFIX + "program_run_time_seconds",
                                       "Time a program ran (kernel.bpf_stats_enabled)",
                                       labels=["object", "program"])
        for loaded in self._loaded:
            for program in loaded.programs:
                try:
                    count, ns = program_run_stats(loaded.obj.programs[program].fd)
                except OSError:
                    continue
                runs.add_metric([loaded.spec.name, program], count)
                run_time.add_metric([loaded.spec.name, program], ns / 1e9)
        yield from (runs, run_time)

    # -------------------------------------------------------------------------- serving

    def registry(self) -> CollectorRegistry:
        """A registry holding only this exporter."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return registry

    def serve(self, address: str = "127.0.0.1", port: int = 9435) -> MetricsServer:
        """Serve ``/metrics`` on ``address:port`` (port 0: any free port) in a thread; the
        server stops with :meth:`close`."""
        server = MetricsServer(self.registry(), address, port)
        self._servers.append(server)
        return server


def _bpf_stats_enabled() -> bool:
    try:
        with open(BPF_STATS) as f:
            return f.read().strip() == "1"
    except OSError:
        return False


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per scrape on stderr is noise


class MetricsServer:
    """``/metrics`` of a registry over HTTP, served by a thread."""

    def __init__(self, registry: CollectorRegistry, address: str, port: int) -> None:
        class Server(ThreadingMixIn, WSGIServer):
            daemon_threads = True
            address_family = socket.AF_INET6 if ":" in address else socket.AF_INET

        self._httpd = make_server(address, port, make_wsgi_app(registry), Server,
                                  handler_class=_Quiet)
        self.address = address
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        name="pylibbpf-export-http", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving (idempotent)."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()
