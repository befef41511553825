"""Baseline (2) of issue 18: a multiplicative component GARCH (Engle & Sokalska 2012). No I/O.

The variance of a 1-minute return is ``daily · s(m) · q_t``:

* ``daily``: the ticker's variance per minute for the session, known at the open: an EWMA over past
  sessions' mean squared 1-minute returns (half-life ``daily_halflife`` sessions, from the training mean).
  Engle & Sokalska take a commercial daily risk forecast here; a short EWMA of realized variance is the
  common stand-in when none is at hand.
* ``s(m)``: the intraday variance profile of ``r² / daily``, pooled over tickers (:mod:`seasonal`).
* ``q_t``: a GARCH(1,1) on the de-seasonalized ``z = r / sqrt(daily · s)``, ``q_{t+1} = ω + α z_t² + β q_t``,
  one set of parameters for all tickers (pooled, as in the paper), fitted by the ``arch`` package's
  Gaussian QMLE on the training part. ``arch`` is imported by :meth:`McsGarchBaseline.fit` only: the
  forecasts are the closed-form recursion in numpy, fast enough for a backtest of every minute.

The h-minute σ̂² at t sums the daily level x profile x the GARCH forecast ``q̄ + φ^(k-1)(q_{t+1} - q̄)``
(φ = α + β) over k = 1..h; the 80% range uses empirical quantiles of standardized h-minute training
returns, as baseline (1) does.
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
    session_ids,
    standardized_quantiles,
)
from shared.session import XNYS

BUCKET = 30
DAILY_HALFLIFE = 5.0
_MIN_VARIANCE = 1e-24


def daily_variance(
    returns: np.ndarray, session_minute: np.ndarray, prior: np.ndarray, halflife: float
) -> np.ndarray:
    """Each row's session level ``[rows, tickers]``, from sessions before the row's only."""
    r2 = np.square(np.asarray(returns, dtype=np.float64))
    sid = session_ids(session_minute)
    n_sessions = int(sid.max()) + 1 if len(sid) else 0
    sums = np.zeros((n_sessions, r2.shape[1]))
    counts = np.zeros((n_sessions, r2.shape[1]))
    np.add.at(sums, sid, np.nan_to_num(r2))
    np.add.at(counts, sid, np.isfinite(r2))
    with np.errstate(invalid="ignore", divide="ignore"):
        realized = np.where(counts > 0, sums / counts, np.nan)
    frame = pd.DataFrame(np.vstack([prior[None, :], realized]))
    levels = frame.ewm(halflife=halflife, adjust=False, ignore_na=True).mean().to_numpy()
    return np.maximum(levels[:-1][sid], _MIN_VARIANCE)


def garch_forecasts(z: np.ndarray, omega: float, alpha: float, beta: float) -> np.ndarray:
    """``q_{t+1}`` known at row t ``[rows, tickers]``, from the unconditional level; a missing z leaves
    it as it was."""
    q_next = np.empty(z.shape)
    q = np.full(z.shape[1], omega / (1 - alpha - beta))
    for t in range(len(z)):
        seen = np.isfinite(z[t])
        q = np.where(seen, omega + alpha * np.square(np.where(seen, z[t], 0.0)) + beta * q, q)
        q_next[t] = q
    return q_next


@dataclass(frozen=True)
class McsGarchBaseline:
    prior: np.ndarray  # [tickers]: training variance per minute, the daily level before any session
    profile: np.ndarray  # [session length], mean 1
    omega: float
    alpha: float
    beta: float
    daily_halflife: float
    probs: tuple[float, ...]
    quantiles: dict[int, np.ndarray]  # horizon -> [len(probs)]

    @classmethod
    def fit(
        cls,
        returns: np.ndarray,
        session_minute: np.ndarray,
        horizons: Sequence[int] = HORIZONS,
        bucket: int = BUCKET,
        daily_halflife: float = DAILY_HALFLIFE,
        probs: Sequence[float] = PROBS,
        length: int = XNYS.length,
    ) -> McsGarchBaseline:
        """On the training part's returns ``[rows, tickers]`` (conventions: :mod:`seasonal`) in a session of
        ``length`` minutes."""
        from arch import arch_model  # the trainer extra; forecasting never needs it

        r = np.asarray(returns, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            prior = np.nanmean(np.square(r), axis=0) if np.isfinite(r).any() else np.ones(r.shape[1])
        prior = np.where(np.isfinite(prior) & (prior > _MIN_VARIANCE), prior, 1.0)
        daily = daily_variance(r, session_minute, prior, daily_halflife)
        profile = fit_profile(np.square(r) / daily, session_minute, bucket, length)
        z = r / np.sqrt(daily * profile_at(profile, session_minute)[:, None])
        pooled = z.T[np.isfinite(z.T)]  # ticker after ticker: one joint at each seam, among thousands
        # z has unit variance by construction, inside the range arch's optimizer is tuned for.
        fitted = arch_model(pooled, mean="Zero", vol="GARCH", p=1, q=1, dist="normal", rescale=False).fit(
            disp="off"
        )
        params = fitted.params
        model = cls(
            prior,
            profile,
            float(params["omega"]),
            float(params["alpha[1]"]),
            float(params["beta[1]"]),
            daily_halflife,
            tuple(probs),
            {},
        )
        for h in horizons:
            sigma = model.sigma(r, session_minute, h)
            model.quantiles[h] = standardized_quantiles(r, session_minute, sigma, h, probs)
        return model

    @property
    def persistence(self) -> float:
        return self.alpha + self.beta

    def sigma(self, returns: np.ndarray, session_minute: np.ndarray, horizon: int) -> np.ndarray:
        """σ̂ of the log return from row t to t + h, known at t ``[rows, tickers]`` (NaN past the close)."""
        r = np.asarray(returns, dtype=np.float64)
        daily = daily_variance(r, session_minute, self.prior, self.daily_halflife)
        z = r / np.sqrt(daily * profile_at(self.profile, session_minute)[:, None])
        q_next = garch_forecasts(z, self.omega, self.alpha, self.beta)
        q_bar = self.omega / (1 - self.persistence)
        flat = ahead_weights(self.profile, session_minute, horizon)[:, None]
        fading = ahead_weights(self.profile, session_minute, horizon, self.persistence)[:, None]
        return np.sqrt(daily * (q_bar * flat + (q_next - q_bar) * fading))

    def predict_interval(
        self, last_close: np.ndarray, returns: np.ndarray, session_minute: np.ndarray, horizon: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(q10, q90) of the close h minutes after each row ``[rows, tickers]``; as
        :meth:`EwmaProfileBaseline.predict_interval`: every row's range uses returns up to that row."""
        sigma = self.sigma(returns, session_minute, horizon)
        low, high = self.quantiles[horizon][0], self.quantiles[horizon][-1]
        return last_close * np.exp(low * sigma), last_close * np.exp(high * sigma)
