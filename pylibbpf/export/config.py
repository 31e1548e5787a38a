"""The exporter's configuration: a YAML (or JSON) file read into frozen dataclasses.

Everything a config can get wrong in itself is found here, before any object is opened: unknown
keys, missing maps, a histogram with neither layout, a decoder that does not exist.  What needs
the object (a field the map's BTF does not have) is checked when the exporter starts
(:mod:`pylibbpf.export.exporter`), still before the first scrape.  ``docs/export.md`` is the
reference of the format.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .decoders import Decoder, make_decoder

__all__ = ["Config", "ConfigError", "HistogramSpec", "LabelSpec", "MetricSpec", "ObjectSpec",
           "ProgramChoice", "load_config", "parse_config"]

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
RESERVED_LABELS = frozenset({"le", "object"})


class ConfigError(ValueError):
    """The config is malformed; the message names the place (``objects[0].metrics...``)."""


@dataclass(frozen=True)
class LabelSpec:
    """A label: a field of the key (or of the value), through decoders, into a string."""

    name: str
    field: str = ""                    # a path in the key (``"pid"``, ``"hdr.dport"``); "" = all
    from_value: bool = False           # the path is in the value, not in the key
    decoders: tuple[Decoder, ...] = ()


@dataclass(frozen=True)
class MetricSpec:
    """A counter or gauge: one sample per distinct label set, the values of its keys summed."""

    kind: str                          # "counter" or "gauge"
    name: str
    help: str
    map: str
    labels: tuple[LabelSpec, ...] = ()
    value: str = ""                    # a path in the value; "" = the whole value


@dataclass(frozen=True)
class HistogramSpec:
    """A histogram map as a native Prometheus histogram.

    Two layouts: ``bucket`` (the bucket index is in the key, the value counts it) or ``slots``
    (the value holds an array of bucket counts, the key only labels).
    """

    name: str
    help: str
    map: str
    bucket_type: str = "log2"          # "log2" or "linear"
    buckets: int | None = None         # number of buckets (slots layout: the array's length)
    bucket: LabelSpec | None = None    # key layout: where the index is
    slots: str | None = None           # value layout: the array's path in the value
    count: str = ""                    # key layout: the count's path in the value
    sum: str | None = None             # a path in the value holding the sum of observations
    multiplier: float = 1.0            # map units -> metric units (1e-6: microseconds to s)
    bucket_min: int = 0                # linear: the first bucket's lowest value
    bucket_step: int = 1               # linear: the width of a bucket
    last_bucket_open: bool = True      # the last bucket also counts everything above it
    skip_zero: bool = False            # leave out label sets whose count is 0
    labels: tuple[LabelSpec, ...] = ()
    kind: str = "histogram"


@dataclass(frozen=True)
class ProgramChoice:
    """Load one program, or the first of several variants the running kernel supports."""

    alternatives: tuple[str, ...]


@dataclass(frozen=True)
class ObjectSpec:
    """One BPF object: where it comes from, its globals, programs and metrics."""

    name: str
    object: Path | None = None         # a compiled .o
    source: Path | None = None         # or a .bpf.c compiled with clang at start
    include_dirs: tuple[Path, ...] = ()
    cflags: tuple[str, ...] = ()
    globals: Mapping[str, Any] = field(default_factory=dict)
    programs: tuple[ProgramChoice, ...] | None = None   # None: every program, as in the file
    metrics: tuple[MetricSpec | HistogramSpec, ...] = ()


@dataclass(frozen=True)
class Config:
    objects: tuple[ObjectSpec, ...]
    listen: str | None = None          # "host:port"; the command line may override it
    path: Path | None = None


# ------------------------------------------------------------------------------------ parsing

class _Reader:
    """A mapping of the config with its place, taking keys off as they are read so that what
    is left is unknown (and a typo is an error, not a silently ignored key)."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a mapping, not {type(data).__name__}")
        self.data = dict(data)
        self.where = where

    def take(self, key: str, kind: type | tuple[type, ...], default: Any = None,
             required: bool = False) -> Any:
        if key not in self.data:
            if required:
                raise ConfigError(f"{self.where}: {key!r} is required")
            return default
        value = self.data.pop(key)
        if isinstance(value, bool) and kind in (int, float, (int, float)):
            raise ConfigError(f"{self.where}.{key}: expected a number, not {value!r}")
        if not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise ConfigError(f"{self.where}.{key}: expected {names}, not {value!r}")
        return value

    def done(self) -> None:
        if self.data:
            raise ConfigError(f"{self.where}: unknown key(s) {', '.join(map(repr, self.data))}")


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list, not {value!r}")
    return value


