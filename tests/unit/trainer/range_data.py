"""Synthetic minute returns whose volatility is known: a U-shaped intraday profile, a scale per ticker and,
optionally, GARCH(1,1) clustering of the de-seasonalized returns."""

from __future__ import annotations

import numpy as np

MINUTES = 390
SCALES = np.array([0.0005, 0.001, 0.002])


def true_profile() -> np.ndarray:
    m = np.arange(MINUTES)
    u = 1 + 1.5 * ((m - 195) / 195) ** 2  # busy open and close, quiet lunch
    return u / u.mean()


def sessions(
    n_sessions: int, seed: int = 0, garch: tuple[float, float, float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(returns [rows, tickers], session minute [rows], true σ² of each row's return [rows, tickers]); the
    first return of each session is NaN (the night)."""
    rng = np.random.default_rng(seed)
    rows = n_sessions * MINUTES
    minute = np.tile(np.arange(MINUTES), n_sessions)
    q = np.ones((rows, len(SCALES)))
    eps = rng.standard_normal((rows, len(SCALES)))
    if garch is not None:
        omega, alpha, beta = garch
        q[0] = omega / (1 - alpha - beta)
        for t in range(1, rows):
            q[t] = omega + alpha * q[t - 1] * eps[t - 1] ** 2 + beta * q[t - 1]
    variance = SCALES**2 * true_profile()[minute][:, None] * q
    returns = np.sqrt(variance) * eps
    returns[minute == 0] = np.nan
    return returns, minute, variance


def closes_ahead(returns: np.ndarray, minute: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(last close, close h minutes later; NaN past the close) from a start of 100."""
    log_close = np.log(100.0) + np.cumsum(np.nan_to_num(returns), axis=0)
    ahead = np.full(returns.shape, np.nan)
    ahead[:-horizon] = log_close[horizon:]
    ahead[minute + horizon >= MINUTES] = np.nan
    return np.exp(log_close), np.exp(ahead)
