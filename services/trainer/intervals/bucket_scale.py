"""The range's quantile scale per time of day: one log scale per horizon and 30-minute bucket of the session
(the buckets the coverage goal is stated for, :data:`services.scoring.intervals.BUCKET_MINUTES`), tracked
from the outcomes of every series' ranges that targeted the bucket. No I/O.

Why: the per-ticker scale of :mod:`range_recalibration` is pooled over the day, so it cannot correct a bias
that depends on the time of day, and the variance model has such biases it cannot see from its inputs. Its
h-minute variance is the level times the 1-minute profile summed over the target window (not the profile
at t), so it assumes the h-minute moves keep the 1-minute returns' shape over the day and add up as
independent 1-minute returns; where they revert within the window, or the profile learnt from past sessions
is off, the ranges that target that part of the day are too wide or too narrow at every ticker alike. (On
the shared recording, the 30-minute ranges made 11:00-11:40 held 85-90% of closes: their moves were
smaller than the summed 1-minute variance of the same windows says, itself below the forecast.) Quantile
tracking per group (Gibbs & Candès 2021, in its group-conditional form: Bastani et al. 2022) makes each
bucket's long-run coverage the target, whatever the bias's cause; the ticker's and the bucket's log scales
add.

One step per target minute, not per range: the tickers' misses in one minute come together (one market
move misses them all), so the minute's share of misses is one outcome, and the bucket's scale moves with
the ticker scale's step per minute (:data:`range_recalibration.GAMMA`): a session moves it by the step
times the bucket's misses less 20% of its outcomes, divided by the number of series. A step per range (as
many per minute as there are tickers) was tried: it brought every bucket inside but chased each market
move, and the 15- and 30-minute interval scores lost their edge over the EWMA baseline
(docs/forecasting.md).

A session's outcomes move the scale when it closes (when the first bar of a later session is folded, as
the learnt profile changes): every range of a session sees one scale whatever order its tickers' bars are
folded in (a live catch-up folds a ticker's backlog at a time; the backtest minute by minute), and an
outcome folded after its session closed is not counted (the profile's rule for a late bar).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from services.scoring.intervals import BUCKET_MINUTES


class BucketScale:
    """Per horizon (index ``k``) and bucket: the log scale, and the session's outcomes not yet applied (the
    ranges scored and those missed, both whole numbers: their sums do not depend on the order)."""

    def __init__(self, horizons: int, minutes: int, step: float, target_miss: float, limit: float) -> None:
        self.buckets = -(-minutes // BUCKET_MINUTES)
        self.step, self.target_miss, self.limit = step, target_miss, limit
        self.log_scale = [[0.0] * self.buckets for _ in range(horizons)]
        self.scored = [[0.0] * self.buckets for _ in range(horizons)]
        self.missed = [[0.0] * self.buckets for _ in range(horizons)]
        self.factors = [[1.0] * self.buckets for _ in range(horizons)]  # exp(log_scale): a fold reads it

    def bucket(self, session_minute: int) -> int:
        """The bucket of a target's minute of the session (clipped: a range past the close is not made)."""
        return min(max(session_minute // BUCKET_MINUTES, 0), self.buckets - 1)

    def outcome(self, k: int, target_session_minute: int, missed: float, scored: float) -> None:
        """``scored`` outcomes at horizon ``k`` of ranges that targeted a minute of the session being folded,
        ``missed`` of them outside."""
        b = self.bucket(target_session_minute)
        self.scored[k][b] += scored
        self.missed[k][b] += missed

    def close_session(self, series: int) -> None:
        """The session's outcomes move each bucket's scale (``series``: the tickers the state carries)."""
        for scales, scored, missed in zip(self.log_scale, self.scored, self.missed, strict=True):
            for b in range(self.buckets):
                if scored[b] > 0:
                    u = scales[b] + self.step * (missed[b] - self.target_miss * scored[b]) / max(series, 1)
                    scales[b] = min(max(u, -self.limit), self.limit)
                scored[b] = missed[b] = 0.0
        self.factors = [[math.exp(u) for u in scales] for scales in self.log_scale]

    def factor(self, k: int, target_session_minute: int) -> float:
        return self.factors[k][self.bucket(target_session_minute)]

    def state(self) -> dict[str, Any]:
        return {"log_scale": self.log_scale, "scored": self.scored, "missed": self.missed}

    def restore(self, saved: Mapping[str, Any] | None) -> None:
        """Go on from :meth:`state`; none saved (a checkpoint written before) or another shape: afresh."""
        if saved is None:
            return
        parts = [[[float(v) for v in row] for row in saved[key]] for key in ("log_scale", "scored", "missed")]
        shape = [len(row) for row in self.log_scale]
        if any([len(row) for row in part] != shape for part in parts):
            return
        self.log_scale, self.scored, self.missed = parts
        self.factors = [[math.exp(u) for u in scales] for scales in self.log_scale]
