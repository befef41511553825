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
the ticker scale's step per minute (:data:`range_recalibration.GAMMA`). A step per range (as many per
minute as there are tickers) was tried: it brought every bucket inside but chased each market move, and
the 15- and 30-minute interval scores lost their edge over the EWMA baseline (docs/forecasting.md).

A minute's outcomes are pooled before they move the scale: they are applied when the first outcome of a
later target minute comes, so every range made in one minute sees the same scale whatever order its
tickers' bars are folded in (the live state and the array form agree).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from services.scoring.intervals import BUCKET_MINUTES


class BucketScale:
    """Per horizon (index ``k``) the log scale of each bucket, and the outcomes of the latest target minute
    not yet applied: (target epoch minute, bucket, misses - target share summed, count)."""

    def __init__(self, horizons: int, minutes: int, step: float, target_miss: float, limit: float) -> None:
        self.buckets = -(-minutes // BUCKET_MINUTES)
        self.step, self.target_miss, self.limit = step, target_miss, limit
        self.log_scale = [[0.0] * self.buckets for _ in range(horizons)]
        self.pending: list[list[float]] = [[-1.0, 0.0, 0.0, 0.0] for _ in range(horizons)]

    def bucket(self, session_minute: int) -> int:
        """The bucket of a target's minute of the session (clipped: a range past the close is not made)."""
        return min(max(session_minute // BUCKET_MINUTES, 0), self.buckets - 1)

    def outcome(self, k: int, target: int, target_session_minute: int, missed: float, count: float) -> None:
        """``count`` outcomes at horizon ``k`` of ranges that targeted epoch minute ``target``, ``missed`` of
        them outside (a minute's outcomes may come one by one, as its tickers' bars are folded)."""
        if self.pending[k][0] != target:
            self._apply(k)
            self.pending[k] = [float(target), float(self.bucket(target_session_minute)), 0.0, 0.0]
        pending = self.pending[k]
        pending[2] += missed - self.target_miss * count
        pending[3] += count

    def _apply(self, k: int) -> None:
        _, b, excess, count = self.pending[k]
        if count > 0:
            u = self.log_scale[k][int(b)] + self.step * excess / count
            self.log_scale[k][int(b)] = min(max(u, -self.limit), self.limit)

    def log_at(self, k: int, target_session_minute: int) -> float:
        return self.log_scale[k][self.bucket(target_session_minute)]

    def state(self) -> dict[str, Any]:
        return {"log_scale": [list(u) for u in self.log_scale], "pending": [list(p) for p in self.pending]}

    def restore(self, saved: Mapping[str, Any] | None) -> None:
        """Go on from :meth:`state`; none saved (a checkpoint written before) or another shape: afresh."""
        if saved is None:
            return
        scales = [[float(u) for u in row] for row in saved["log_scale"]]
        if len(scales) != len(self.log_scale) or any(len(row) != self.buckets for row in scales):
            return
        self.log_scale = scales
        self.pending = [[float(v) for v in p] for p in saved["pending"]]

    def factor(self, k: int, target_session_minute: int) -> float:
        return math.exp(self.log_at(k, target_session_minute))
