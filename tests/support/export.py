"""The exporter's example configs as tests use them: read, adjusted, parsed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.bpfbuild import ROOT

EXAMPLES = ROOT / "examples" / "exporter"


def example_data(*names: str) -> dict[str, Any]:
    """The objects of ``examples/exporter/<name>.yaml`` in one config mapping, with their paths
    made absolute (so the result can be parsed from anywhere)."""
    import yaml

    objects = []
    for name in names:
        data = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
        for obj in data["objects"]:
            for key in ("source", "object"):
                if key in obj:
                    obj[key] = str((EXAMPLES / obj[key]).resolve())
            obj["include_dirs"] = [str((EXAMPLES / d).resolve())
                                   for d in obj.get("include_dirs", [])]
            objects.append(obj)
    return {"objects": objects}


def samples(families: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of collected metric families."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in families for s in family.samples}


def vendor() -> Path:
    return ROOT / "vendor"
