"""Map contents -> Prometheus metric families: labels, per-CPU sums, histogram buckets.

Pure computation over decoded keys and values (no kernel, no prometheus_client server), so that
every rule here is unit-tested on made-up data:

* a sample per distinct label set; keys that give the same labels are added up (a label set
  that leaves out part of the key sums over it);
* per-CPU values are summed first (ints, arrays element by element, structs member by member);
* histogram bucket ``i`` counts values ``v`` with ``floor(log2(v)) == i`` (log2; 0 and 1 in
  bucket 0) or ``min + i*step <= v < min + (i+1)*step`` (linear); its ``le`` is the bucket's
  exclusive upper end, ``2**(i+1)`` or ``min + (i+1)*step``, times the multiplier: a true upper
  bound also when the BPF side truncated (``ns / 1000``).  The last bucket is open by default
  (BPF code clamps larger values into it), so it reaches only ``+Inf``; an index past the last
  bucket counts in ``+Inf`` too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from prometheus_client import utils as _prom_utils
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from .config import HistogramSpec, LabelSpec, MetricSpec, field_path

__all__ = ["bucket_bounds", "build_family", "cumulative_buckets", "get_field", "label_values",
           "sum_per_cpu"]

OnError = Callable[[BaseException], None]
# how Prometheus writes a bound (Go's formatting: 1e-06, 1.048576e+06); untyped upstream
_go_float = cast(Callable[[float], str], _prom_utils.floatToGoString)


def get_field(value: Any, path: str | Sequence[str | int]) -> Any:
    """The member at ``path`` (``"hdr.addr[2]"``) of a decoded value; ``""`` is the value."""
    if not path:
        return value
    parts = field_path(path) if isinstance(path, str) else path
    for part in parts:
        value = value[part]
    return value


def sum_per_cpu(values: Sequence[Any]) -> Any:
    """One value from a per-CPU list: ints added, arrays and structs added member by member
    (strings and other members keep the first CPU's)."""
    first = values[0]
    if isinstance(first, bool) or not isinstance(first, (int, float, list, dict)):
        return first
    if isinstance(first, (int, float)):
        return sum(values)
    if isinstance(first, list):
        return [sum_per_cpu([v[i] for v in values]) for i in range(len(first))]
    return {k: sum_per_cpu([v[k] for v in values]) for k in first}


def label_values(labels: Sequence[LabelSpec], key: Any, value: Any) -> tuple[str, ...] | None:
    """The label texts of one entry, or ``None`` when a decoder drops it."""
    out = []
    for label in labels:
        item = get_field(value if label.from_value else key, label.field)
        for decode in label.decoders:
            item = decode(item)
            if item is None:
                return None
        out.append(item if isinstance(item, str) else str(item))
    return tuple(out)


def bucket_bounds(spec: HistogramSpec, n: int) -> list[float]:
    """The ``le`` of each finite bucket (all ``n``, or ``n - 1`` when the last is open)."""
    finite = n - 1 if spec.last_bucket_open else n
    if spec.bucket_type == "log2":
        ends = [2 ** (i + 1) for i in range(finite)]
    else:
        ends = [spec.bucket_min + (i + 1) * spec.bucket_step for i in range(finite)]
    # 15 significant digits: 4.096e-06, not the 4.0960000000000005e-06 of 4096 * 1e-9
    return [float(f"{end * spec.multiplier:.15g}") for end in ends]


def cumulative_buckets(spec: HistogramSpec, counts: Sequence[int] | dict[int, int],
                       n: int) -> list[tuple[str, float]]:
    """``(le, cumulative count)`` pairs ending with ``+Inf`` (the total) for bucket counts by
    index (a list, or a dict index -> count; indexes past the last bucket count in +Inf)."""
    by_index = dict(enumerate(counts)) if not isinstance(counts, dict) else counts
    bounds = bucket_bounds(spec, n)
    out = []
    running = 0
    for i, le in enumerate(bounds):
        running += by_index.get(i, 0)
        out.append((_go_float(le), float(running)))
    total = sum(by_index.values())
    out.append(("+Inf", float(total)))
    return out


class _Histogram:
    __slots__ = ("counts", "total", "has_sum")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.has_sum = False


def _bucket_index(spec: HistogramSpec, key: Any) -> int:
    assert spec.bucket is not None
    index = get_field(key, spec.bucket.field)
    for decode in spec.bucket.decoders:
        index = decode(index)
    return max(int(index), 0)


def _histogram(spec: HistogramSpec, items: Iterable[tuple[Any, Any]],
               on_error: OnError) -> Metric:
    groups: dict[tuple[str, ...], _Histogram] = {}
    n = spec.buckets or 0
    for key, value in items:
        try:
            labels = label_values(spec.labels, key, value)
            if labels is None:
                continue
            hist = groups.get(labels)
            if hist is None:
                hist = groups[labels] = _Histogram()
            if spec.slots is not None:
                slots = get_field(value, spec.slots)
                n = n or len(slots)
                for i, c in enumerate(slots):
                    if c:
                        hist.counts[i] = hist.counts.get(i, 0) + c
            else:
                c = get_field(value, spec.count)
                if c:
                    i = _bucket_index(spec, key)
                    hist.counts[i] = hist.counts.get(i, 0) + c
            if spec.sum is not None:
                hist.total += get_field(value, spec.sum)
                hist.has_sum = True
        except Exception as exc:  # one bad entry costs its sample, not the scrape
            on_error(exc)
    family = HistogramMetricFamily(spec.name, spec.help, labels=[x.name for x in spec.labels])
    for labels, hist in groups.items():
        buckets = cumulative_buckets(spec, hist.counts, n)
        count = buckets[-1][1]
        if spec.skip_zero and not count:
            continue
        if hist.has_sum:
            family.add_metric(list(labels), buckets, hist.total * spec.multiplier)
        else:  # prometheus_client writes _count only with a _sum: the count alone is still true
            family.add_metric(list(labels), buckets, None)
            family.add_sample(spec.name + "_count", dict(zip([x.name for x in spec.labels],
                                                             labels, strict=True)), count)
    return family


def _scalar(spec: MetricSpec, items: Iterable[tuple[Any, Any]], on_error: OnError) -> Metric:
    sums: dict[tuple[str, ...], float] = {}
    for key, value in items:
        try:
            labels = label_values(spec.labels, key, value)
            if labels is None:
                continue
            sums[labels] = sums.get(labels, 0) + get_field(value, spec.value)
        except Exception as exc:
            on_error(exc)
    names = [x.name for x in spec.labels]
    family: Metric
    if spec.kind == "counter":
        family = CounterMetricFamily(spec.name, spec.help, labels=names)
    else:
        family = GaugeMetricFamily(spec.name, spec.help, labels=names)
    for labels, total in sums.items():
        family.add_metric(list(labels), total)
    return family


def build_family(spec: MetricSpec | HistogramSpec, items: Iterable[tuple[Any, Any]],
                 on_error: OnError) -> Metric:
    """The metric family of ``spec`` from a map's decoded ``(key, value)`` pairs (per-CPU values
    already summed); an entry that cannot be turned into a sample is passed to ``on_error``."""
    if isinstance(spec, HistogramSpec):
        return _histogram(spec, items, on_error)
    return _scalar(spec, items, on_error)