def _label(data: Any, where: str, metric_labels: bool = True) -> LabelSpec:
    r = _Reader(data, where)
    name = r.take("name", str, "" if not metric_labels else None, required=metric_labels)
    if metric_labels and (not _LABEL_NAME.match(name) or name in RESERVED_LABELS
                          or name.startswith("__")):
        raise ConfigError(f"{where}.name: {name!r} is not a usable label name")
    path = r.take("field", str, "")
    source = r.take("from", str, "key")
    if source not in ("key", "value"):
        raise ConfigError(f"{where}.from: 'key' or 'value', not {source!r}")
    decoders = tuple(make_decoder(d, f"{where}.decoders[{i}]", ConfigError)
                     for i, d in enumerate(_list(r.take("decoders", list, []),
                                                 f"{where}.decoders")))
    r.done()
    return LabelSpec(name or "", path, source == "value", decoders)


def _labels(r: _Reader) -> tuple[LabelSpec, ...]:
    labels = tuple(_label(d, f"{r.where}.labels[{i}]")
                   for i, d in enumerate(_list(r.take("labels", list, []), f"{r.where}.labels")))
    names = [label.name for label in labels]
    if len(set(names)) != len(names):
        raise ConfigError(f"{r.where}.labels: a label name appears twice ({names})")
    return labels


def _metric_name(r: _Reader) -> str:
    name: str = r.take("name", str, required=True)
    if not _METRIC_NAME.match(name):
        raise ConfigError(f"{r.where}.name: {name!r} is not a valid Prometheus metric name")
    return name


def _metric(data: Any, kind: str, where: str) -> MetricSpec:
    r = _Reader(data, where)
    name = _metric_name(r)
    spec = MetricSpec(kind=kind, name=name, help=r.take("help", str, name),
                      map=r.take("map", str, required=True), labels=_labels(r),
                      value=r.take("value", str, ""))
    r.done()
    return spec


def _histogram(data: Any, where: str) -> HistogramSpec:
    r = _Reader(data, where)
    name = _metric_name(r)
    bucket_type = r.take("bucket_type", str, "log2")
    if bucket_type not in ("log2", "linear"):
        raise ConfigError(f"{where}.bucket_type: 'log2' or 'linear', not {bucket_type!r}")
    bucket_data = r.take("bucket", (dict, str), None)
    bucket = None
    if bucket_data is not None:
        if isinstance(bucket_data, str):
            bucket_data = {"field": bucket_data}
        bucket = _label(bucket_data, f"{where}.bucket", metric_labels=False)
    slots = r.take("slots", str, None)
    buckets = r.take("buckets", int, None)
    if (bucket is None) == (slots is None):
        raise ConfigError(f"{where}: give either 'bucket' (the bucket index is in the key) or "
                          "'slots' (the value is an array of bucket counts)")
    if bucket is not None and buckets is None:
        raise ConfigError(f"{where}: 'buckets' (how many) is required with 'bucket'")
    if buckets is not None and not 1 <= buckets <= 4096:
        raise ConfigError(f"{where}.buckets: between 1 and 4096, not {buckets}")
    multiplier = float(r.take("bucket_multiplier", (int, float), 1.0))
    if multiplier <= 0:
        raise ConfigError(f"{where}.bucket_multiplier: must be > 0")
    step = r.take("bucket_step", int, 1)
    if step < 1:
        raise ConfigError(f"{where}.bucket_step: must be >= 1")
    spec = HistogramSpec(
        name=name, help=r.take("help", str, name), map=r.take("map", str, required=True),
        bucket_type=bucket_type, buckets=buckets, bucket=bucket, slots=slots,
        count=r.take("count", str, ""), sum=r.take("sum", str, None), multiplier=multiplier,
        bucket_min=r.take("bucket_min", int, 0), bucket_step=step,
        last_bucket_open=r.take("last_bucket_open", bool, True),
        skip_zero=r.take("skip_zero", bool, False), labels=_labels(r))
    if bucket_type == "log2" and (spec.bucket_min, spec.bucket_step) != (0, 1):
        raise ConfigError(f"{where}: bucket_min and bucket_step are for linear histograms")
    r.done()
    return spec


