"""The online recalibration (:mod:`range_recalibration`) computed on whole arrays of bars at once: what the
live state gives each row, for research (``bench/horizon_ranges.py``) and the tests that hold the live fold
to it. No I/O."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from services.trainer.intervals.bucket_scale import BucketScale
from services.trainer.intervals.horizon_ranges import BUCKET, RangeModel
from services.trainer.intervals.learnt_profile import PRIOR_WEIGHT, bucket_levels, normalized, profile_of
from services.trainer.intervals.range_recalibration import GAMMA, LIMIT, TARGET_MISS
from services.trainer.intervals.seasonal import session_ids


def session_profiles(
    model: RangeModel,
    returns: np.ndarray,
    ranges: np.ndarray,
    session_minute: np.ndarray,
    prior_weight: float = PRIOR_WEIGHT,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(profile, range profile) of each row ``[rows]``, as :class:`Recalibration` has them when the row's
    bar is folded, and the profile of each session ``[sessions, minutes]``."""
    minutes = len(model.profile)
    sid = session_ids(session_minute)
    m = np.asarray(session_minute, np.int64)
    inside = (m >= 0) & (m < minutes)
    bucket = np.where(inside, m // BUCKET, 0)
    values = (
        np.square(np.asarray(returns, np.float64) / model.scale),
        np.asarray(ranges, np.float64) / model.range_scale,
    )
    sessions = int(sid.max()) + 1 if len(sid) else 0
    prior = (bucket_levels(model.profile), bucket_levels(model.range_profile))
    per_session = [np.zeros((sessions, minutes)), np.zeros((sessions, minutes))]
    for k, (value, fitted) in enumerate(zip(values, prior, strict=True)):
        sums, counts = np.zeros(len(fitted)), np.zeros(len(fitted))
        ok = np.isfinite(value) & inside[:, None]
        for s in range(sessions):
            per_session[k][s] = normalized(
                profile_of(fitted, sums.tolist(), counts.tolist(), prior_weight), minutes
            )
            rows = sid == s
            np.add.at(
                sums,
                np.broadcast_to(bucket[rows][:, None], value[rows].shape)[ok[rows]],
                value[rows][ok[rows]],
            )
            np.add.at(counts, np.broadcast_to(bucket[rows][:, None], value[rows].shape)[ok[rows]], 1.0)
    at = np.clip(m, 0, minutes - 1)
    return per_session[0][sid, at], per_session[1][sid, at], per_session[0]


def recalibrated_intervals(
    model: RangeModel,
    minutes: np.ndarray,
    close: np.ndarray,
    returns: np.ndarray,
    ranges: np.ndarray,
    session_minute: np.ndarray,
    horizons: Sequence[int],
    gamma: float = GAMMA,
    prior_weight: float = PRIOR_WEIGHT,
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per horizon (q10, q90) of the close h minutes after each row ``[rows, tickers]``, around the row's
    close, from the bars up to the row only: what the live state gives a final bar at each row. ``minutes``:
    each row's epoch minute (an outcome settles the range made ``h`` minutes before it). Other ``gamma`` and
    ``prior_weight`` than the live ones serve research (``bench/horizon_ranges.py``): 0 keeps the fitted
    quantiles, a huge weight the fitted profile."""
    m = np.asarray(session_minute, np.int64)
    count = len(model.profile)
    profile, range_profile, per_session = session_profiles(model, returns, ranges, m, prior_weight)
    x = model.components(returns, ranges, m, seasons=(profile, range_profile))
    sid = session_ids(m)
    cum = np.concatenate([np.zeros((len(per_session), 1)), np.cumsum(per_session, axis=1)], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_close = np.log(np.asarray(close, np.float64))
    minutes = np.asarray(minutes, np.int64)
    out = {}
    for h in horizons:
        if h not in model.weights:
            continue
        level = np.maximum(x @ model.weights[h], 1e-12)
        ahead = cum[sid, np.clip(m + h + 1, 0, count)] - cum[sid, np.clip(m + 1, 0, count)]
        valid = (m >= 0) & (m + h < count)
        sigma = np.where(
            valid[:, None], np.sqrt(level * np.where(valid, ahead, 1.0)[:, None]) * model.scale, np.nan
        )
        q_low, q_high = float(model.quantiles[h][0]), float(model.quantiles[h][-1])
        source = np.searchsorted(minutes, minutes - h)
        source = np.where(
            (source < len(minutes)) & (minutes[np.minimum(source, len(minutes) - 1)] == minutes - h),
            source,
            -1,
        )
        u = np.zeros(sigma.shape[1])
        by_bucket = BucketScale(1, count, gamma, TARGET_MISS, LIMIT)
        low, high = np.full(sigma.shape, np.nan), np.full(sigma.shape, np.nan)
        for t in range(len(minutes)):
            if t > 0 and sid[t] != sid[t - 1]:  # the live state's begin(): a session closes
                by_bucket.close_session(sigma.shape[1])
            # The row's ranges read the scales before its own outcomes (the live state learns from a bar
            # once its forecasts are out: Recalibration.learn).
            factor = np.exp(u) * by_bucket.factor(0, int(m[t]) + h)
            low[t] = q_low * sigma[t] * factor
            high[t] = q_high * sigma[t] * factor
            s = source[t]
            if s >= 0:
                z = log_close[t] - log_close[s]
                made = np.isfinite(low[s]) & np.isfinite(z)
                miss = (z < low[s]) | (z > high[s])
                u = np.where(made, np.clip(u + gamma * (miss - TARGET_MISS), -LIMIT, LIMIT), u)
                by_bucket.outcome(0, int(m[t]), float(np.sum(miss[made])), float(np.sum(made)))
        out[h] = (np.exp(log_close + low), np.exp(log_close + high))
    return out
