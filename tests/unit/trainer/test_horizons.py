"""Forecasts at every horizon: one per horizon for each final bar, none past the close, ranges from the
range model whose carried state (recalibration included) equals its array form, and nothing at or before t
moved by later bars."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from services.trainer.forecaster.core import Forecaster
from services.trainer.forecaster.records import BarIn, Config, Forecast
from services.trainer.intervals.horizon_ranges import RangeModel, fit_weights, parkinson
from services.trainer.intervals.range_state import RangeState
from services.trainer.intervals.recalibrated_arrays import recalibrated_intervals
from services.trainer.messages import prediction_message
from services.trainer.model.series import to_minute
from shared.session import UTC_DAY
from shared.settings import SettingsError, TrainerSettings, load_settings
from tests.unit.trainer.range_data import MINUTES, sessions
from tests.unit.trainer.synthetic import tiny_config

# A Monday 09:30 in New York, far from a clock change.
OPEN = to_minute(datetime(2026, 1, 5, 14, 30, tzinfo=UTC))
HORIZONS = (1, 5, 15, 30)


def market(n_sessions: int, seed: int = 0) -> list[BarIn]:
    """Bars of three tickers with a U-shaped intraday volatility and clustering; session i opens a day
    after session i - 1."""
    returns, minute, _ = sessions(n_sessions, seed, garch=(0.05, 0.1, 0.85))
    rng = np.random.default_rng(seed + 1)
    log_close = np.log(100.0) + np.cumsum(np.nan_to_num(returns), axis=0)
    spread = np.abs(returns) + 0.0005 * np.abs(rng.standard_normal(returns.shape))
    bars = []
    for row in range(len(minute)):
        epoch = OPEN + (row // MINUTES) * 1440 + int(minute[row])
        for j in range(returns.shape[1]):
            close = float(np.exp(log_close[row, j]))
            width = float(np.nan_to_num(spread[row, j], nan=0.0005))
            bars.append(BarIn(f"T{j}", epoch, close, high=close * math.exp(width), low=close))
    return bars


def trained(bars: list[BarIn], **config: object) -> Forecaster:
    forecaster = Forecaster(tiny_config(max_epochs=2, **config))
    for bar in bars:
        forecaster.ingest(bar.ticker, bar.minute, bar.close, bar.rev, bar.final, bar.high, bar.low)
    assert forecaster.train_cycle().cold_start is not None
    assert forecaster.range_state is not None
    return forecaster


def by_horizon(forecasts: list[Forecast], ticker: str) -> dict[int, Forecast]:
    return {fc.minute - fc.based_on: fc for fc in forecasts if fc.ticker == ticker}


def test_every_final_bar_is_forecast_at_every_horizon_none_past_the_close() -> None:
    bars = market(7)
    forecaster = trained([b for b in bars if b.minute < OPEN + 6 * 1440])
    day = [b for b in bars if b.minute >= OPEN + 6 * 1440]
    out = []
    for minute in sorted({b.minute for b in day})[:381]:
        out = forecaster.step([b for b in day if b.minute == minute])
        if minute - (OPEN + 6 * 1440) == 100:
            fcs = by_horizon(out, "T1")
            assert sorted(fcs) == list(HORIZONS)
            widths = []
            for h, fc in fcs.items():
                assert fc.q10 is not None and fc.q90 is not None
                assert fc.q10 < fc.last_close < fc.q90
                assert prediction_message(fc, "return").horizon_min == h
                widths.append(fc.q90 - fc.q10)
            assert widths == sorted(widths)
    # 15:50, the bar of session minute 380: 1 and 5 minutes ahead are in the session, 15 and 30 are not.
    assert sorted(by_horizon(out, "T0")) == [1, 5]


def test_the_session_clock_decides_the_close_and_a_horizon_without_weights_is_skipped() -> None:
    bars = market(7)
    forecaster = trained([b for b in bars if b.minute < OPEN + 6 * 1440], session=UTC_DAY)
    day = [b for b in bars if b.minute >= OPEN + 6 * 1440]
    out = []
    for minute in sorted({b.minute for b in day})[:381]:
        out = forecaster.step([b for b in day if b.minute == minute])
    # 15:50 in New York is 20:50 UTC: on a UTC day's session 30 minutes ahead is before its close.
    assert sorted(by_horizon(out, "T0")) == list(HORIZONS)
    # A horizon the range model could not fit (no training session had room for it) is left out.
    assert forecaster.range_state is not None
    del forecaster.range_state.model.weights[30]
    out = forecaster.step([b for b in day if b.minute == sorted({b.minute for b in day})[381]])
    assert sorted(by_horizon(out, "T0")) == [1, 5, 15]


def test_shifting_the_future_changes_no_forecast_at_or_before_t_at_any_horizon() -> None:
    bars = market(7, seed=3)
    history = [b for b in bars if b.minute < OPEN + 6 * 1440]
    day = [b for b in bars if b.minute >= OPEN + 6 * 1440][: 3 * 120]
    t = day[3 * 60].minute
    shifted = [b if b.minute <= t else b._replace(minute=b.minute + 1, close=b.close * 1.01) for b in day]
    runs = []
    for feed in (day, shifted):
        forecaster = trained(history)
        runs.append({(fc.ticker, fc.based_on, fc.minute): (fc.yhat, fc.q10, fc.q90)
                     for b in feed for fc in forecaster.step([b])})  # fmt: skip
    known = {k: v for k, v in runs[0].items() if k[1] <= t}
    assert {k[2] - k[1] for k in known} == set(HORIZONS)
    assert {k: v for k, v in runs[1].items() if k[1] <= t} == known
    assert {k: v for k, v in runs[1].items() if k[1] > t} != {k: v for k, v in runs[0].items() if k[1] > t}


def test_carried_ranges_equal_the_range_models_array_form() -> None:
    returns, minute, _ = sessions(6, seed=5, garch=(0.05, 0.1, 0.85))
    rng = np.random.default_rng(6)
    high_low = np.abs(returns) + 0.0005 * np.abs(rng.standard_normal(returns.shape))
    variance = parkinson(np.exp(high_low), np.ones(returns.shape))
    model = RangeModel.fit(returns[:1200], variance[:1200], minute[:1200], HORIZONS)
    close = 100.0 * np.exp(np.cumsum(np.nan_to_num(returns), axis=0))
    state = RangeState(model, {"A": 0, "B": 1, "C": 2})
    epochs = OPEN + (np.arange(len(minute)) // MINUTES) * 1440 + minute
    expected = recalibrated_intervals(model, epochs, close, returns, variance, minute, HORIZONS)
    checked = 0
    for row in range(len(minute)):
        epoch = int(epochs[row])
        for j, t in enumerate("ABC"):
            state.fold(t, epoch, float(close[row, j]), float(variance[row, j]))
        if row % 97 == 0 and row:
            got = state.bounds(["A", "B", "C"], close[row], np.full(3, minute[row]), HORIZONS)
            for h in HORIZONS:
                want = np.array(expected[h])[:, row]
                np.testing.assert_allclose(np.array(got[h]), want, rtol=1e-9)
                checked += int(np.isfinite(want).all())
    assert checked > 20
    # Compared where the recalibration has moved away from the fit: the profile and the quantile scales.
    assert not np.allclose(state.recalibration.profile, model.profile)
    assert all(u != 0.0 for scales in state.recalibration.log_scale for u in scales)


def test_qlike_weights_are_recovered() -> None:
    rng = np.random.default_rng(7)
    x = np.column_stack([np.ones(20_000), rng.gamma(2.0, 0.5, 20_000), rng.gamma(1.0, 1.0, 20_000)])
    truth = np.array([0.2, 0.5, 0.3])
    y = (x @ truth) * rng.standard_normal(20_000) ** 2
    np.testing.assert_allclose(fit_weights(x, y), truth, atol=0.05)
    # A component that carries nothing gets no weight, not a negative one.
    noise = np.column_stack([x, rng.gamma(1.0, 1.0, 20_000)])
    assert fit_weights(noise, y)[3] == pytest.approx(0.0, abs=0.03)


def test_horizons_and_weights_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTFOLIO_HORIZONS_MIN", "30,5,15")
    monkeypatch.setenv("PORTFOLIO_WEIGHTS", "aapl=0.3, MSFT=0.7")
    settings = TrainerSettings()
    assert settings.horizons == [5, 15, 30]
    assert Config.from_settings(load_settings()).horizons == (1, 5, 15, 30)
    assert settings.weights == {"AAPL": 0.3, "MSFT": 0.7}
    for bad in ("0", "1440", ""):
        monkeypatch.setenv("PORTFOLIO_HORIZONS_MIN", bad)
        with pytest.raises(ValueError, match="horizons"):
            TrainerSettings()
    # Past New York's close, not past a UTC day's: checked against the session in force.
    monkeypatch.setenv("PORTFOLIO_HORIZONS_MIN", "390")
    with pytest.raises(SettingsError, match="1 to 389 minutes with the XNYS session"):
        load_settings(common={"session": "XNYS"})
    with pytest.raises(SettingsError, match="XNYS session"):
        load_settings(producer={"source": "yfinance"})
    assert Config.from_settings(load_settings(common={"session": "24h"})).horizons == (1, 390)
    monkeypatch.setenv("PORTFOLIO_HORIZONS_MIN", "1")
    monkeypatch.setenv("PORTFOLIO_WEIGHTS", "AAPL")
    with pytest.raises(ValueError, match="TICKER=WEIGHT"):
        TrainerSettings()


def test_a_horizon_no_training_session_has_room_for_gets_no_range_instead_of_a_failed_fit() -> None:
    # Only the last 20 minutes of each session are known (as for a market off the New York clock): a
    # 30-minute return never fits inside a session, a 1- or 5-minute one does.
    returns, minute, _ = sessions(6, seed=5)
    late = minute >= MINUTES - 20
    variance = parkinson(np.exp(np.abs(returns)), np.ones(returns.shape))
    model = RangeModel.fit(returns[late], variance[late], minute[late], HORIZONS)
    assert 30 not in model.weights and 30 not in model.quantiles
    assert {1, 5} <= set(model.weights) and {1, 5} <= set(model.quantiles)


def test_a_horizon_without_a_range_is_not_forecast_and_the_shorter_ones_are() -> None:
    # Trained on the last 20 minutes of each session only: the range model has no 30-minute range.
    bars = market(7, seed=5)
    late = [b for b in bars if (b.minute - OPEN) % 1440 >= MINUTES - 20 and b.minute < OPEN + 6 * 1440]
    forecaster = trained(late)
    morning = [b for b in bars if b.minute == OPEN + 6 * 1440 + 100]
    assert sorted(by_horizon(forecaster.step(morning), "T0")) == [1, 5, 15]
