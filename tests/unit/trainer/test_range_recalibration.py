"""The range model's online recalibration: nothing at or before t moves when later bars change (the scale of
an h-minute range learns from its outcome only once that outcome's bar is in), a ticker whose h-minute
moves left the fit's is brought back to 80% inside, and the profile is learnt from completed sessions only."""

from __future__ import annotations

import math

import numpy as np

from services.trainer.intervals.horizon_ranges import BUCKET, RangeModel, parkinson
from services.trainer.intervals.range_recalibration import recalibrated_intervals
from services.trainer.intervals.range_state import RangeState
from tests.unit.trainer.range_data import MINUTES, sessions
from tests.unit.trainer.test_horizons import OPEN

HORIZONS = (1, 5, 15, 30)
TRAIN = 4 * MINUTES


def data(
    n_sessions: int, seed: int, momentum: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(epoch minutes, session minutes, closes, returns, Parkinson variances); after the training part each
    ticker's returns carry ``momentum`` times the one before (in a session): what the fit did not see, and
    no volatility level tracks, since it changes how 1-minute returns add up over h minutes."""
    returns, minute, _ = sessions(n_sessions, seed, garch=(0.05, 0.1, 0.85))
    if momentum is not None:
        for row in range(TRAIN + 1, len(minute)):
            if minute[row] > 1:
                returns[row] += momentum * returns[row - 1]
    rng = np.random.default_rng(seed + 1)
    high_low = np.abs(returns) + 0.0005 * np.abs(rng.standard_normal(returns.shape))
    variance = parkinson(np.exp(np.nan_to_num(high_low, nan=0.0005)), np.ones(returns.shape))
    close = 100.0 * np.exp(np.cumsum(np.nan_to_num(returns), axis=0))
    epochs = OPEN + (np.arange(len(minute)) // MINUTES) * 1440 + minute
    return epochs, minute, close, returns, variance


def fitted(returns: np.ndarray, variance: np.ndarray, minute: np.ndarray) -> RangeModel:
    return RangeModel.fit(returns[:TRAIN], variance[:TRAIN], minute[:TRAIN], HORIZONS)


def test_shifting_the_future_changes_no_recalibrated_range_or_state_at_or_before_t() -> None:
    epochs, minute, close, returns, variance = data(6, seed=11)
    model = fitted(returns, variance, minute)
    t = 5 * MINUTES + 100  # in the last session, after a session's worth of recalibration
    later = np.arange(len(minute)) > t
    moved_returns = np.where(later[:, None], returns * 3.0, returns)
    moved_close = close[t] * np.exp(
        np.cumsum(np.where(later[:, None], np.nan_to_num(moved_returns), 0.0), axis=0)
    )
    moved_close = np.where(later[:, None], moved_close, close)
    moved_variance = np.where(later[:, None], variance * 9.0, variance)
    before = recalibrated_intervals(model, epochs, close, returns, variance, minute, HORIZONS)
    after = recalibrated_intervals(
        model, epochs, moved_close, moved_returns, moved_variance, minute, HORIZONS
    )
    for h in HORIZONS:
        for k in (0, 1):
            np.testing.assert_array_equal(after[h][k][: t + 1], before[h][k][: t + 1])
            assert not np.allclose(after[h][k][t + 1 :], before[h][k][t + 1 :], equal_nan=True)
    # The live state too, checkpointed at t: the scales, the ranges waiting for their outcome, the profiles.
    states = []
    for c, v in ((close, variance), (moved_close, moved_variance)):
        state = RangeState(model, {"A": 0, "B": 1, "C": 2})
        for row in range(t + 1):
            for j, ticker in enumerate("ABC"):
                state.fold(ticker, int(epochs[row]), float(c[row, j]), float(v[row, j]))
        states.append(state.state())
    assert states[0] == states[1]
    assert any(u != 0.0 for scales in states[0]["recalibration"]["log_scale"] for u in scales)


def test_a_ticker_whose_moves_no_longer_add_up_as_in_the_fit_is_brought_back_to_80_percent_inside() -> None:
    # After the training part ticker 0 trends (its h-minute moves are wider than the fit's), ticker 2 reverts.
    epochs, minute, close, returns, variance = data(30, seed=4, momentum=np.array([0.4, 0.0, -0.4]))
    model = fitted(returns, variance, minute)
    recalibrated = recalibrated_intervals(model, epochs, close, returns, variance, minute, HORIZONS)
    scored = np.arange(len(minute)) >= 10 * MINUTES  # the last 20 sessions
    shares = {}
    for h in HORIZONS:
        ahead = np.full(close.shape, np.nan)
        ahead[:-h] = close[h:]
        ahead[minute + h >= MINUTES] = np.nan
        fixed = model.predict_interval(close, returns, variance, minute, h)
        for j in range(3):
            ok = scored & np.isfinite(ahead[:, j]) & np.isfinite(recalibrated[h][0][:, j])
            y = ahead[ok, j]
            shares[h, j] = (
                float(np.mean((y >= fixed[0][ok, j]) & (y <= fixed[1][ok, j]))),
                float(np.mean((y >= recalibrated[h][0][ok, j]) & (y <= recalibrated[h][1][ok, j]))),
            )
    for (h, j), (was, share) in shares.items():
        assert abs(share - 0.8) < 0.04, (h, j, was, share)
        if h > 1 and j != 1:  # without recalibration: far too narrow for the trend, too wide for the other
            assert was < 0.72 if j == 0 else was > 0.88, (h, j, was, share)


def test_the_profile_is_learnt_from_completed_sessions_only() -> None:
    epochs, minute, close, returns, variance = data(8, seed=2)
    # From the fifth session on, one bucket of the afternoon is three times as volatile as the fit saw.
    spike = (minute // BUCKET == 30) & (np.arange(len(minute)) >= TRAIN)
    returns = np.where(spike[:, None], returns * math.sqrt(3.0), returns)
    close = 100.0 * np.exp(np.cumsum(np.nan_to_num(returns), axis=0))
    model = fitted(returns, variance, minute)
    state = RangeState(model, {"A": 0, "B": 1, "C": 2})
    seen = []
    for row in range(len(minute)):
        for j, ticker in enumerate("ABC"):
            state.fold(ticker, int(epochs[row]), float(close[row, j]), float(variance[row, j]))
        seen.append(state.recalibration.profile[30 * BUCKET] / state.recalibration.profile[20 * BUCKET])
    seen_at = np.array(seen)
    fitted_ratio = model.profile[30 * BUCKET] / model.profile[20 * BUCKET]
    for s in range(len(minute) // MINUTES):  # one profile per session: it changes only when one begins
        assert np.ptp(seen_at[s * MINUTES : (s + 1) * MINUTES]) == 0.0
    # Four sessions with the spike and four without: the learnt bucket is about twice the fitted one.
    assert seen_at[-1] > 1.5 * fitted_ratio
