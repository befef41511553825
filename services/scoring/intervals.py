"""Scores of forecast ranges: interval score and pinball loss relative to the last close, their ratio to a
baseline with a Diebold-Mariano test on per-minute sums, and coverage per 30-minute bucket of the session.
No I/O.

* Interval score of a central (1 - alpha) interval [l, u] (Gneiting & Raftery 2007):
  ``IS = (u - l) + (2/alpha)(l - y)1{y < l} + (2/alpha)(y - u)1{y > u}``; alpha = 0.2 for q10/q90.
* Pinball (quantile) loss of a tau-quantile q: ``(y - q)(tau - 1{y < q})``.

Both are divided by the last close, as the point scorer divides errors (return space: a pool is not ruled
by the dearest ticker), and returned per forecast (NaN where not scorable) so that a caller can sum them
per minute for the pooled test, as :mod:`services.scoring.panel` does for squared errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.scoring.coverage import Coverage, coverage_of
from services.scoring.panel import MinutePanel
from shared.session import SessionClock

ALPHA = 0.2
BUCKET_MINUTES = 30


def _arrays(*values: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(a, dtype=np.float64) for a in np.broadcast_arrays(*values)]


def interval_score(
    last: np.ndarray, low: np.ndarray, high: np.ndarray, actual: np.ndarray, alpha: float = ALPHA
) -> np.ndarray:
    """Interval score / last close per forecast; NaN where any input is missing or the last close is not
    positive. Lower is better; the width is paid always, a miss 2/alpha times its distance."""
    last, low, high, actual = _arrays(last, low, high, actual)
    score = (
        (high - low)
        + (2 / alpha) * np.maximum(low - actual, 0.0)
        + (2 / alpha) * np.maximum(actual - high, 0.0)
    )
    ok = np.isfinite(score) & np.isfinite(last) & (last > 0)
    return np.where(ok, score / np.where(ok, last, 1.0), np.nan)


def pinball_loss(last: np.ndarray, quantile: np.ndarray, actual: np.ndarray, tau: float) -> np.ndarray:
    """Pinball loss of a ``tau``-quantile forecast / last close per forecast; NaN where not scorable."""
    last, quantile, actual = _arrays(last, quantile, actual)
    diff = actual - quantile
    loss = diff * (tau - (diff < 0))
    ok = np.isfinite(loss) & np.isfinite(last) & (last > 0)
    return np.where(ok, loss / np.where(ok, last, 1.0), np.nan)


@dataclass(frozen=True)
class LossRatio:
    """A model's summed loss over a baseline's on the same forecasts, and the pooled DM test of the
    per-minute sums of their differences (negative statistic: the model's losses are the smaller)."""

    n: int
    ratio: float | None
    dm_stat: float | None
    dm_p: float | None

    def better(self) -> bool:
        """Below 1 and significant at 5%: the only "beats the baseline" claim."""
        return self.ratio is not None and self.ratio < 1 and self.dm_p is not None and self.dm_p < 0.05


def loss_ratio(minutes: np.ndarray, model: np.ndarray, baseline: np.ndarray) -> LossRatio:
    """Compare per-forecast losses (:func:`interval_score` or :func:`pinball_loss` of two forecasters on the
    same rows). ``minutes`` is each forecast's target minute: forecasts of one minute are summed before the
    test, since tickers' losses in one minute move together (see :mod:`services.scoring.panel`). Rows where
    either loss is NaN are left out of both."""
    minutes, model, baseline = (np.asarray(a).ravel() for a in (minutes, model, baseline))
    ok = np.isfinite(model) & np.isfinite(baseline)
    panel = MinutePanel()
    for minute, d in zip(minutes[ok], model[ok] - baseline[ok], strict=True):
        panel.add(int(minute), float(d))
    total_model, total_base = float(np.sum(model[ok])), float(np.sum(baseline[ok]))
    stat, p = panel.test()
    ratio = total_model / total_base if total_base > 0 else None
    return LossRatio(int(np.sum(ok)), ratio, stat, p)


def session_bucket(minutes: np.ndarray, session: SessionClock, bucket: int = BUCKET_MINUTES) -> np.ndarray:
    """Epoch minutes -> bucket of the session (New York's: 0 = 09:30-09:59 for 30-minute buckets)."""
    return session.minute_of(np.asarray(minutes, dtype=np.int64)) // bucket


def coverage_by_bucket(
    minutes: np.ndarray,
    actual: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    session: SessionClock,
    bucket: int = BUCKET_MINUTES,
) -> dict[int, Coverage]:
    """Coverage per ``bucket``-minute bucket of the session of each forecast's target minute (a U-shaped
    volatility the interval misses shows as low coverage at the open and close, high at lunch)."""
    minutes, actual, low, high = (np.asarray(a).ravel() for a in (minutes, actual, low, high))
    buckets = session_bucket(minutes, session, bucket)
    return {
        int(b): coverage_of(actual[buckets == b], low[buckets == b], high[buckets == b])
        for b in np.unique(buckets)
    }
