"""``python -m fuzz mutate``: a mutation campaign against libbpf's parser behind pylibbpf.

Real objects of the test suite are mutated (byte flips, truncations, splices of two objects,
overwrites of ELF header, section header, symbol and relocation fields, and mutations aimed at
``.BTF`` and ``.BTF.ext``) and fed to one entry point each:

``open_mem``
    ``Object.open_mem`` and a walk over the programs and maps;
``open_file``
    the same input written to a file, through ``Object.open_file``;
``load``
    ``Object.open_mem`` then ``Object.load`` (needs root and a kernel).

Each input runs in a child forked from a parent that has already imported pylibbpf (a fork
server), so an input costs a ``fork()`` rather than an interpreter start; the child gets
``--timeout`` seconds of CPU and wall time (``SIGALRM``, default action) before it counts as a
hang.  A child killed by any other signal is a crash.  Input ``i`` of a campaign depends only on
``--seed`` and ``i``, so ``--only I`` regenerates one input; crashing and hanging inputs are saved
under ``--save`` (default ``fuzz/.work/mutate/``).
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import random
import select
import signal
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .corpus import WORK, legacy_objects, test_objects

__all__ = ["ENTRY_POINTS", "Campaign", "Mutator", "main", "run_campaign"]

ENTRY_POINTS = ("open_mem", "open_file", "load")
_INTERESTING32 = (0, 1, 2, 3, 4, 7, 8, 12, 16, 24, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000,
                  0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)
_OUTCOME_OK = "ok"


@dataclass(frozen=True)
class _Region:
    """A stretch of a seed object worth mutating, with the size of its fields."""

    kind: str  # "btf", "btf_ext", "ehdr", "shdr", "symtab", "rel", "code", "data"
    start: int
    end: int
    step: int  # field/record granularity (4 for BTF words, 24 for symbols...)


def _regions(data: bytes) -> list[_Region]:
    """Where ``data`` keeps its structures (an unreadable seed just gets no regions)."""
    from pylibbpf.elf import ElfError, read_elf

    out = [_Region("ehdr", 16, 64, 2)]
    try:
        raw = read_elf(data, strict=False)
    except ElfError:
        return out
    e_shoff = struct.unpack_from("<Q", data, 40)[0]
    out.append(_Region("shdr", e_shoff, e_shoff + 64 * len(raw.sections), 8))
    for sec in raw.sections:
        if sec.type == 8 or not sec.size or sec.offset + sec.size > len(data):
            continue
        start, end = sec.offset, sec.offset + sec.size
        if sec.name == ".BTF":
            out.append(_Region("btf", start, end, 4))
        elif sec.name == ".BTF.ext":
            out.append(_Region("btf_ext", start, end, 4))
        elif sec.type == 2:
            out.append(_Region("symtab", start, end, 8))
        elif sec.type == 9:
            out.append(_Region("rel", start, end, 8))
        elif sec.is_exec:
            out.append(_Region("code", start, end, 8))
        elif sec.type == 1 and not sec.name.startswith(".debug"):
            out.append(_Region("data", start, end, 4))
    return out


class Mutator:
    """Turns seed objects into mutated inputs; :meth:`make` is deterministic in its ``rng``."""

    def __init__(self, seeds: dict[str, bytes]) -> None:
        if not seeds:
            raise ValueError("the mutator needs at least one seed object")
        self.names = sorted(seeds)
        self.seeds = seeds
        self.regions = {name: _regions(seeds[name]) for name in self.names}
        self._strategies: list[tuple[str, int, Callable[[random.Random, str, bytearray],
                                                        bytearray]]] = [
            ("flip", 3, self._flip),
            ("btf", 4, self._btf),
            ("struct", 3, self._struct),
            ("truncate", 1, self._truncate),
            ("splice", 1, self._splice),
        ]

    def make(self, rng: random.Random) -> tuple[str, str, bytes]:
        """(seed name, what was done, mutated bytes)."""
        name = rng.choice(self.names)
        data = bytearray(self.seeds[name])
        steps = []
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            label, _w, func = rng.choices(self._strategies,
                                          weights=[w for _l, w, _f in self._strategies])[0]
            data = func(rng, name, data)
            steps.append(label)
            if not data:
                data = bytearray(b"\x7fELF")
        return name, "+".join(steps), bytes(data)

    @staticmethod
    def _word(rng: random.Random, old: int) -> int:
        choice = rng.randrange(4)
        if choice == 0:
            return rng.choice(_INTERESTING32)
        if choice == 1:
            return (old + rng.randint(-16, 16)) & 0xFFFFFFFF
        if choice == 2:
            return old ^ (1 << rng.randrange(32))
        return rng.getrandbits(32)

    def _overwrite(self, rng: random.Random, data: bytearray, region: _Region) -> None:
        end = min(region.end, len(data))
        if end - region.start < 4:
            return
        if rng.random() < 0.3:
            pos = rng.randrange(region.start, end)
            data[pos] = rng.getrandbits(8)
            return
        slots = (end - 4 - region.start) // 4 + 1
        pos = region.start + 4 * rng.randrange(slots)
        old = struct.unpack_from("<I", data, pos)[0]
        struct.pack_into("<I", data, pos, self._word(rng, old))

    def _flip(self, rng: random.Random, _name: str, data: bytearray) -> bytearray:
        for _ in range(rng.choice((1, 1, 2, 4, 8))):
            pos = rng.randrange(len(data))
            if rng.random() < 0.5:
                data[pos] ^= 1 << rng.randrange(8)
            else:
                data[pos] = rng.getrandbits(8)
        return data

    def _pick(self, rng: random.Random, name: str, kinds: tuple[str, ...]) -> _Region | None:
        found = [r for r in self.regions[name] if r.kind in kinds]
        return rng.choice(found) if found else None

    def _btf(self, rng: random.Random, name: str, data: bytearray) -> bytearray:
        region = self._pick(rng, name, ("btf", "btf_ext"))
        if region is None:
            return self._struct(rng, name, data)
        for _ in range(rng.choice((1, 1, 2, 3))):
            if rng.random() < 0.25:
                # the header: offsets and lengths of the type and string sections
                header = _Region(region.kind, region.start, region.start + 32, 4)
                self._overwrite(rng, data, header)
            else:
                self._overwrite(rng, data, region)
        return data

    def _struct(self, rng: random.Random, name: str, data: bytearray) -> bytearray:
        region = self._pick(rng, name, ("ehdr", "shdr", "symtab", "rel", "code", "data"))
        if region is None:
            return self._flip(rng, name, data)
        self._overwrite(rng, data, region)
        return data

    def _truncate(self, rng: random.Random, name: str, data: bytearray) -> bytearray:
        if rng.random() < 0.5:
            cuts = [r.start for r in self.regions[name]] + [r.end for r in self.regions[name]]
            cut = rng.choice(cuts) + rng.randint(-8, 8)
        else:
            cut = rng.randrange(len(data))
        return data[:max(cut, 0)]

    def _splice(self, rng: random.Random, _name: str, data: bytearray) -> bytearray:
        other = self.seeds[rng.choice(self.names)]
        at = rng.randrange(len(data))
        if rng.random() < 0.5 and at < len(other):
            return data[:at] + other[at:]  # same offsets: keeps headers plausible
        src = rng.randrange(len(other))
        chunk = other[src:src + rng.choice((8, 64, 512, 4096))]
        return data[:at] + chunk + data[at + len(chunk):]


def seed_objects() -> dict[str, bytes]:
    """The test suite's objects (BTF, no BTF, CO-RE, legacy ``maps``) as seeds."""
    return {**test_objects(), **{f"legacy-{k}": v for k, v in legacy_objects().items()}}


