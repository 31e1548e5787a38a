"""``fork()`` while another thread uses a ring, perf or user ring buffer.

The child inherits the buffer's lock in whatever state the parent's threads left it, and its ring
memory is shared with the parent.  The rule (``pylibbpf/events/_guard.py``): in the child,
``close()`` returns at once and every other use raises :class:`StateError` (EPERM); the parent
goes on as if nothing happened.  Each case runs in a fresh interpreter (it forks with threads
running, and a regression would hang or crash it), which forks a child that gives up after 20 s
(``faulthandler`` prints where it hung); the whole run is bounded too.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.support.bpfbuild import compile_bpf
from tests.support.hardening import run_python

pytestmark = pytest.mark.kernel

COMMON = """
import errno, faulthandler, os, struct, sys, threading, time
import pylibbpf
from pylibbpf import Object, PerfBuffer, RingBuffer, StateError, UserRingBuffer

obj = Object.open_file(sys.argv[1])
obj.load()
stop = threading.Event()


def in_child(use, close):
    # fork() now, with the worker thread inside a guarded call; the child refuses `use`,
    # closes, and exits 0
    time.sleep(0.3)
    pid = os.fork()
    if pid == 0:
        faulthandler.dump_traceback_later(20, exit=True)
        try:
            use()
            print("child: use was not refused", flush=True)
            os._exit(3)
        except StateError as exc:
            if exc.errno != errno.EPERM or "fork()" not in str(exc):
                print("child: wrong error", exc, flush=True)
                os._exit(4)
        started = time.monotonic()
        close()
        close()
        print(f"child: refused, closed in {time.monotonic() - started:.3f} s", flush=True)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print("child exit:", os.waitstatus_to_exitcode(status), flush=True)


def until(condition, what):
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"parent: timed out waiting for {what}")
        time.sleep(0.01)
"""

RING = """
got = []
rb = RingBuffer(obj.maps["rb"], lambda d: got.append(struct.unpack_from("<Q", d)[0]))
def poll():
    while not stop.is_set():
        rb.poll(1000)
worker = threading.Thread(target=poll, daemon=True)
worker.start()
batch_rb = RingBuffer(obj.maps["rb2"])  # a zero-copy batch held across the fork
obj.bss["target"] = 1
obj.programs["emit"].test_run(bytes(64), repeat=1)  # record 0, into rb2
obj.bss["target"] = 0
held = batch_rb.read_batch(copy=False)
assert len(held) == 1

def use():
    try:
        held.release()  # would move the consumer position the parent shares
    except StateError:
        rb.consume()
        raise
    raise SystemExit("child: released the parent's batch")

in_child(use, lambda: (rb.close(), batch_rb.close()))
obj.programs["emit"].test_run(bytes(64), repeat=100)  # records 1..100, into rb
until(lambda: len(got) >= 100, "100 records")
time.sleep(0.1)
stop.set()
worker.join(30)
assert not worker.is_alive()
assert got == list(range(1, 101)), got
held.release()
assert len(batch_rb.read_batch()) == 0  # the parent's release moved past record 0
rb.close()
batch_rb.close()
print("parent: 100 records, each once", flush=True)
"""

PERF = """
obj.bss["target_tgid"] = os.getpid()
link = obj.programs["on_getpid"].attach()
got = []
pb = PerfBuffer(obj.maps["samples"], lambda cpu, d: got.append(struct.unpack_from("<Q", d)[0]),
                lambda cpu, n: None, page_count=8)
def poll():
    while not stop.is_set():
        pb.poll(1000)
worker = threading.Thread(target=poll, daemon=True)
worker.start()
in_child(lambda: pb.poll(0), pb.close)
for _ in range(100):
    os.getpid()
# the interpreter may call getpid() itself (Python 3.13 does around fork()): count what the
# program emitted, at least our 100 calls
emitted, failed = obj.bss.get_int("seq"), obj.bss.get_int("failed")
assert emitted >= 100 and failed == 0, (emitted, failed)
until(lambda: len(got) >= emitted, f"{emitted} samples")
stop.set()
worker.join(30)
assert not worker.is_alive()
pb.consume()
assert sorted(got) == list(range(emitted)), got
pb.close()
link.destroy()
print("parent: 100 samples, each once", flush=True)
"""

USER = """
urb = UserRingBuffer(obj.maps["urb"])
sample = urb.reserve(8)  # reserved before the fork: the parent's record
sample.buffer[:] = struct.pack("<Q", 5)
written = 1
try:
    while True:
        urb.write(struct.pack("<Q", 1))
        written += 1
except pylibbpf.BpfError as exc:
    assert exc.errno == errno.ENOSPC, exc
blocked = []
def reserve():  # waits for the BPF side to drain, inside the guard one slice at a time
    blocked.append(urb.reserve(8, timeout_ms=-1))
worker = threading.Thread(target=reserve, daemon=True)
worker.start()

def use():
    try:
        sample.buffer[0] = 0xFF
    except StateError:
        urb.write(b"12345678")
        raise
    raise SystemExit("child: the parent's sample was writable")

in_child(use, urb.close)
sample.submit()
obj.programs["drain_user"].test_run(repeat=0)
worker.join(30)
assert not worker.is_alive() and blocked
blocked[0].buffer[:] = struct.pack("<Q", 1000)
blocked[0].submit()
obj.programs["drain_user"].test_run(repeat=0)
count, total = obj.bss.get_int("user_count"), obj.bss.get_int("user_total")
assert (count, total) == (written + 1, 5 + (written - 1) + 1000), (count, total, written)
urb.close()
print("parent: every record drained once", flush=True)
"""


@pytest.mark.parametrize(("source", "body", "parent_says"), [
    ("events_ringbuf.bpf.c", RING, "parent: 100 records, each once"),
    ("events_perf.bpf.c", PERF, "parent: 100 samples, each once"),
    pytest.param("events_user_ringbuf.bpf.c", USER, "parent: every record drained once",
                 marks=pytest.mark.needs("user_ringbuf")),
], ids=["RingBuffer", "PerfBuffer", "UserRingBuffer"])
def test_child_of_a_fork_refuses_and_closes(tmp_path: Path, source: str, body: str,
                                            parent_says: str) -> None:
    script = tmp_path / "fork_case.py"
    script.write_text(textwrap.dedent(COMMON) + textwrap.dedent(body))
    proc = run_python([str(script), str(compile_bpf(source))], timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "child: refused, closed in" in out, out
    assert "child exit: 0" in out, out
    assert parent_says in out, out
    closed_in = float(out.split("closed in ")[1].split()[0])
    assert closed_in < 10, out  # not a deadlock waiting for a thread the child does not have
