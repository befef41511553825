"""The trainer's range model: the 80% range of the close 1, 5, 15, 30 ... minutes ahead. numpy and pandas
only. No I/O.

A HAR-style mix of de-seasonalized variance components (Corsi 2009; the intraday profile divided out as in
Andersen & Bollerslev 1997), pooled across tickers:

* ``d²``: squared 1-minute log returns / (the ticker's training scale² x the pooled intraday profile), and
  ``p``: each bar's Parkinson range ``ln(high / low)² / (4 ln 2)``, scaled and de-seasoned the same way by
  its own profile (the bar's range carries about five times the information of its close-to-close return).
* The components known at the close of minute t: a fast, a slow and a long EWMA of ``d²`` (decays 0.9,
  0.99, 0.999), a fast and a slow EWMA of ``p`` (0.95, 0.995) and the previous session's mean ``d²``. No
  constant: a constant ties every forecast to the training part's level, and the few sessions a cold start
  trains on do not pin the long-run level down (with one, the shared recording's 30-minute ranges held 74%
  of the closes; without, 78.5%: ``bench/horizon_ranges.py``); the long EWMA is the anchor instead.
* The h-minute variance is ``scale² · Σ_{k=1..h} s(m + k) · (w_h · x_t)``, one weight vector per horizon
  (short memory matters at 1 minute, the level at 30), fitted on the training part by QLIKE
  (``ln v + y / v``, Patton 2011) with non-negative weights, by iteratively reweighted least squares (the
  QLIKE first-order condition is least squares weighted by ``1 / v²``).
* The range is the last close times ``exp(q · σ̂)``, q the empirical 10% and 90% quantiles of standardized
  h-minute training returns, as the baselines do.

The array form (:meth:`RangeModel.components`, :meth:`RangeModel.sigma`) serves backtests and fits; the live
trainer carries the same components per ticker (``range_state.py``) and calls :meth:`RangeModel.bounds`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from services.trainer.intervals.seasonal import (
    HORIZONS,
    PROBS,
    ahead_weights,
    fit_profile,
    horizon_returns,
    profile_at,
    session_ids,
)
from shared.session import XNYS, SessionClock

BUCKET = 10
FAST, SLOW, LONG, RANGE, RANGE_SLOW = 0.9, 0.99, 0.999, 0.95, 0.995
COMPONENTS = ("fast", "slow", "long", "range", "slow range", "previous session")
_PARKINSON = 1.0 / (4.0 * math.log(2.0))
_MIN = 1e-12


def parkinson(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """The bar's Parkinson variance; NaN where high or low is missing or not positive."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.log(np.asarray(high, np.float64) / np.asarray(low, np.float64))
    return np.where(np.isfinite(ratio) & (ratio >= 0), ratio * ratio * _PARKINSON, np.nan)


def parkinson_bar(high: float, low: float) -> float:
    """:func:`parkinson` of one bar, without numpy (the live path calls it for every bar)."""
    if not (high > 0 and low > 0 and high >= low) or math.isinf(high):
        return math.nan
    ratio = math.log(high / low)
    return ratio * ratio * _PARKINSON


def ewma(values: np.ndarray, decay: float) -> np.ndarray:
    """The EWMA per row ``[rows, tickers]`` (row t's own value in), from a prior level of 1, NaNs skipped."""
    frame = pd.DataFrame(np.vstack([np.ones((1, values.shape[1])), values]))
    return frame.ewm(alpha=1 - decay, adjust=False, ignore_na=True).mean().to_numpy()[1:]


def previous_session(d2: np.ndarray, session_minute: np.ndarray) -> np.ndarray:
    """Each row's previous session's mean ``d²`` ``[rows, tickers]`` (1 before any)."""
    sid = session_ids(session_minute)
    n = int(sid.max()) + 1 if len(sid) else 0
    sums, counts = np.zeros((n, d2.shape[1])), np.zeros((n, d2.shape[1]))
    np.add.at(sums, sid, np.nan_to_num(d2))
    np.add.at(counts, sid, np.isfinite(d2))
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / counts, np.nan)
    before = pd.DataFrame(np.vstack([np.ones((1, d2.shape[1])), means])).ffill().to_numpy()
    return before[:-1][sid]


def no_pause() -> None:
    """The default ``pause``: nothing to give way to."""


def fit_weights(
    x: np.ndarray, y: np.ndarray, iterations: int = 30, pause: Callable[[], None] = no_pause
) -> np.ndarray:
    """Non-negative ``w`` minimizing mean QLIKE ``ln(x w) + y / (x w)`` (rows of ``x`` complete). ``pause()``
    is called between iterations (the trainer's training thread gives way to a minute being served)."""
    w = np.zeros(x.shape[1])
    w[0] = max(float(np.mean(y)), _MIN)
    for _ in range(iterations):
        pause()
        v = np.maximum(x @ w, _MIN)
        sw = 1.0 / v
        active = np.ones(x.shape[1], bool)
        for _ in range(x.shape[1]):  # drop negative weights one at a time (a small NNLS)
            sol = np.zeros(x.shape[1])
            sol[active] = np.linalg.lstsq(x[:, active] * sw[:, None], y * sw, rcond=None)[0]
            if (sol >= 0).all():
                break
            active &= sol > np.min(sol[active])
        w = 0.5 * w + 0.5 * np.maximum(sol, 0.0)  # damped: the weights depend on v
    return w


