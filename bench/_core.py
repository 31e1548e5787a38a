"""How the benchmark measures: groups of contenders taking turns, ratios per round.

A :class:`Group` sets up what its contenders share (a map, a ring, an object) and gives each
contender a timer: a function that does one measured run and returns seconds per unit (per
operation, entry, event or load), doing any preparation it needs (refilling a map, filling a
ring) outside the timed part.  :func:`run_group` runs the contenders of a group in rounds; a
round is ``slices`` turns of every contender, the order rotating from turn to turn, and a
contender's figure for the round is the median of its turns.  Each ratio is taken per round,
between figures measured interleaved on the same machine state (a burst of other load on this
shared 2-core machine then hits every contender of a round alike, or is outvoted).  A
:class:`Row` of the table names its subject (a pylibbpf contender), the contenders of its three
columns (raw ctypes, C, bcc) and its target.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

Timer = Callable[[], float]
"""One measured run: seconds per unit."""

Setup = Callable[[ExitStack], dict[str, "Timer | str"]]
"""A group's setup: its contenders, each a timer or why it is not there ("not installed")."""


@dataclass(frozen=True)
class Group:
    key: str
    title: str
    unit: str
    setup: Setup
    warmup: bool = True   # one untimed turn each first (lazy bindings, first-touch faults)
    sliced: bool = True   # several turns per round (False: one, for the longest runs)


@dataclass(frozen=True)
class Target:
    against: str          # the contender the subject is divided by
    limit: float          # met when the median ratio is at most this
    text: str             # how the issue states it, e.g. "<= 1.15x raw ctypes"


@dataclass(frozen=True)
class Row:
    label: str
    group: str
    subject: str
    raw: str | None = None
    c: str | None = None
    bcc: str | None = None
    target: Target | None = None


@dataclass
class Outcome:
    """What a group's rounds measured: seconds per unit per contender per round, and the
    contenders that were not there with the reason."""

    times: dict[str, list[float]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)


def rotation(names: list[str], round_: int) -> list[str]:
    """The order of round ``round_``: rotated by one each round, reversed every other one (so
    that no contender always follows the same other one)."""
    k = round_ % len(names)
    order = names[k:] + names[:k]
    return order[::-1] if (round_ // len(names)) % 2 else order


def run_group(group: Group, rounds: int, slices: int,
              progress: Callable[[str], None]) -> Outcome:
    outcome = Outcome()
    with ExitStack() as stack:
        contenders = group.setup(stack)
        timers: dict[str, Timer] = {}
        for name, item in contenders.items():
            if isinstance(item, str):
                outcome.missing[name] = item
            else:
                timers[name] = item
        names = list(timers)
        if group.warmup:
            for name in names:
                timers[name]()
        for name in names:
            outcome.times[name] = []
        turns = slices if group.sliced else 1
        for r in range(rounds):
            progress(f"{group.title}: round {r + 1}/{rounds}")
            measured: dict[str, list[float]] = {name: [] for name in names}
            for turn in range(turns):
                for name in rotation(names, r * turns + turn):
                    seconds = timers[name]()
                    if not seconds > 0:
                        raise RuntimeError(f"{group.title}: {name} measured {seconds} s")
                    measured[name].append(seconds)
            for name in names:
                outcome.times[name].append(statistics.median(measured[name]))
    return outcome


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{_fmt(self.median)} ({_fmt(self.low)}-{_fmt(self.high)})"


def _fmt(x: float) -> str:
    return f"{x:.3f}" if x < 0.1 else f"{x:.2f}" if x < 100 else f"{x:.0f}"


def spread(values: list[float]) -> Spread:
    return Spread(statistics.median(values), min(values), max(values))


def ratios(outcome: Outcome, subject: str, against: str) -> Spread | str:
    """The per-round ratio subject / against, or why there is none."""
    for name in (subject, against):
        if name in outcome.missing:
            return outcome.missing[name]
        if name not in outcome.times:
            return "not measured"
    a, b = outcome.times[subject], outcome.times[against]
    return spread([x / y for x, y in zip(a, b, strict=True)])
