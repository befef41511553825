"""Clark & West (2007): does a point forecast beat naive when naive is nested in it? No I/O.

Under the null the larger model's estimated extra parameters only add noise, so its MSPE exceeds naive's
and DM's test of equal MSPE is undersized. Clark-West adds that noise back:
``f_t = e_naive² - (e_model² - (ŷ_model - ŷ_naive)²)``, and tests mean(f) > 0 one-sided with the Newey-West
t-statistic (:func:`services.scoring.significance.clark_west_test`). Errors and the adjustment are relative
to the last close, as in :mod:`services.scoring.score`; naive's forecast is the last close.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.scoring.panel import MinutePanel
from services.scoring.significance import clark_west_test, running_sums

LEVEL = 0.05


def clark_west_terms(last: np.ndarray, forecast: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """``f_t`` per forecast (NaN where not scorable)."""
    last, forecast, actual = (
        np.asarray(a, dtype=np.float64) for a in np.broadcast_arrays(last, forecast, actual)
    )
    ok = np.isfinite(last) & np.isfinite(forecast) & np.isfinite(actual) & (last > 0)
    base = np.where(ok, last, 1.0)
    e_model, e_naive, gap = (forecast - actual) / base, (last - actual) / base, (forecast - last) / base
    return np.where(ok, e_naive**2 - (e_model**2 - gap**2), np.nan)


@dataclass(frozen=True)
class ClarkWest:
    n: int
    stat: float | None
    p: float | None

    def beats_naive(self) -> bool:
        return self.p is not None and self.p < LEVEL


def clark_west(
    last: np.ndarray, forecast: np.ndarray, actual: np.ndarray, minutes: np.ndarray | None = None
) -> ClarkWest:
    """One ticker's forecasts in time order (``minutes`` None), or a pool: ``minutes`` are the target
    minutes and the test runs on the per-minute sums of ``f`` (see :mod:`services.scoring.panel`)."""
    f = clark_west_terms(last, forecast, actual).ravel()
    ok = np.isfinite(f)
    if minutes is None:
        stat, p = clark_west_test(*running_sums(float(v) for v in f[ok]))
        return ClarkWest(int(np.sum(ok)), stat, p)
    panel = MinutePanel()
    for minute, value in zip(np.asarray(minutes).ravel()[ok], f[ok], strict=True):
        panel.add(int(minute), float(value))
    s = panel.settled()
    stat, p = clark_west_test(s.count, s.total, s.sum_sq, s.lagged)
    return ClarkWest(int(np.sum(ok)), stat, p)
