"""Pause Python's cyclic garbage collector while kcprov builds large object trees.

Loading a 10,000-client file or normalising its live realm allocates millions
of containers that stay alive (the parsed document, the spec, the flat objects);
each time the allocations pass the collector's threshold it walks all of them
again, which was more than half of a 10,000-client load. Nothing these phases
build is cyclic garbage, so reference counting frees what they drop; the
collector runs again as soon as the phase ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off; restore it as it was (nesting is fine)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