def input_for(mutator: Mutator, seed: int, index: int) -> tuple[str, str, bytes]:
    """Input ``index`` of the campaign with ``seed``: the same bytes on every run."""
    return mutator.make(random.Random(seed * 1_000_003 + index))


# ------------------------------------------------------------------------------ children

def _exercise(obj: object) -> None:
    for prog in obj.programs.values():  # type: ignore[attr-defined]
        _ = (prog.name, prog.section_name, prog.type, prog.insn_cnt)
        bytes(prog.insns)
    for m in obj.maps.values():  # type: ignore[attr-defined]
        _ = (m.name, m.type, m.key_size, m.value_size, m.max_entries)


def _child(entry: str, data: bytes, validate: bool, scratch: str) -> str:
    """Run one input; return the outcome (``ok`` or the exception's type name)."""
    import pylibbpf

    try:
        if entry == "open_file":
            with open(scratch, "wb") as f:
                f.write(data)
            obj = pylibbpf.Object.open_file(scratch, validate=validate)
        else:
            obj = pylibbpf.Object.open_mem(data, object_name="mutant", validate=validate)
        with obj:
            _exercise(obj)
            if entry == "load":
                obj.load()
    except Exception as exc:  # noqa: BLE001 - the outcome is the type
        kind = type(exc).__name__
        if not isinstance(exc, (pylibbpf.BpfError, ValueError)):
            kind = "undocumented:" + kind
        return kind
    return _OUTCOME_OK


def _run_one(entry: str, data: bytes, validate: bool, timeout: float,
             scratch: str) -> tuple[str, int]:
    """Fork a child for one input; (outcome, signal number or 0)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            os.close(read_end)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(max(1, round(timeout)))
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            faulthandler.disable()  # a parent's handler writes to its own copy of stderr
            outcome = _child(entry, data, validate, scratch)
            os.write(write_end, outcome.encode()[:512])
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    deadline = time.monotonic() + timeout + 5
    while True:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([read_end], [], [], max(left, 0))
        if not ready:
            os.kill(pid, signal.SIGKILL)  # the alarm did not fire: count it as a hang
            break
        chunk = os.read(read_end, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return ("hang" if sig in (signal.SIGALRM, signal.SIGKILL) else "crash"), sig
    text = b"".join(chunks).decode(errors="replace")
    return (text or "crash:no-outcome"), 0


# ------------------------------------------------------------------------------ campaign

@dataclass
class Campaign:
    """The counts of one entry point's campaign."""

    entry: str
    inputs: int = 0
    seconds: float = 0.0
    crashes: int = 0
    hangs: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    findings: list[dict[str, object]] = field(default_factory=list)


