"""What the range baselines share: the intraday volatility profile, the profile summed over the next h
minutes, h-minute returns that stay inside one session, and quantiles of standardized h-minute returns.
numpy only (backtests run these on every minute of every ticker). No I/O.

Conventions of the baselines: ``returns`` are 1-minute log returns ``[rows, tickers]``, row t's return
ending at minute t (NaN where there is none: a session's first bar, a missing minute); ``session_minute``
``[rows]`` is each row's minute of the session (0 = its opening bar, by a :mod:`shared.session` clock);
rows run in time order, a session's minutes consecutive, and a new session starts where the minute of the
session does not grow.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

PROBS = (0.1, 0.9)
HORIZONS = (1, 5, 15, 30)


def session_ids(session_minute: np.ndarray) -> np.ndarray:
    """0, 1, ... per session, a new one wherever the minute of the session does not grow."""
    m = np.asarray(session_minute, dtype=np.int64)
    starts = np.concatenate([[True], np.diff(m) <= 0]) if len(m) else np.zeros(0, dtype=bool)
    return np.cumsum(starts) - 1


def _nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an empty bucket or ticker falls back below
        return np.asarray(np.nanmean(values, axis=axis))


def fit_profile(z2: np.ndarray, session_minute: np.ndarray, bucket: int, length: int) -> np.ndarray:
    """Per-minute variance profile ``[length]`` (mean 1; ``length``: the session's minutes) from squared
    scale-free returns ``[rows, tickers]``: the mean of each ``bucket``-minute bucket, pooled over tickers
    (Engle & Sokalska: one intraday pattern for all stocks estimates far better than one per stock). A
    bucket the rows never reach gets the mean level (a training part of a few hours of a 24-hour session
    reaches few), not its neighbour's."""
    buckets = -(-length // bucket)
    part = np.clip(np.asarray(session_minute) // bucket, 0, buckets - 1)
    levels = np.array([_nanmean(z2[part == b]) if (part == b).any() else np.nan for b in range(buckets)])
    levels = np.where(np.isfinite(levels) & (levels > 0), levels, np.nan)
    levels = np.where(np.isfinite(levels), levels, np.nanmean(levels) if np.isfinite(levels).any() else 1.0)
    per_minute = levels[np.arange(length) // bucket]
    return per_minute / np.mean(per_minute)


def profile_at(profile: np.ndarray, session_minute: np.ndarray) -> np.ndarray:
    return profile[np.clip(np.asarray(session_minute), 0, len(profile) - 1)]


def ahead_weights(
    profile: np.ndarray, session_minute: np.ndarray, horizon: int, decay: float = 1.0
) -> np.ndarray:
    """``Σ_{k=1..h} decay^(k-1) · profile(m + k)`` per row; NaN where minute m + h is past the close (no
    forecast targets a minute the session does not have)."""
    m = np.asarray(session_minute, dtype=np.int64)
    total = np.zeros(len(m))
    for k in range(1, horizon + 1):
        total += decay ** (k - 1) * profile_at(profile, m + k)
    return np.where(m + horizon < len(profile), total, np.nan)


def horizon_returns(returns: np.ndarray, session_minute: np.ndarray, horizon: int) -> np.ndarray:
    """The log return from row t to row t + h ``[rows, tickers]``: NaN unless t + h is h minutes later in the
    same session and every minute between has a return."""
    r = np.asarray(returns, dtype=np.float64)
    m = np.asarray(session_minute, dtype=np.int64)
    out = np.full(r.shape, np.nan)
    if len(r) <= horizon:
        return out
    csum = np.concatenate([np.zeros((1, r.shape[1])), np.cumsum(np.nan_to_num(r), axis=0)])
    gaps = np.concatenate([np.zeros((1, r.shape[1])), np.cumsum(~np.isfinite(r), axis=0)])
    n = len(r) - horizon
    total = csum[1 + horizon : 1 + horizon + n] - csum[1 : 1 + n]
    missing = gaps[1 + horizon : 1 + horizon + n] - gaps[1 : 1 + n]
    same = (m[horizon:] - m[:n] == horizon)[:, None]
    out[:n] = np.where(same & (missing == 0), total, np.nan)
    return out


def standardized_quantiles(
    returns: np.ndarray, session_minute: np.ndarray, sigma: np.ndarray, horizon: int, probs: Sequence[float]
) -> np.ndarray:
    """Empirical quantiles of h-minute returns / their σ̂ known at the start, pooled over tickers."""
    z = horizon_returns(returns, session_minute, horizon) / sigma
    z = z[np.isfinite(z)]
    if not len(z):
        raise ValueError(f"no {horizon}-minute returns to fit quantiles on")
    return np.quantile(z, probs)