def _programs(data: Any, where: str) -> tuple[ProgramChoice, ...]:
    out = []
    for i, item in enumerate(_list(data, where)):
        if isinstance(item, str):
            out.append(ProgramChoice((item,)))
            continue
        r = _Reader(item, f"{where}[{i}]")
        names = r.take("first_of", list, required=True)
        r.done()
        if not names or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{where}[{i}].first_of: a non-empty list of program names")
        out.append(ProgramChoice(tuple(names)))
    return tuple(out)


def _object(data: Any, where: str, base: Path) -> ObjectSpec:
    r = _Reader(data, where)
    name = r.take("name", str, required=True)
    obj_path = r.take("object", str, None)
    source = r.take("source", str, None)
    if (obj_path is None) == (source is None):
        raise ConfigError(f"{where}: give either 'object' (a .o) or 'source' (a .bpf.c)")
    metrics_data = _Reader(r.take("metrics", dict, {}), f"{where}.metrics")
    metrics: list[MetricSpec | HistogramSpec] = []
    for kind in ("counter", "gauge"):
        for i, d in enumerate(_list(metrics_data.take(f"{kind}s", list, []),
                                    f"{where}.metrics.{kind}s")):
            metrics.append(_metric(d, kind, f"{where}.metrics.{kind}s[{i}]"))
    for i, d in enumerate(_list(metrics_data.take("histograms", list, []),
                                f"{where}.metrics.histograms")):
        metrics.append(_histogram(d, f"{where}.metrics.histograms[{i}]"))
    metrics_data.done()
    programs = r.take("programs", list, None)
    spec = ObjectSpec(
        name=name,
        object=base / obj_path if obj_path is not None else None,
        source=base / source if source is not None else None,
        include_dirs=tuple(base / d for d in _list(r.take("include_dirs", list, []),
                                                   f"{where}.include_dirs")),
        cflags=tuple(str(f) for f in _list(r.take("cflags", list, []), f"{where}.cflags")),
        globals=dict(r.take("globals", dict, {})),
        programs=None if programs is None else _programs(programs, f"{where}.programs"),
        metrics=tuple(metrics))
    r.done()
    return spec


def parse_config(data: Any, base: Path | str = ".", path: Path | None = None) -> Config:
    """A :class:`Config` from already-parsed data (relative paths are relative to ``base``)."""
    r = _Reader(data, "config")
    base = Path(base)
    objects = tuple(_object(d, f"objects[{i}]", base)
                    for i, d in enumerate(_list(r.take("objects", list, required=True),
                                                "objects")))
    if not objects:
        raise ConfigError("config: 'objects' is empty")
    names = [o.name for o in objects]
    if len(set(names)) != len(names):
        raise ConfigError(f"config.objects: an object name appears twice ({names})")
    seen: dict[str, str] = {}
    for obj in objects:
        for metric in obj.metrics:
            kind = seen.setdefault(metric.name, metric.kind)
            if kind != metric.kind:
                raise ConfigError(f"metric {metric.name!r} is both a {kind} and a {metric.kind}")
    listen = r.take("listen", str, None)
    r.done()
    return Config(objects=objects, listen=listen, path=path)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read a config file: YAML (needs PyYAML, the ``export`` extra), or JSON for a ``.json``
    file (JSON is also YAML).  Relative paths in it are relative to the file's folder."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    else:
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"{path}: reading YAML needs PyYAML (pip install "
                              "'pylibbpf[export]', or apt install python3-yaml); a .json "
                              "config needs nothing") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        return parse_config(data, path.resolve().parent, path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


@functools.lru_cache(maxsize=4096)
def field_path(path: str) -> tuple[str | int, ...]:
    """``"hdr.addr[2]"`` -> ``("hdr", "addr", 2)`` (kept: a scrape asks for every entry)."""
    parts: list[str | int] = []
    for piece in filter(None, path.split(".")):
        name, _, rest = piece.partition("[")
        if name:
            parts.append(name)
        while rest:
            index, _, rest = rest.partition("]")
            parts.append(int(index))
            rest = rest.removeprefix("[")
    return tuple(parts)
