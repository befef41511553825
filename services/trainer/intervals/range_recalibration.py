"""Online recalibration of the range model from outcomes already known: the intraday profile learnt from
every completed session, and each ticker's quantile scale per horizon tracked from its own hits and misses.
No I/O.

The range model (:mod:`horizon_ranges`) is fitted once, on the cold start's training part: a few sessions.
On the shared recording that leaves two errors a fit cannot remove (docs/forecasting.md, the range section):

* **The profile.** A profile fitted on 4 sessions is noisy (with 30-minute buckets, 13:30-14:00 held 72%
  of the 5-minute closes, 14:00-14:30 84%). Here the profile of a session is the mean scaled ``d²``
  (and Parkinson range) of its bucket over *every session completed before it*, pooled over tickers, the
  fitted profile standing in for :data:`PRIOR_WEIGHT` observations per bucket; it changes only when a
  session begins, so every bar of a session is de-seasoned by one profile.
* **The level per ticker.** The model is pooled; a ticker whose h-minute moves are wider than the pool's
  σ̂ says (MU, TSLA) is too narrow, one whose are narrower (SPY) too wide. Adaptive conformal inference in the
  form of quantile tracking (Gibbs & Candès 2021; Angelopoulos, Candès & Tibshirani 2023): the range at
  ``h`` is ``q · σ̂ · exp(u)``, and each outcome of an h-minute range of the ticker, known h minutes after
  it was made (delayed feedback), moves ``u`` by ``GAMMA · (miss - 0.2)``: up after a miss, down after a
  hit, standing still at 80% inside. Misses of overlapping ranges come in runs, so the step is small
  (:data:`GAMMA`; larger steps bought coverage with interval score: the table in the docs).
* **The level per time of day.** The ticker's scale is pooled over the day; a bias by time of day, the same
  at every ticker, is tracked by a scale per horizon and 30-minute bucket of the target (:mod:`bucket_scale`).

The live form (:class:`Recalibration`, carried in :class:`range_state.RangeState` and its checkpoint) folds
each final bar as it comes and learns from it once the bar's forecasts are out (``portfolio backtest`` runs
it too); ``recalibrated_arrays.py`` is the same computation on arrays, for research
(``bench/horizon_ranges.py``) and tests.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from operator import mul
from typing import Any

import numpy as np

from services.trainer.intervals.bucket_scale import BucketScale
from services.trainer.intervals.horizon_ranges import BUCKET, RangeModel
from services.trainer.intervals.learnt_profile import (
    bucket_levels,
    cumulative,
    normalized,
    profile_of,
)

GAMMA = 0.002  # the step of a ticker's log quantile scale per outcome
LIMIT = math.log(2.0)  # the scale stays within a factor 2 of the fitted quantiles
TARGET_MISS = 0.2  # the 80% range: q10 and q90
_UP, _DOWN = GAMMA * (1 - TARGET_MISS), -GAMMA * TARGET_MISS  # u's step after a miss, after a hit


class Recalibration:
    """The live state: the two profiles' sums over completed sessions (and the session being folded), and
    per ticker the log quantile scale of each horizon with the ranges still waiting for their outcome."""

    def __init__(self, model: RangeModel, tickers: int) -> None:
        self.model = model
        self.minutes = len(model.profile)
        self.horizons = sorted(model.weights)
        self.prior = (bucket_levels(model.profile), bucket_levels(model.range_profile))
        buckets = len(self.prior[0])
        # [returns, ranges] x [completed sessions, the session being folded] x buckets: (sum, count).
        self.sums = [[[0.0] * buckets for _ in range(2)] for _ in range(2)]
        self.counts = [[[0.0] * buckets for _ in range(2)] for _ in range(2)]
        self.session = -math.inf  # the epoch minute the session being folded opened at
        # Per ticker and horizon (as ``horizons`` orders them): the log quantile scale u, exp(u), and the
        # ranges made and waiting for their outcome, (target minute, log close, log low, log high), oldest
        # first (a horizon's targets come in the order its ranges were made).
        self.log_scale = [[0.0] * len(self.horizons) for _ in range(tickers)]
        self.factor = [[1.0] * len(self.horizons) for _ in range(tickers)]
        self.waiting: list[list[deque[tuple[int, float, float, float]]]] = [
            [deque() for _ in self.horizons] for _ in range(tickers)
        ]
        # Per horizon and 30-minute bucket of the target: the scale for a time-of-day bias (bucket_scale.py).
        self.by_bucket = BucketScale(len(self.horizons), self.minutes, GAMMA, TARGET_MISS, LIMIT)
        # Per horizon: h, the weights and the two quantiles, as floats (the fold's hot path).
        self._terms = [
            (h, model.weights[h].tolist(), float(model.quantiles[h][0]), float(model.quantiles[h][-1]))
            for h in self.horizons
        ]
        # The bars settled that :meth:`learn` has not taken in yet, and their tickers.
        self._owed: list[tuple[int, int, int, float, Sequence[float], float]] = []
        self._owed_rows: set[int] = set()
        self._refresh()

    def _refresh(self) -> None:
        self.profile, self.range_profile = (
            normalized(profile_of(p, s[0], n[0]), self.minutes)
            for p, s, n in zip(self.prior, self.sums, self.counts, strict=True)
        )
        self.cum = cumulative(self.profile)

    def begin(self, opened: int) -> None:
        """A bar of the session opened at epoch minute ``opened``: a later session than the one being folded
        closes that one (its sums join the profile's)."""
        if opened <= self.session:
            return
        if self.session > -math.inf:
            self.learn()  # with the profile and bucket scales of the session the bars were folded in
            for sums, counts in zip(self.sums, self.counts, strict=True):
                for b in range(len(sums[0])):
                    sums[0][b] += sums[1][b]
                    counts[0][b] += counts[1][b]
                    sums[1][b] = counts[1][b] = 0.0
            self._refresh()
            self.by_bucket.close_session(len(self.waiting))
        self.session = opened

    def observe(self, opened: int, session_minute: int, d2: float, range_: float) -> None:
        """A bar's squared scaled return and scaled Parkinson variance (NaN: none), before de-seasoning."""
        if opened != self.session:  # a late bar of a session already closed: its profile is settled
            return
        b = session_minute // BUCKET
        for k, value in ((0, d2), (1, range_)):
            if math.isfinite(value):
                self.sums[k][1][b] += value
                self.counts[k][1][b] += 1.0

    def settle(
        self,
        i: int,
        minute: int,
        session_minute: int,
        close: float,
        components: Sequence[float],
        scale: float,
    ) -> None:
        """Ticker ``i``'s final bar at ``minute`` is folded: what it teaches (the ranges it made, the outcomes
        of those that targeted it) is taken in by :meth:`learn`, once the bar's forecasts are out."""
        if not close > 0:
            return
        if i in self._owed_rows:
            self.learn()  # the ticker's last bar first
        self._owed.append((i, minute, session_minute, math.log(close), components, scale))
        self._owed_rows.add(i)

    def learn(self) -> None:
        """Take in the bars settled since the last call, each in turn: keep the ranges it made, waiting for
        their outcomes (those :meth:`RangeState.bounds` gave from the same state: the bar's components, the
        ticker's scales before the bar's own outcomes), then move the ticker's scales by the outcomes of the
        ranges that targeted the bar.

        So a forecast reads its ticker's scales as they were before its own bar's outcomes: they are learnt
        once the forecasts are out. The forecaster calls this after a poll's forecasts are published, taking
        the fold's costliest part (Python per ticker and horizon, ~4 ms of a 500-ticker minute) off the
        minute's latency (issue 18). The ticker's next bar (:meth:`settle`), a session's close
        (:meth:`begin`) and a checkpoint (:meth:`state`) call it first, so no result depends on when it is
        called: a backtest and a live trainer, however polls cut the bars, give the same ranges.
        """
        owed, self._owed = self._owed, []
        self._owed_rows.clear()
        cum, by_bucket, waiting, session = self.cum, self.by_bucket, self.waiting, self.session
        for i, minute, m, log_close, components, scale in owed:
            queues, scales, factors = waiting[i], self.log_scale[i], self.factor[i]
            if 0 <= m < self.minutes:  # the ranges made first: as bounds() gave them, before the outcomes
                start = cum[m + 1]
                for k, (h, weights, q_low, q_high) in enumerate(self._terms):
                    if m + h >= self.minutes:
                        break  # and every longer horizon
                    level = max(sum(map(mul, weights, components)), 1e-12)
                    sigma = (
                        math.sqrt(level * (cum[m + h + 1] - start))
                        * scale
                        * factors[k]
                        * by_bucket.factor(k, m + h)
                    )
                    queues[k].append((minute + h, log_close, q_low * sigma, q_high * sigma))
            counted = minute - m == session  # an outcome of a closed session is not counted by bucket
            for k, queue in enumerate(queues):
                while queue and queue[0][0] <= minute:
                    target, base, low, high = queue.popleft()
                    if target == minute:  # a target minute without a bar has no outcome
                        z = log_close - base
                        missed = z < low or z > high
                        u = scales[k] + (_UP if missed else _DOWN)
                        u = LIMIT if u > LIMIT else max(u, -LIMIT)
                        scales[k], factors[k] = u, math.exp(u)
                        if counted:
                            by_bucket.outcome(k, m, float(missed), 1.0)

    def factors(self, rows: Sequence[int], horizon: int, session_minute: Sequence[int]) -> np.ndarray:
        """The quantile scale of each row's ticker at ``horizon`` made at ``session_minute``: ``exp(u)``
        times the scale of the bucket its target falls in."""
        k = self.horizons.index(horizon)
        return np.array(
            [
                self.factor[i][k] * self.by_bucket.factor(k, m + horizon)
                for i, m in zip(rows, session_minute, strict=True)
            ],
            np.float64,
        )

    def state(self) -> dict[str, Any]:
        self.learn()
        return {
            "horizons": list(self.horizons),
            "sums": self.sums,
            "counts": self.counts,
            "session": self.session if math.isfinite(self.session) else None,
            "log_scale": [list(u) for u in self.log_scale],
            "waiting": [[[list(r) for r in queue] for queue in queues] for queues in self.waiting],
            "by_bucket": self.by_bucket.state(),
        }

    def restore(self, saved: Mapping[str, Any]) -> None:
        """Go on from :meth:`state` (one saved for other horizons is left alone: the state starts afresh)."""
        if [int(h) for h in saved["horizons"]] != self.horizons:
            return
        self._owed, self._owed_rows = [], set()  # made from the state replaced
        self.sums = [[[float(v) for v in part] for part in kind] for kind in saved["sums"]]
        self.counts = [[[float(v) for v in part] for part in kind] for kind in saved["counts"]]
        self.session = -math.inf if saved["session"] is None else int(saved["session"])
        self.log_scale = [[float(u) for u in scales] for scales in saved["log_scale"]]
        self.factor = [[math.exp(u) for u in scales] for scales in self.log_scale]
        self.waiting = [
            [deque((int(r[0]), float(r[1]), float(r[2]), float(r[3])) for r in queue) for queue in queues]
            for queues in saved["waiting"]
        ]
        self.by_bucket.restore(saved.get("by_bucket"))  # absent in a state saved before: it starts afresh
        self._refresh()
