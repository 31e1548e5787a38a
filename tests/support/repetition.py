"""How many rounds the repetition-heavy tests run on this tier.

A loop that checks pylibbpf's own bookkeeping (fds released after thousands of objects, a map
model over many random programs, close/poll races) runs in full on the host tiers.  Inside a
``vmtest`` guest (``PYLIBBPF_VM_GUEST=1``, software-emulated, 10-50 times slower) the same loop
would repeat what the host tiers already established, so it runs enough rounds to exercise that
kernel's side once more, not the full count.
"""

from __future__ import annotations

import os

IN_GUEST = os.environ.get("PYLIBBPF_VM_GUEST") == "1"


def rounds(host: int, guest: int) -> int:
    """``host`` on a host tier, ``guest`` inside a guest."""
    return guest if IN_GUEST else host
