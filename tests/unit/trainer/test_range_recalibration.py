"""The range model's online recalibration: nothing at or before t moves when later bars change (the scale of
an h-minute range learns from its outcome only once that outcome's bar is in), a ticker whose h-minute
moves left the fit's is brought back to 80% inside, so (in part) is a part of the day whose moves left it at
every ticker (the bucket's scale), and the profile is learnt from completed sessions only."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from services.trainer.intervals.bucket_scale import BucketScale
from services.trainer.intervals.horizon_ranges import BUCKET, RangeModel, parkinson
from services.trainer.intervals.range_state import RangeState
from services.trainer.intervals.recalibrated_arrays import recalibrated_intervals
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
    assert any(u != 0.0 for scales in states[0]["recalibration"]["by_bucket"]["log_scale"] for u in scales)


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


def test_a_time_of_day_bias_the_tickers_scales_cannot_see_is_corrected_by_the_buckets_scale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # After the training part every ticker reverts within one hour of the day (its 30-minute moves there are
    # narrower than the fit's): a bias of that hour, the same at every ticker, which a ticker's scale (pooled
    # over the day) cannot remove.
    epochs, minute, close, returns, variance = data(40, seed=8)
    hour = (minute >= 120) & (minute < 180) & (np.arange(len(minute)) > TRAIN)
    for row in np.flatnonzero(hour):
        returns[row] -= 0.5 * returns[row - 1]
    close = 100.0 * np.exp(np.cumsum(np.nan_to_num(returns), axis=0))
    model = fitted(returns, variance, minute)
    h = 30
    ranges = {"both": recalibrated_intervals(model, epochs, close, returns, variance, minute, (h,))[h]}
    monkeypatch.setattr(BucketScale, "factor", lambda _self, _k, _m: 1.0)
    ranges["tickers only"] = recalibrated_intervals(model, epochs, close, returns, variance, minute, (h,))[h]
    ahead = np.full(close.shape, np.nan)
    ahead[:-h] = close[h:]
    ahead[minute + h >= MINUTES] = np.nan
    target = np.clip(minute + h, 0, MINUTES - 1) // 30
    scored = (np.arange(len(minute)) >= 20 * MINUTES)[:, None] & np.isfinite(ahead)
    shares = {}
    for name, (low, high) in ranges.items():
        inside = (ahead >= low) & (ahead <= high)
        for b in (2, 5):  # an hour before, the reverting hour
            shares[name, b] = float(np.mean(inside[scored & (target == b)[:, None]]))
    assert shares["tickers only", 5] > 0.86, shares
    assert abs(shares["both", 5] - 0.8) < abs(shares["tickers only", 5] - 0.8) - 0.03, shares
    assert abs(shares["both", 2] - 0.8) < 0.04, shares


def test_the_buckets_scale_does_not_depend_on_the_order_a_minutes_bars_are_folded_in() -> None:
    epochs, minute, close, returns, variance = data(6, seed=3)
    model = fitted(returns, variance, minute)
    scales = []
    for order in ("ABC", "CBA"):
        state = RangeState(model, {"A": 0, "B": 1, "C": 2})
        for row in range(len(minute)):
            for ticker in order:
                j = "ABC".index(ticker)
                state.fold(ticker, int(epochs[row]), float(close[row, j]), float(variance[row, j]))
        scales.append(np.array(state.recalibration.by_bucket.log_scale))
    assert np.abs(scales[0]).max() > 0
    np.testing.assert_allclose(scales[0], scales[1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("order", ["minute by minute", "ticker by ticker", "partitions read unevenly"])
def test_what_the_bars_teach_is_the_same_whenever_it_is_learnt(order: str) -> None:
    """The service lets the recalibration learn from a poll's bars once their forecasts are out
    (``learn``); a ticker's next bar, a session's close and a checkpoint make it learn first. Folding minute
    by minute (live), a ticker's session at a time or one ticker far behind (a catch-up's partitions), and
    learning after every bar or after every 500th: a forecast of each bar reads the same scales (its
    ticker's, after its earlier bars' outcomes, before its own), and once learnt the scales and the ranges
    waiting are the same."""
    epochs, minute, close, returns, variance = data(6, seed=5)
    model = fitted(returns, variance, minute)
    cells = [(row, j) for row in range(len(minute)) for j in range(3)]
    if order == "ticker by ticker":
        cells.sort(key=lambda cell: (cell[0] // MINUTES, cell[1], cell[0]))
    elif (
        order == "partitions read unevenly"
    ):  # B's bars 200 minutes behind: it ends a session after it closed
        cells.sort(key=lambda cell: (cell[0] + (200 if cell[1] == 1 else 0), cell[1]))
    eager, lazy = (RangeState(model, {"A": 0, "B": 1, "C": 2}) for _ in range(2))
    moved = 0  # bars whose own outcomes moved their ticker's scales when learnt, not when folded
    for n, (row, j) in enumerate(cells):
        for state in (eager, lazy):
            state.fold("ABC"[j], int(epochs[row]), float(close[row, j]), float(variance[row, j]))
        # What a forecast of this bar reads: its ticker's scales after its earlier bars' outcomes only.
        unlearnt = list(eager.recalibration.log_scale[j])
        assert lazy.recalibration.log_scale[j] == unlearnt, (n, row, j)
        eager.recalibration.learn()
        if n % 500 == 499:  # a backlog poll's bars: not aligned with minutes or sessions
            lazy.recalibration.learn()
        learnt = copy.deepcopy(lazy.recalibration)
        learnt.learn()
        assert learnt.log_scale == eager.recalibration.log_scale, (n, row, j)
        assert learnt.waiting == eager.recalibration.waiting, (n, row, j)
        moved += unlearnt != eager.recalibration.log_scale[j]
    assert lazy.state() == eager.state()
    assert moved > len(cells) / 2
    assert any(u != 0.0 for u in eager.recalibration.log_scale[0])
