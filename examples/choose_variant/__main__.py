"""choose_variant, the Python side: ask the kernel, then load only the variant it supports.

    python -m examples.choose_variant                    # probe: tp_btf where it attaches
    python -m examples.choose_variant --variant raw_tp   # force the fallback

The pattern of libbpf-tools (``if (probe_tp_btf("sched_process_exec"))
bpf_program__set_autoload(obj->progs.exec_raw, false); else ...``) in Python:

C (libbpf-tools)                              Python (this file)
  obj = x_bpf__open()                           obj = Object.open_file(path)
  if (probe_tp_btf("sched_process_exec"))       if probe.tp_btf_can_attach("sched_process_exec"):
      bpf_program__set_autoload(                    obj.programs["exec_raw"].set_autoload(False)
          obj->progs.exec_raw, false);
  else ...                                      else: ...
  obj->rodata->parent_tgid = getpid()           obj.rodata["parent_tgid"] = os.getpid()
  x_bpf__load(obj)                              obj.load()
  bpf_program__attach(obj->progs.exec_btf)      obj.programs["exec_btf"].attach()

It then runs ``true`` and prints what the loaded variant saw of that exec.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from examples._build import build_bpf
from pylibbpf import Object, probe

HERE = Path(__file__).resolve().parent
TRACEPOINT = "sched_process_exec"
VARIANTS = {"tp_btf": "exec_btf", "raw_tp": "exec_raw"}  # section prefix -> program name
SEEN_BY = {1: "tp_btf", 2: "raw_tp"}


def build_object() -> Path:
    """Compile choose_variant.bpf.c with clang (cached by content hash)."""
    return build_bpf(HERE / "choose_variant.bpf.c")


def choose(obj: Object, wanted: str) -> str:
    """Turn off every variant but one: ``wanted``, or (``"auto"``) tp_btf where it attaches,
    else raw_tp.  Returns the variant chosen."""
    if wanted == "auto":
        answer = probe.tp_btf_can_attach(TRACEPOINT)
        wanted = "tp_btf" if answer else "raw_tp"
        print(f"probe: {answer}")
    for variant, program in VARIANTS.items():
        obj.programs[program].set_autoload(variant == wanted)
    return wanted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="choose_variant",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=["auto", *VARIANTS], default="auto",
                        help="which variant to load (auto: ask the kernel)")
    args = parser.parse_args(argv)

    with Object.open_file(build_object()) as obj:
        variant = choose(obj, args.variant)
        obj.rodata["parent_tgid"] = os.getpid()
        obj.load()
        program = VARIANTS[variant]
        print(f"loaded: {program} ({variant}/{TRACEPOINT})", flush=True)
        with obj.programs[program].attach():
            child = subprocess.Popen(["true"])
            child.wait()
        try:
            value = obj.maps["seen"].lookup(child.pid.to_bytes(4, sys.byteorder))
        except KeyError:
            print(f"exec of pid {child.pid}: not seen")
            return 1
        seen_by = SEEN_BY.get(int.from_bytes(value[:4], sys.byteorder), "?")
        comm = value[4:20].split(b"\0", 1)[0].decode(errors="replace")
        print(f"exec of pid {child.pid} ({comm}) seen by {seen_by}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