def run_campaign(entry: str, count: int, *, seed: int = 1, timeout: float = 10.0,
                 validate: bool = True, save: Path | None = None, start: int = 0,
                 mutator: Mutator | None = None,
                 progress: Callable[[Campaign], None] | None = None) -> Campaign:
    """Run inputs ``start .. start+count-1`` of the campaign through ``entry``."""
    if entry not in ENTRY_POINTS:
        raise ValueError(f"unknown entry point {entry!r}; known: {', '.join(ENTRY_POINTS)}")
    mutator = mutator or Mutator(seed_objects())
    # Warm up in the parent (libbpf loaded, signatures bound, modules imported) so that a
    # child starts with all of it: one open of a real seed does it.
    _child("open_mem", mutator.seeds[mutator.names[0]], validate, "")
    result = Campaign(entry)
    outcomes: Counter[str] = Counter()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pylibbpf-mutate-") as tmp:
        scratch = os.path.join(tmp, "input.o")
        for index in range(start, start + count):
            seed_name, how, data = input_for(mutator, seed, index)
            outcome, sig = _run_one(entry, data, validate, timeout, scratch)
            outcomes[outcome] += 1
            result.inputs += 1
            if outcome in ("hang", "crash") or outcome.startswith(("undocumented:", "crash:")):
                if outcome == "hang":
                    result.hangs += 1
                else:
                    result.crashes += 1
                finding: dict[str, object] = {"index": index, "seed": seed_name,
                                              "mutation": how, "outcome": outcome,
                                              "signal": sig}
                if save is not None:
                    save.mkdir(parents=True, exist_ok=True)
                    path = save / f"{entry}-{outcome.replace(':', '_')}-{seed}-{index}.bin"
                    path.write_bytes(data)
                    finding["path"] = str(path)
                result.findings.append(finding)
            if progress is not None and result.inputs % 1000 == 0:
                result.seconds = round(time.monotonic() - began, 1)
                result.outcomes = dict(outcomes)
                progress(result)
    result.seconds = round(time.monotonic() - began, 1)
    result.outcomes = dict(sorted(outcomes.items(), key=lambda kv: -kv[1]))
    return result


def format_table(results: list[Campaign]) -> str:
    """The results as a text table: one row per entry point, then the outcome counts."""
    lines = [f"{'entry':<10} {'inputs':>7} {'crashes':>8} {'hangs':>6} {'seconds':>8} "
             f"{'inputs/s':>8}"]
    for r in results:
        rate = r.inputs / r.seconds if r.seconds else 0.0
        lines.append(f"{r.entry:<10} {r.inputs:>7} {r.crashes:>8} {r.hangs:>6} "
                     f"{r.seconds:>8.1f} {rate:>8.0f}")
    for r in results:
        lines.append(f"\n{r.entry}: outcomes")
        for outcome, n in r.outcomes.items():
            lines.append(f"  {outcome:<32} {n:>7}")
        for f in r.findings:
            lines.append(f"  FINDING #{f['index']} ({f['seed']}, {f['mutation']}): "
                         f"{f['outcome']} signal {f['signal']} {f.get('path', '')}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The command line of ``python -m fuzz mutate``."""
    parser = argparse.ArgumentParser(prog="python -m fuzz mutate",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("entries", nargs="*", metavar="ENTRY",
                        help=f"entry points (default: {', '.join(ENTRY_POINTS)})")
    parser.add_argument("--count", type=int, default=20_000, help="inputs per entry point")
    parser.add_argument("--seed", type=int, default=1, help="campaign seed (default 1)")
    parser.add_argument("--start", type=int, default=0, help="first input index")
    parser.add_argument("--only", type=int, help="run just input ONLY (with --save: keep it)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds per input before it is a hang (default 10)")
    parser.add_argument("--no-validate", action="store_true",
                        help="open with validate=False: libbpf's parser alone")
    parser.add_argument("--save", type=Path, default=WORK / "mutate",
                        help="where crashing and hanging inputs are written")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    opts = parser.parse_args(argv)
    unknown = [e for e in opts.entries if e not in ENTRY_POINTS]
    if unknown:
        parser.error(f"unknown entry points {unknown}; known: {', '.join(ENTRY_POINTS)}")
    entries = opts.entries or list(ENTRY_POINTS)
    count, start = (1, opts.only) if opts.only is not None else (opts.count, opts.start)
    mutator = Mutator(seed_objects())

    def progress(c: Campaign) -> None:
        if not opts.quiet:
            print(f"  {c.entry}: {c.inputs} inputs, {c.crashes} crashes, {c.hangs} hangs, "
                  f"{c.seconds:.0f} s", file=sys.stderr, flush=True)

    results = [run_campaign(entry, count, seed=opts.seed, timeout=opts.timeout,
                            validate=not opts.no_validate, save=opts.save, start=start,
                            mutator=mutator, progress=progress) for entry in entries]
    print(format_table(results))
    if opts.json:
        opts.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 1 if any(r.crashes or r.hangs for r in results) else 0
