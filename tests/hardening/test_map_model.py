"""Model-based tests: random sequences of map operations on real kernel maps against a Python
model of each map type's semantics (hypothesis stateful testing).

pylibbpf's :class:`~pylibbpf.Map` is checked on ARRAY, HASH, PERCPU_HASH and LRU_HASH maps
(flags ANY/NOEXIST/EXIST, full maps E2BIG, array bounds, get_next_key walks, batch operations,
LRU eviction bounds); compat's legacy calls on HASH and ARRAY with the legacy rules of
``legacy-interface.md`` §5 (ARRAY ignores flags and refuses delete, get_next_key of a missing
key restarts, strict legacy errnos ENOENT/ENOMEM).
"""

from __future__ import annotations

import errno
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

import compat
import pylibbpf
from pylibbpf import BpfError, Map, MapType, UpdateFlags
from tests.support.repetition import rounds

pytestmark = pytest.mark.kernel

MAX = 8
KEYS = st.integers(0, MAX + 3)  # a few past max_entries: collisions, full maps, bounds
VALUES = st.integers(0, (1 << 64) - 1)
FLAGS = st.sampled_from([UpdateFlags.ANY, UpdateFlags.NOEXIST, UpdateFlags.EXIST])
SETTINGS = settings(max_examples=rounds(50, 12), stateful_step_count=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
NCPU = pylibbpf.num_possible_cpus()
STEPS = {"pylibbpf": 0, "compat": 0}


def k(key: int) -> bytes:
    return key.to_bytes(4, "little")


def v(value: int) -> bytes:
    return value.to_bytes(8, "little")


class MapMachine(RuleBasedStateMachine):
    """pylibbpf's Map against a dict; subclasses set the map type."""

    map_type = MapType.HASH
    percpu = False
    lru = False
    array = False

    def __init__(self) -> None:
        super().__init__()
        self.map = Map.create(self.map_type, 4, 8, MAX)
        self.model: dict[int, Any] = {i: self._expect(0) for i in range(MAX)} if self.array \
            else {}

    def teardown(self) -> None:
        self.map.close()

    def _expect(self, value: int | list[int]) -> Any:
        if self.percpu:
            values = value if isinstance(value, list) else [value] * NCPU
            return [v(x) for x in values]
        return v(value)  # type: ignore[arg-type]

    def _evicted(self, key: int) -> None:
        assert self.lru, f"key {key} vanished from a {self.map_type.name} map"
        del self.model[key]

    def _errno_of_update(self, key: int, flags: int) -> int:
        present = key in self.model
        if self.array:
            if key >= MAX:
                return errno.E2BIG
            return errno.EEXIST if flags == UpdateFlags.NOEXIST else 0
        if flags == UpdateFlags.NOEXIST and present:
            return errno.EEXIST
        if flags == UpdateFlags.EXIST and not present:
            return errno.ENOENT
        if not present and len(self.model) >= MAX and not self.lru:
            return errno.E2BIG
        return 0

    def _update(self, key: int, value: int | list[int], flags: int) -> None:
        STEPS["pylibbpf"] += 1
        want = self._errno_of_update(key, flags)
        try:
            self.map.update(k(key), value if isinstance(value, list) else v(value)
                            if not self.percpu else value, flags)
            got: int | None = 0
        except BpfError as exc:
            got = exc.errno
        if self.lru and key in self.model and got != want:
            # evicted meanwhile: the kernel answers as for an absent key
            self._evicted(key)
            want = self._errno_of_update(key, flags)
        assert got == want, f"update({key}, flags={flags!r}): errno {got}, model says {want}"
        if got == 0:
            self.model[key] = self._expect(value)
            assert self.map.lookup(k(key)) == self.model[key]  # never evicts what it just wrote
            if len(self.model) > MAX:  # LRU: the kernel evicted some; learn which
                self.walk()

    @rule(key=KEYS, value=VALUES, flags=FLAGS)
    def update(self, key: int, value: int, flags: int) -> None:
        self._update(key, value, flags)

    @rule(key=KEYS)
    def lookup(self, key: int) -> None:
        STEPS["pylibbpf"] += 1
        try:
            got = self.map.lookup(k(key))
        except KeyError:
            if key in self.model:
                self._evicted(key)
            return
        assert key in self.model, f"lookup({key}) found a key the model lacks"
        assert got == self.model[key]

    @rule(key=KEYS)
    def delete(self, key: int) -> None:
        STEPS["pylibbpf"] += 1
        if self.array:
            with pytest.raises(BpfError) as info:
                self.map.delete(k(key))
            assert info.value.errno == errno.EINVAL
            return
        try:
            self.map.delete(k(key))
        except KeyError:
            if key in self.model:
                self._evicted(key)
            return
        assert key in self.model, f"delete({key}) removed a key the model lacks"
        del self.model[key]

    @rule(start=st.none() | KEYS)
    def get_next_key(self, start: int | None) -> None:
        STEPS["pylibbpf"] += 1
        nxt = self.map.get_next_key(None if start is None else k(start))
        if nxt is None:
            assert self.lru or not self.model or (self.array and start == MAX - 1) or (
                start in self.model), f"get_next_key({start}) ended early"
            return
        key = int.from_bytes(nxt, "little")
        if self.array:
            assert key == (0 if start is None or start >= MAX else start + 1)
        else:
            assert key in self.model or self.lru

    @rule()
    def walk(self) -> None:
        """get_next_key from the start lists every key exactly once."""
        STEPS["pylibbpf"] += 1
        keys: list[int] = []
        current: bytes | None = None
        while (current := self.map.get_next_key(current)) is not None:
            keys.append(int.from_bytes(current, "little"))
            assert len(keys) <= MAX
        assert len(keys) == len(set(keys))
        self._sync(set(keys))

    def _sync(self, keys: set[int]) -> None:
        if self.lru:
            assert keys <= set(self.model), f"map has keys the model never wrote: {keys}"
            for gone in set(self.model) - keys:
                self._evicted(gone)
        assert keys == set(self.model)

    @rule(pairs=st.dictionaries(KEYS, VALUES, min_size=1, max_size=4))
    def update_batch(self, pairs: dict[int, int]) -> None:
        STEPS["pylibbpf"] += 1
        keys = [key for key in pairs if key < MAX] if self.array else list(pairs)
        if not self.lru and len(set(self.model) | set(keys)) > MAX:
            keys = [key for key in keys if key in self.model]
        if not keys:
            return
        values = [pairs[key] if not self.percpu else pairs[key] for key in keys]
        done = self.map.update_batch([k(x) for x in keys], [
            v(x) if not self.percpu else x for x in values])
        assert done == len(keys)
        for key, value in zip(keys, values, strict=True):
            self.model[key] = self._expect(value)
        if len(self.model) > MAX:
            self.walk()

    @rule()
    def lookup_batch(self) -> None:
        STEPS["pylibbpf"] += 1
        items = {int.from_bytes(key, "little"): value for key, value in self.map.lookup_batch()}
        self._sync(set(items))
        for key, value in items.items():
            assert value == self.model[key], f"batch value of {key}"

    @rule(picks=st.lists(st.integers(0, 1 << 16), min_size=1, max_size=3))
    def delete_batch(self, picks: list[int]) -> None:
        # What is drawn must not depend on the model: an LRU map's evictions depend on which
        # CPUs the updates ran on (per-CPU free lists), so on a busy machine the same steps
        # can leave a different model, and a draw shaped by it is "flaky data generation"
        # to hypothesis.  The picks index the keys present now.
        if self.array or not self.model:
            return
        STEPS["pylibbpf"] += 1
        present = sorted(self.model)
        chosen = list(dict.fromkeys(present[pick % len(present)] for pick in picks))
        try:
            done = self.map.delete_batch([k(x) for x in chosen])
        except KeyError:
            assert self.lru  # one was evicted meanwhile
            self.walk()
            return
        assert done == len(chosen)
        for key in chosen:
            del self.model[key]

    @rule()
    def drain(self) -> None:
        """lookup_and_delete_batch returns the whole map and empties it (hash maps)."""
        if self.array:
            return
        STEPS["pylibbpf"] += 1
        items = {int.from_bytes(key, "little"): value
                 for key, value in self.map.lookup_and_delete_batch()}
        self._sync(set(items))
        for key, value in items.items():
            assert value == self.model[key]
        self.model.clear()
        assert self.map.get_next_key() is None

    @invariant()
    def bounded(self) -> None:
        assert len(self.model) <= MAX


class ArrayMachine(MapMachine):
    map_type = MapType.ARRAY
    array = True


class HashMachine(MapMachine):
    map_type = MapType.HASH


class PercpuHashMachine(MapMachine):
    map_type = MapType.PERCPU_HASH
    percpu = True

    @rule(key=KEYS, values=st.lists(VALUES, min_size=NCPU, max_size=NCPU), flags=FLAGS)
    def update_per_cpu(self, key: int, values: list[int], flags: int) -> None:
        self._update(key, values, flags)


class LruHashMachine(MapMachine):
    map_type = MapType.LRU_HASH
    lru = True

    @rule(keys=st.lists(st.integers(100, 200), min_size=MAX, max_size=2 * MAX, unique=True))
    def flood(self, keys: list[int]) -> None:
        """More new keys than max_entries: never E2BIG, never more than max_entries kept,
        and the key written last always survives."""
        STEPS["pylibbpf"] += 1
        for key in keys:
            self.map.update(k(key), v(key))
            self.model[key] = v(key)
        assert self.map.lookup(k(keys[-1])) == v(keys[-1])
        self.walk()


@pytest.mark.parametrize("machine", [ArrayMachine, HashMachine, PercpuHashMachine,
                                     LruHashMachine], ids=lambda m: m.map_type.name)
def test_pylibbpf_map_against_its_model(machine: type[MapMachine]) -> None:
    before = STEPS["pylibbpf"]
    run_state_machine_as_test(machine, settings=SETTINGS)
    print(f"{machine.map_type.name}: {STEPS['pylibbpf'] - before} operations checked")
    assert STEPS["pylibbpf"] > before


# ------------------------------------------------------------------------------ compat


class LegacyMachine(RuleBasedStateMachine):
    """compat's legacy calls against the legacy rules (spec §5)."""

    map_type = compat.BPF_MAP_TYPE_HASH

    def __init__(self) -> None:
        super().__init__()
        self.fd = compat.bpf_create_map(self.map_type, 4, 8, MAX)
        self.array = self.map_type == compat.BPF_MAP_TYPE_ARRAY
        self.model: dict[int, bytes] = {i: v(0) for i in range(MAX)} if self.array else {}

    def teardown(self) -> None:
        os.close(self.fd)

    @rule(key=KEYS, value=VALUES, flags=st.sampled_from([0, 1, 2, 3, 7]), strict=st.booleans())
    def update(self, key: int, value: int, flags: int, strict: bool) -> None:
        STEPS["compat"] += 1
        present = key in self.model
        if flags not in (0, 1, 2):
            want = errno.EINVAL
        elif self.array:  # flags ignored; out of range E2BIG (legacy ENOENT)
            want = 0 if key < MAX else (errno.ENOENT if strict else errno.E2BIG)
        elif flags == compat.BPF_NOEXIST and present:
            want = errno.EEXIST
        elif flags == compat.BPF_EXIST and not present:
            want = errno.ENOENT
        elif not present and len(self.model) >= MAX:
            want = errno.ENOMEM if strict else errno.E2BIG
        else:
            want = 0
        try:
            compat.bpf_update_elem(self.fd, key, value, flags, strict_legacy_errors=strict)
            got: int | None = 0
        except compat.LegacyError as exc:
            got = exc.errno
            assert isinstance(exc, compat.MissingKeyError) == (got == errno.ENOENT)
        assert got == want, f"update({key}, flags={flags}, strict={strict}): {got} != {want}"
        if got == 0:
            self.model[key] = v(value)

    @rule(key=KEYS)
    def lookup(self, key: int) -> None:
        STEPS["compat"] += 1
        if key in self.model:
            assert compat.bpf_lookup_elem(self.fd, key) == self.model[key]
        else:
            with pytest.raises(compat.MissingKeyError):
                compat.bpf_lookup_elem(self.fd, key)

    @rule(key=KEYS)
    def delete(self, key: int) -> None:
        STEPS["compat"] += 1
        if self.array:
            with pytest.raises(compat.LegacyError) as info:
                compat.bpf_delete_elem(self.fd, key)
            assert info.value.errno == errno.EINVAL
        elif key in self.model:
            compat.bpf_delete_elem(self.fd, key)
            del self.model[key]
        else:
            with pytest.raises(compat.MissingKeyError):
                compat.bpf_delete_elem(self.fd, key)

    @rule(start=st.none() | KEYS)
    def get_next_key(self, start: int | None) -> None:
        STEPS["compat"] += 1
        nxt = compat.bpf_get_next_key(self.fd, start)
        keys = self._walk()
        if start is None or start not in self.model:  # legacy: restart from the first key
            assert nxt == (k(keys[0]) if keys else None)
        else:
            index = keys.index(start)
            assert nxt == (k(keys[index + 1]) if index + 1 < len(keys) else None)

    def _walk(self) -> list[int]:
        keys: list[int] = []
        current = compat.bpf_get_next_key(self.fd, None)
        while current is not None:
            keys.append(int.from_bytes(current, "little"))
            assert len(keys) <= MAX
            current = compat.bpf_get_next_key(self.fd, keys[-1])
        return keys

    @invariant()
    def same_keys(self) -> None:
        keys = self._walk()
        assert len(keys) == len(set(keys)) and set(keys) == set(self.model)


class LegacyArrayMachine(LegacyMachine):
    map_type = compat.BPF_MAP_TYPE_ARRAY


@pytest.mark.parametrize("machine", [LegacyMachine, LegacyArrayMachine],
                         ids=["HASH", "ARRAY"])
def test_compat_legacy_map_calls_against_the_legacy_model(machine: type[LegacyMachine]
                                                          ) -> None:
    before = STEPS["compat"]
    run_state_machine_as_test(machine, settings=SETTINGS)
    print(f"legacy {machine.__name__}: {STEPS['compat'] - before} operations checked")
    assert STEPS["compat"] > before

