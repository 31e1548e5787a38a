"""BPF maps as Prometheus metrics: ``pylibbpf export --config FILE``, and the same in Python.

In the spirit of Cloudflare's ebpf_exporter: a YAML config names BPF objects (a ``.o``, or a
``.bpf.c`` compiled at start), their globals, which program variants to load (probing the
kernel), and how their maps become counters, gauges and histograms; the maps are read at
scrape time with batch reads and decoded with their BTF.  See ``docs/export.md``::

    from pylibbpf.export import Exporter
    with Exporter.from_file("syscalls.yaml").start() as exporter:
        server = exporter.serve("127.0.0.1", 9435)
        ...

Needs the ``export`` extra (``prometheus-client``, and ``PyYAML`` for YAML configs).  The names
below load on first use (pylibbpf._lazy), so that the ``pylibbpf`` command can list ``export``
without importing prometheus_client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import exports as _lazy_exports

if TYPE_CHECKING:
    from .config import Config as Config
    from .config import ConfigError as ConfigError
    from .config import load_config as load_config
    from .config import parse_config as parse_config
    from .exporter import Exporter as Exporter
    from .exporter import MetricsServer as MetricsServer
    from .exporter import StartError as StartError

__getattr__, __dir__ = _lazy_exports(__name__, __file__, globals())