@dataclass(frozen=True)
class RangeModel:
    scale: np.ndarray  # [tickers]: training RMS of 1-minute returns
    range_scale: np.ndarray  # [tickers]: training mean Parkinson variance
    profile: np.ndarray  # [session.length] of d², mean 1
    range_profile: np.ndarray  # [session.length] of p, mean 1
    weights: dict[int, np.ndarray]  # horizon -> [len(COMPONENTS)]
    quantiles: dict[int, np.ndarray]  # horizon -> [len(probs)]
    probs: tuple[float, ...] = PROBS
    session: SessionClock = XNYS  # the clock of its rows' minutes of the session

    @classmethod
    def fit(
        cls,
        returns: np.ndarray,
        ranges: np.ndarray,
        session_minute: np.ndarray,
        horizons: Sequence[int] = HORIZONS,
        probs: Sequence[float] = PROBS,
        use: Sequence[str] = COMPONENTS,
        session: SessionClock = XNYS,
        pause: Callable[[], None] = no_pause,
    ) -> RangeModel:
        """On the training part: 1-minute log returns and Parkinson variances ``[rows, tickers]``
        (conventions: :mod:`seasonal`); components not in ``use`` get weight 0."""
        r = np.asarray(returns, np.float64)
        p = np.asarray(ranges, np.float64)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a ticker without returns: scale 1 below
            scale = np.sqrt(np.nanmean(np.square(r), axis=0)) if np.isfinite(r).any() else np.ones(r.shape[1])
            range_scale = np.nanmean(p, axis=0) if np.isfinite(p).any() else np.ones(p.shape[1])
        scale = np.where(np.isfinite(scale) & (scale > _MIN), scale, 1.0)
        range_scale = np.where(np.isfinite(range_scale) & (range_scale > _MIN**2), range_scale, 1.0)
        profile = fit_profile(np.square(r / scale), session_minute, BUCKET, session.length)
        range_profile = fit_profile(p / range_scale, session_minute, BUCKET, session.length)
        model = cls(scale, range_scale, profile, range_profile, {}, {}, tuple(probs), session)
        x = model.components(r, p, session_minute)
        for h in horizons:
            ahead = ahead_weights(profile, session_minute, h)[:, None]
            y = np.square(horizon_returns(r, session_minute, h) / scale) / ahead
            ok = np.isfinite(y) & np.isfinite(x).all(axis=2)
            if not ok.any():
                # No h-minute return inside a session in the training part (a market off the New York
                # clock, a short history): no range at h, rather than a fit on nothing (forecasting
                # skips a horizon the model has no weights for).
                continue
            picked = np.array([c in use for c in COMPONENTS])
            model.weights[h] = np.zeros(len(COMPONENTS))
            model.weights[h][picked] = fit_weights(x[ok][:, picked], y[ok], pause=pause)
            z = horizon_returns(r, session_minute, h) / model.sigma_from(x, session_minute, h)
            model.quantiles[h] = np.quantile(z[np.isfinite(z)], probs)
        return model

    def components(
        self,
        returns: np.ndarray,
        ranges: np.ndarray,
        session_minute: np.ndarray,
        seasons: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """``x_t`` ``[rows, tickers, len(COMPONENTS)]``, each from data up to row t only; ``seasons``: each
        row's (profile, range profile) ``[rows]`` where not the fitted ones (``range_recalibration.py``)."""
        if seasons is None:
            seasons = (
                profile_at(self.profile, session_minute),
                profile_at(self.range_profile, session_minute),
            )
        d2 = np.square(np.asarray(returns, np.float64) / self.scale) / seasons[0][:, None]
        pr = np.asarray(ranges, np.float64) / self.range_scale / seasons[1][:, None]
        parts = (ewma(d2, FAST), ewma(d2, SLOW), ewma(d2, LONG), ewma(pr, RANGE),
                 ewma(pr, RANGE_SLOW), previous_session(d2, session_minute))  # fmt: skip
        return np.stack(parts, axis=2)

    def sigma_from(self, x: np.ndarray, session_minute: np.ndarray, horizon: int) -> np.ndarray:
        """σ̂ of the h-minute log return from components ``x`` ``[rows, tickers, k]`` (NaN past the close)."""
        level = np.maximum(x @ self.weights[horizon], _MIN)
        ahead = ahead_weights(self.profile, session_minute, horizon)[:, None]
        return np.sqrt(level * ahead) * self.scale

    def sigma(
        self, returns: np.ndarray, ranges: np.ndarray, session_minute: np.ndarray, horizon: int
    ) -> np.ndarray:
        """σ̂ of the log return from row t to t + h, known at t ``[rows, tickers]``."""
        return self.sigma_from(self.components(returns, ranges, session_minute), session_minute, horizon)

    def predict_interval(
        self, last_close: np.ndarray, returns: np.ndarray, ranges: np.ndarray, session_minute: np.ndarray,
        horizon: int,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """(q10, q90) of the close h minutes after each row ``[rows, tickers]``, around the last close."""
        sigma = self.sigma(returns, ranges, session_minute, horizon)
        low, high = self.quantiles[horizon][0], self.quantiles[horizon][-1]
        return last_close * np.exp(low * sigma), last_close * np.exp(high * sigma)
