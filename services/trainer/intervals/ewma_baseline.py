"""Baseline (1) of issue 18: naive point forecast with an EWMA x intraday-profile interval. numpy and pandas
only. No I/O.

* Returns are scaled per ticker (training RMS) and de-seasonalized by the pooled intraday variance
  profile (:func:`seasonal.fit_profile`): ``d_t = r_t / (scale · sqrt(s(m_t)))``.
* The level ``v_t = λ v_{t-1} + (1 - λ) d_t²`` (from v = 1, skipping missing returns) forecasts the next
  ``d²``; λ is the grid value with the lowest QLIKE ``ln v_t + d²_{t+1} / v_t`` on the training part
  (Patton 2011: QLIKE ranks variance forecasts consistently with a noisy proxy, and penalises
  under-prediction, which costs coverage, more than MSE does).
* The h-minute σ̂ at t is ``scale · sqrt(v_t · Σ_{k=1..h} s(m_t + k))``; the 80% range is the last close
  times ``exp(q · σ̂)`` with q the empirical 10% and 90% quantiles of standardized h-minute training
  returns (fat tails and the profile's error are in them, not assumed away).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from services.trainer.intervals.seasonal import (
    HORIZONS,
    PROBS,
    ahead_weights,
    fit_profile,
    profile_at,
    standardized_quantiles,
)
from shared.session import XNYS

DECAYS = (0.8, 0.9, 0.94, 0.97, 0.98, 0.99, 0.995, 0.998)
BUCKET = 30
_MIN_STD = 1e-12


def ewma_levels(d2: np.ndarray, decay: float) -> np.ndarray:
    """``v_t`` per row ``[rows, tickers]`` (includes row t's own return), from a prior level of 1."""
    prior = np.ones((1, d2.shape[1]))
    frame = pd.DataFrame(np.vstack([prior, d2]))
    return frame.ewm(alpha=1 - decay, adjust=False, ignore_na=True).mean().to_numpy()[1:]


def qlike(d2: np.ndarray, levels: np.ndarray) -> float:
    """Mean ``ln v_t + d²_{t+1} / v_t`` over the rows where both are known."""
    forecast, target = levels[:-1], d2[1:]
    ok = np.isfinite(forecast) & np.isfinite(target) & (forecast > 0)
    return float(np.mean(np.log(forecast[ok]) + target[ok] / forecast[ok]))


@dataclass(frozen=True)
class EwmaProfileBaseline:
    scale: np.ndarray  # [tickers]
    profile: np.ndarray  # [session length], mean 1
    decay: float
    probs: tuple[float, ...]
    quantiles: dict[int, np.ndarray]  # horizon -> [len(probs)]

    @classmethod
    def fit(
        cls,
        returns: np.ndarray,
        session_minute: np.ndarray,
        horizons: Sequence[int] = HORIZONS,
        bucket: int = BUCKET,
        decays: Sequence[float] = DECAYS,
        probs: Sequence[float] = PROBS,
        length: int = XNYS.length,
    ) -> EwmaProfileBaseline:
        """On the training part's returns ``[rows, tickers]`` (conventions: :mod:`seasonal`) in a session of
        ``length`` minutes."""
        r = np.asarray(returns, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            scale = np.sqrt(np.nanmean(np.square(r), axis=0)) if np.isfinite(r).any() else np.ones(r.shape[1])
        scale = np.where(np.isfinite(scale) & (scale > _MIN_STD), scale, 1.0)
        profile = fit_profile(np.square(r / scale), session_minute, bucket, length)
        d2 = np.square(r / scale) / profile_at(profile, session_minute)[:, None]
        decay = min(decays, key=lambda lam: qlike(d2, ewma_levels(d2, lam)))
        model = cls(scale, profile, decay, tuple(probs), {})
        for h in horizons:
            sigma = model.sigma(r, session_minute, h)
            model.quantiles[h] = standardized_quantiles(r, session_minute, sigma, h, probs)
        return model

    def sigma(self, returns: np.ndarray, session_minute: np.ndarray, horizon: int) -> np.ndarray:
        """σ̂ of the log return from row t to t + h, known at t ``[rows, tickers]`` (NaN past the close)."""
        d2 = np.square(returns / self.scale) / profile_at(self.profile, session_minute)[:, None]
        levels = ewma_levels(d2, self.decay)
        ahead = ahead_weights(self.profile, session_minute, horizon)
        return np.sqrt(levels * ahead[:, None]) * self.scale

    def predict_interval(
        self, last_close: np.ndarray, returns: np.ndarray, session_minute: np.ndarray, horizon: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(q10, q90) of the close h minutes after each row ``[rows, tickers]``; the point forecast is the
        last close. ``returns`` may start before the evaluated rows (training part first), so the level
        is warm; every row's range uses returns up to that row only."""
        sigma = self.sigma(np.asarray(returns, dtype=np.float64), session_minute, horizon)
        low, high = self.quantiles[horizon][0], self.quantiles[horizon][-1]
        return last_close * np.exp(low * sigma), last_close * np.exp(high * sigma)
