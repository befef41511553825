"""Keeping the training thread's work out of the minutes being served (issue 18).

The trainer's two threads share one interpreter and, on a small machine, the cores: whatever the training
thread computes while a minute's bars are being forecast (a cold start's hold-out scores and range model, the
walk-forward rows, a collection of garbage) slows that minute. Measured with the latency bench at 500
tickers, every bar of the minutes that met the end of a cold start took 100-200 ms instead of ~40.

:class:`ServingGate` lets the training thread give way instead: the polling thread marks a minute as being
served when it takes bars and as over when a poll finds none (``POLL_TIMEOUT_S`` without a bar: a live
minute's bars come together, the next ones a minute later); the training thread calls :meth:`give_way`
between its steps (training batches, each horizon of the range model, each ticker of a hold-out), which
waits while a minute is being served. A long backlog (a restart's catch-up) keeps the polling thread busy
for seconds on end: after ``max_wait_s`` of one busy spell the training thread no longer waits, so a cold
start still happens during it. The collection of the training cycle's garbage (``shared/heap.py``), which
holds the interpreter for its whole length, runs on the polling thread in the quiet after a minute; the
collector's own full collections are off (``heap.defer_full_collections``), so none falls inside a minute.

:meth:`give_way` must not be called with the forecaster's lock held (the polling thread needs it to serve).
"""

from __future__ import annotations

import threading
import time

from shared import heap

# The longest the training thread waits on one busy spell of the polling thread: far above a live minute's
# ~50 ms, so it never trains during one, and short enough that a backlog does not hold training back.
MAX_WAIT_S = 1.0
# A collection asked for this long ago runs even inside a busy spell (a backlog allows no quiet moment).
SETTLE_OVERDUE_S = 60.0


class ServingGate:
    """Whether a minute is being served (polling thread), and the training thread's way to give way to it."""

    def __init__(self, max_wait_s: float = MAX_WAIT_S) -> None:
        self.max_wait_s = max_wait_s
        self._idle = threading.Event()
        self._idle.set()
        self._busy_since = 0.0
        self._settle_due: float | None = None  # when a collection was asked for

    def serving(self) -> None:
        """Polling thread: bars were taken; their forecasts are being made and published."""
        if self._idle.is_set():
            self._busy_since = time.monotonic()
            self._idle.clear()
        if self._settle_due is not None and time.monotonic() - self._settle_due > SETTLE_OVERDUE_S:
            self._settle()

    def quiet(self) -> None:
        """Polling thread: a poll found no bars, so the minute's forecasts are out; collect garbage if a
        training cycle asked for it (:meth:`settle_later`)."""
        self._idle.set()
        if self._settle_due is not None:
            self._settle()

    def settle_later(self) -> None:
        """Training thread: collect the cycle's garbage at the next quiet moment of the polling thread."""
        if self._settle_due is None:
            self._settle_due = time.monotonic()

    def _settle(self) -> None:
        self._settle_due = None
        heap.settle()

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    def give_way(self) -> None:
        """Training thread: wait while a minute is being served, at most until its busy spell has lasted
        ``max_wait_s``."""
        if self._idle.is_set():
            return
        left = self._busy_since + self.max_wait_s - time.monotonic()
        if left > 0:
            self._idle.wait(left)
