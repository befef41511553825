"""A running σ̂ per ticker: the live interval's volatility level carried from minute to minute. No I/O.

The level is an exponentially weighted mean of d² (the de-seasoned standardized returns, NaN rows skipped):
``A / B`` with ``A = Σ wᵢ dᵢ²``, ``B = Σ wᵢ``, the newest row weighing 1 and each older one ``a`` times the
next (``a = 0.5 ** (1 / halflife)``). A new row with a finite d costs ``A = a A + d²``, ``B = a B + 1``,
so keeping (A, B) after each ticker's newest *final* bar makes a live minute O(tickers): recomputing it
from the ticker's last ``TAIL`` points each minute cost 80-140 ms at 2,000 tickers (profile in issue 12).
Stepped, the level has the infinite memory of ``VolatilityModel.sigma`` (pandas ``ewm``) from the row
the state was built at; the tail form drops the weight beyond its ``TAIL`` points (~1e-4).

* The newest bar on the minute after the state's (k = 1), or after forward-filled minutes (k ≤ ffill_max +
  1: k - 1 rows with return 0, then the bar's), or after a cut (longer: a NaN row, A and B unchanged) is
  stepped: ``A = aᵏ A + d²``, ``B = aᵏ B + (1 - aᵏ) / (1 - a)``, all tickers of a minute at once.
* A provisional newest bar is stepped without storing the result: its revisions are never folded twice.
* Anything else (no state, a revised or late earlier bar, the state's bar not the one before the newest,
  a changed scale) rebuilds the ticker's state from its last points with the tail form
  (:func:`interval_rows.ew_sums`), through the bar before the newest, then steps the newest.
* A state belongs to one :class:`Calibration`: a new one (a cold start, a restore) starts a new table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from services.trainer.intervals.calibration import TAIL, Calibration
from services.trainer.intervals.interval_rows import EwSums, ew_sums, pattern_at, sigmas
from services.trainer.model.series import TickerSeries
from shared.session import DAY_MINUTES, SessionClock


class RunningSigma:
    """Per ticker, the state after its newest final bar (``minute``, ``close``, ``a``, ``b``, the ``scale`` it
    was standardized by) and what the last call saw of its series (``changes``, newest minute and close),
    one row each in arrays that double when full: no Python object per ticker in the live path."""

    _FIELDS = ("minute", "close", "scale", "a", "b", "seen_changes", "seen_minute", "seen_close")

    def __init__(self, calibration: Calibration, ffill_max: int, rows: int = 64) -> None:
        self.calibration = calibration
        self.ffill_max = ffill_max
        self.decay = 0.5 ** (1.0 / calibration.volatility.halflife)
        self._row: dict[str, int] = {}
        self._free = list(range(rows - 1, -1, -1))
        self.minute, self.seen_minute, self.seen_changes = (np.zeros(rows, np.int64) for _ in range(3))
        self.close, self.scale, self.a, self.b, self.seen_close = (np.zeros(rows) for _ in range(5))

    def __contains__(self, ticker: str) -> bool:
        return ticker in self._row

    def forget(self, tickers: Sequence[str]) -> None:
        for t in tickers:
            row = self._row.pop(t, None)
            if row is not None:
                self._free.append(row)

    def sigmas(
        self, names: Sequence[str], series: Sequence[TickerSeries], scales: np.ndarray, finals: Sequence[bool]
    ) -> np.ndarray:
        """σ̂ of each ticker's next log return, from its newest bar (``series[i]`` holds at least one); the
        state of a ticker whose newest bar is final (``finals[i]``) is advanced to it."""
        rows = np.array([self._row.get(t, -1) for t in names], np.int64)
        before = np.array([s.minutes[-2] if len(s.minutes) > 1 else -1 for s in series], np.int64)
        before_close = np.array([s.closes[-2] if len(s.minutes) > 1 else np.nan for s in series])
        newest = np.array([s.minutes[-1] for s in series], np.int64)
        close = np.array([s.closes[-1] for s in series])
        changes = np.array([s.changes for s in series], np.int64)
        at = np.maximum(rows, 0)
        # Steppable: the state is at the bar before the newest, standardized the same way, and the one
        # change to the series since the last call was to its newest bar (appended or revised): a late or
        # revised earlier bar leaves the newest as it was, and more changes were not all seen.
        ok = (
            (rows >= 0)
            & (self.minute[at] == before)
            & (self.close[at] == before_close)
            & (self.scale[at] == scales)
            & (self.seen_changes[at] + 1 == changes)
            & ((self.seen_minute[at] != newest) | (self.seen_close[at] != close))
        )
        rebuild = np.flatnonzero(~ok & (before >= 0))
        if len(rebuild):
            sums = self._rebuild([series[i] for i in rebuild.tolist()], scales[rebuild])
            picked = [names[i] for i in rebuild.tolist()]
            rows[rebuild] = self._store(picked, before[rebuild], before_close[rebuild], scales[rebuild], sums)
        held = (rows >= 0) & (before >= 0)  # a row left from before is no state for a single bar
        at = np.maximum(rows, 0)
        # A ticker with one bar has no state and no return (its d is NaN): the level is the training one.
        a, b = np.where(held, self.a[at], 0.0), np.where(held, self.b[at], 0.0)
        a, b, session = self._step(a, b, before, before_close, newest, close, scales)
        final = np.flatnonzero(held & np.asarray(finals, bool))
        picked = [names[i] for i in final.tolist()]
        self._store(
            picked, newest[final], close[final], scales[final], EwSums(a[final], b[final], session[final])
        )
        seen = rows[held]
        self.seen_changes[seen], self.seen_minute[seen], self.seen_close[seen] = (
            changes[held], newest[held], close[held])  # fmt: skip
        return sigmas(self.calibration, EwSums(a, b, session), scales)

    def _rebuild(self, series: Sequence[TickerSeries], scales: np.ndarray) -> EwSums:
        """The sums through the bar before each ticker's newest, from its ``TAIL - 1`` points before the
        newest: stepped by the newest, the rows are those of the tail form (``TAIL`` points)."""
        tails = [s.arrays() for s in series]
        minutes = [m[-TAIL:-1] for m, _ in tails]
        closes = [c[-TAIL:-1] for _, c in tails]
        return ew_sums(self.calibration, minutes, closes, scales, self.ffill_max)

    def _step(
        self,
        a: np.ndarray,
        b: np.ndarray,
        before: np.ndarray,
        before_close: np.ndarray,
        newest: np.ndarray,
        close: np.ndarray,
        scales: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fold each newest bar (after forward-filled minutes, or a cut) into the sums of its bar before."""
        session = _session(self.calibration.session, newest)
        vol = self.calibration.volatility
        # The operations and order of ew_sums (log, difference, / scale, / vol scale, / pattern).
        z = (np.log(close) - np.log(before_close)) / scales
        d = z / vol.scale[0] / pattern_at(self.calibration, session)
        k = newest - before
        folds = np.isfinite(d) & (k >= 1) & (k <= self.ffill_max + 1)
        decay = self.decay ** np.where(folds, k, 0)
        a = np.where(folds, decay * a + np.where(folds, d, 0.0) ** 2, a)
        b = np.where(folds, decay * b + (1.0 - decay) / (1.0 - self.decay), b)
        return a, b, session

    def _store(
        self,
        names: list[str],
        minute: np.ndarray,
        close: np.ndarray,
        scales: np.ndarray,
        sums: EwSums,
    ) -> np.ndarray:
        """Keep each ticker's state; return their rows."""
        rows = np.array([self._row[t] if t in self._row else self._allocate(t) for t in names], np.int64)
        self.minute[rows], self.close[rows], self.scale[rows] = minute, close, scales
        self.a[rows], self.b[rows] = sums.a, sums.b
        self.seen_changes[rows] = -2  # not steppable until the caller records what it saw
        return rows

    def _allocate(self, ticker: str) -> int:
        if not self._free:
            size = len(self.minute)
            for name in self._FIELDS:
                old = getattr(self, name)
                setattr(self, name, np.concatenate([old, np.zeros_like(old)]))
            self._free = list(range(2 * size - 1, size - 1, -1))
        row = self._row[ticker] = self._free.pop()
        return row


def _session(clock: SessionClock, minutes: np.ndarray) -> np.ndarray:
    """Minute of the session of each epoch minute: one UTC offset per distinct minute (all the tickers of
    a live minute share one; ``clock.utc_offset`` caches it)."""
    distinct, index = np.unique(minutes, return_inverse=True)
    offsets = np.array([clock.utc_offset(int(m)) for m in distinct], np.int64)[index]
    return (minutes + offsets) % DAY_MINUTES - clock.open_minute
