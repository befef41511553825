"""Forecast intervals for the next close: the volatility model and its quantiles. No I/O.

An interval is the point forecast plus a recent-volatility estimate times quantiles of past standardized
residuals: ``r̂ + σ̂_t · q_p`` in log-return space, then ``last close · exp(·)`` in price. ``σ̂_t`` is known
at minute t: an exponentially weighted mean of the ticker's squared returns with the intraday pattern
(busy open and close, quiet lunch) divided out, times the pattern's level at the minute forecast. The
quantiles ``q_p`` come from data the point model was not fitted on (a validation part), so they include the
model's own error; the pattern and the per-ticker scale from the training part. An interval is worth
publishing even when the point forecast cannot beat naive: it says how far the next close may go.

Intervals are scored by ``services.scoring.coverage``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shared.session import XNYS

_MIN_STD = 1e-9


def _nan_std(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN ticker (no training data) is allowed
        return np.asarray(np.nan_to_num(np.sqrt(np.nanmean(np.square(values), axis=axis)), nan=1.0))


@dataclass
class VolatilityModel:
    """Per-ticker return scale ``[tickers]`` and the pooled intraday pattern ``[buckets]`` (mean 1)."""

    scale: np.ndarray
    pattern: np.ndarray
    bucket: int
    halflife: float

    @classmethod
    def fit(
        cls,
        returns: np.ndarray,
        minute: np.ndarray,
        bucket: int = 10,
        halflife: float = 30.0,
        length: int = XNYS.length,
    ) -> VolatilityModel:
        """From training returns ``[minutes, tickers]`` (NaN where none) and their minute of a session of
        ``length`` minutes."""
        scale = np.maximum(_nan_std(returns, axis=0), _MIN_STD)
        z = returns / scale
        buckets = -(-length // bucket)
        part = np.clip(minute // bucket, 0, buckets - 1)
        pattern = np.array([_nan_std(z[part == b]) if (part == b).any() else 1.0 for b in range(buckets)])
        pattern = np.where(pattern > 0, pattern, 1.0)
        return cls(scale, pattern / np.sqrt(np.mean(np.square(pattern))), bucket, halflife)

    def _pattern_at(self, minute: np.ndarray) -> np.ndarray:
        return self.pattern[np.clip(np.asarray(minute) // self.bucket, 0, len(self.pattern) - 1)]

    def sigma(self, returns: np.ndarray, minute: np.ndarray, horizon: int = 1) -> np.ndarray:
        """σ̂ of the log return from minute t to t+horizon, known at t: ``[minutes, tickers]``.

        ``returns`` are the returns up to each row (row t's return ends at minute t), ``minute`` the minute
        of the session of each row. Before any return is seen the level is the training one."""
        de_seasoned = returns / self.scale / self._pattern_at(minute)[:, None]
        level = (
            pd.DataFrame(np.square(de_seasoned))
            .ewm(halflife=self.halflife, ignore_na=True, min_periods=1)
            .mean()
            .ffill()
            .fillna(1.0)
            .to_numpy()
        )
        ahead = np.stack([self._pattern_at(minute + k) for k in range(1, horizon + 1)])
        return np.sqrt(level * np.sum(np.square(ahead), axis=0)[:, None]) * self.scale


@dataclass
class IntervalModel:
    """Quantiles ``[groups, len(probs)]`` of residuals / σ̂: one group (pooled) or one per ticker."""

    probs: tuple[float, ...]
    quantiles: np.ndarray

    @classmethod
    def fit(
        cls,
        residuals: np.ndarray,
        sigma: np.ndarray,
        probs: Sequence[float] = (0.1, 0.9),
        per_ticker: bool = False,
    ) -> IntervalModel:
        """``residuals`` (actual - forecast log returns) and ``sigma`` ``[minutes, tickers]`` from data the
        point model was not fitted on; NaN rows are skipped."""
        z = residuals / sigma
        if per_ticker:
            columns = [z[:, j][np.isfinite(z[:, j])] for j in range(z.shape[1])]
        else:
            columns = [z[np.isfinite(z)]]
        if any(not len(c) for c in columns):
            raise ValueError("no residuals to fit interval quantiles on")
        return cls(tuple(probs), np.stack([np.quantile(c, probs) for c in columns]))

    def bounds(self, forecast: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """Quantiles of the log return: ``forecast`` and ``sigma`` ``[..., tickers]`` ->
        ``[..., tickers, len(probs)]``."""
        q = self.quantiles if len(self.quantiles) > 1 else self.quantiles[0][None, :]
        return np.asarray(forecast)[..., None] + np.asarray(sigma)[..., None] * q

    def close_bounds(self, last_close: np.ndarray, forecast: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """Quantiles of the next close, ``[..., tickers, len(probs)]``."""
        return np.asarray(last_close)[..., None] * np.exp(self.bounds(forecast, sigma))
