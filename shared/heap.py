"""Keeping the cyclic garbage collector off a latency-bound loop.

A full collection walks every object the collector tracks. With torch, pandas and pydantic imported and a
trainer holding 2,000 tickers that is ~420,000 objects and ~230 ms (measured, issue 12): a stall of the
polling thread on whichever minute it falls, twice in eight minutes. :func:`settle` collects once and then
moves the survivors to the permanent generation (``gc.freeze``), so later collections, full ones too, look
only at what was made since. Called at start and after each training cycle, a settle costs what that cycle
left behind. Frozen objects are still freed by reference counting when dropped; only a reference cycle among
them would stay, and the long-lived state (series, scores, carried states) holds none.

A latency-bound loop can also leave full collections to :func:`settle` alone (:func:`defer_full_collections`)
and call it at moments it chooses: the automatic ones otherwise still fall on whichever allocation crosses
the threshold (in the trainer, ~200 ms in the first minute after a cold start, issue 18). Young generations
are collected automatically as before.
"""

from __future__ import annotations

import atexit
import gc
from collections.abc import Iterator
from contextlib import contextmanager

# A third-generation threshold no count reaches: the collector's own full collections never start.
_NEVER = 2**31 - 1


def settle() -> int:
    """Collect garbage, then exempt every survivor from later collections; return how many were freed."""
    freed = gc.collect()
    gc.freeze()
    return freed


def defer_full_collections() -> None:
    """Leave full collections to :func:`settle` (called by the caller at its quiet moments)."""
    first, second, _ = gc.get_threshold()
    gc.set_threshold(first, second, _NEVER)


@contextmanager
def collections_after() -> Iterator[None]:
    """No automatic collection inside the block, young generations included: what it allocates is looked at
    once it is over (by the first allocation after it). For a latency-bound block that allocates much and
    keeps little: the trainer's minute at 500 tickers ran ~9 young collections, ~3 ms of its ~40 (issue 18).
    Every thread's collections wait with it, so the block must be short."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# Give the frozen objects back at exit, so the interpreter's last collection frees them like any others
# (an extension built with nanobind otherwise reports them as leaked on stderr).
atexit.register(gc.unfreeze)
