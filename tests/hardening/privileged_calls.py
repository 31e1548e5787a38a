"""Run as an unprivileged user by test_privileges.py: call each kind of API once and print one
line per call: ``<name> OK`` or ``<name> <ExceptionClass> <errno> <message>``."""

from __future__ import annotations

import sys

import pylibbpf


def _report(name: str, call: object) -> None:
    try:
        call()  # type: ignore[operator]
    except OSError as exc:
        print(f"{name} {type(exc).__name__} {exc.errno} {exc}".replace("\n", " "), flush=True)
    else:
        print(f"{name} OK", flush=True)


def main(minimal: str, events: str, pin_dir: str) -> None:
    """Each API family once; resources are closed at once."""
    def map_create() -> None:
        with pylibbpf.Map.create(pylibbpf.MapType.HASH, 4, 4, 4) as m:
            m[1] = 2
            assert m[1] == (2).to_bytes(4, "little")

    def load() -> None:
        with pylibbpf.Object.open_file(minimal) as obj:
            obj.load()

    def attach() -> None:
        with pylibbpf.Object.open_file(minimal) as obj:
            obj.load()
            obj.programs["on_getpid"].attach().destroy()

    def ring_buffer() -> None:
        with pylibbpf.Object.open_file(events) as obj:
            obj.load()
            with pylibbpf.RingBuffer(obj.maps["samples"], lambda data: None) as rb:
                rb.poll(0)

    def pin() -> None:
        with pylibbpf.Map.create(pylibbpf.MapType.ARRAY, 4, 4, 1) as m:
            m.pin(f"{pin_dir}/hardening-unprivileged")
            m.unpin(f"{pin_dir}/hardening-unprivileged")

    def from_id() -> None:
        first = next(iter(pylibbpf.map_ids()), None)
        if first is not None:
            pylibbpf.Map.from_id(first).close()

    for name, call in (("map_create", map_create), ("load", load), ("attach", attach),
                       ("ring_buffer", ring_buffer), ("pin", pin), ("map_from_id", from_id)):
        _report(name, call)


if __name__ == "__main__":
    main(*sys.argv[1:4])
