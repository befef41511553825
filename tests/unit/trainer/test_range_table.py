"""The backtest at every horizon: predictions with ``horizon_min``, the per-horizon table against both
baselines from the one scorer, and the portfolio series built from closes known at each minute."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from services.scoring.score import POOLED
from services.trainer.backtest import run_backtest
from services.trainer.intervals.range_grid import grid_of, portfolio_closes
from services.trainer.intervals.range_table import format_table, horizon_table
from shared.session import XNYS
from shared.settings import PORTFOLIO_SERIES, TICKER_PATTERN
from tests.unit.trainer.synthetic import tiny_config

from .test_horizons import HORIZONS, OPEN, market


def frame(bars: list) -> pd.DataFrame:  # type: ignore[type-arg]
    return pd.DataFrame(
        {
            "ticker": [b.ticker for b in bars],
            "ts": pd.to_datetime([b.minute * 60 for b in bars], unit="s", utc=True),
            "close": [b.close for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
        }
    )


def test_the_portfolio_is_a_buy_and_hold_value_under_a_name_no_ticker_can_take() -> None:
    assert not TICKER_PATTERN.match(PORTFOLIO_SERIES)
    ts = pd.date_range("2026-01-05 14:30", periods=3, freq="min", tz="UTC")
    bars = pd.DataFrame({"ticker": ["A"] * 3 + ["B"] * 3, "ts": list(ts) * 2,
                         "close": [10.0, 15.0, 20.0, 50.0, 50.0, 50.0]})  # fmt: skip
    assert portfolio_closes(bars, XNYS)["close"].tolist() == pytest.approx([100.0, 125.0, 150.0])
    assert portfolio_closes(bars, XNYS, {"A": 3, "B": 1})["close"].tolist() == pytest.approx(
        [100.0, 137.5, 175.0]
    )
    # A minute a ticker misses repeats its close before (within the session).
    gappy = bars.drop(index=4)
    assert portfolio_closes(gappy, XNYS)["close"].tolist() == pytest.approx([100.0, 125.0, 150.0])


def test_shifting_the_future_changes_no_portfolio_value_at_or_before_t() -> None:
    data = frame(market(2))
    t = data["ts"].iloc[len(data) // 2]
    later = data["ts"] > t
    shifted = data.assign(ts=data["ts"].where(~later, data["ts"] + pd.Timedelta(minutes=1)),
                          close=data["close"].where(~later, data["close"] * 1.05))  # fmt: skip
    before, after = portfolio_closes(data, XNYS), portfolio_closes(shifted, XNYS)
    known = before[before["ts"] <= t].reset_index(drop=True)
    pd.testing.assert_frame_equal(after[after["ts"] <= t].reset_index(drop=True), known)
    assert not after[after["ts"] > t]["close"].equals(before[before["ts"] > t]["close"])


def test_backtest_forecasts_every_horizon_and_tables_them_against_both_baselines() -> None:
    data = frame(market(8, seed=2))
    data = pd.concat([data, portfolio_closes(data, XNYS)], ignore_index=True)
    result = run_backtest(data, tiny_config(max_epochs=2, update_steps=0), cold_fraction=0.75)
    predictions = result.predictions
    assert set(predictions["horizon_min"]) == set(HORIZONS)
    assert not predictions.duplicated(["ticker", "ts", "horizon_min"]).any()
    target = XNYS.minute_of(
        ((predictions["ts"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta("1min")).to_numpy()
    )
    assert (target < 390).all()
    assert result.boundary > OPEN
    rows = horizon_table(data, predictions, result.boundary, HORIZONS, XNYS)
    keys = [(r.horizon, r.series, r.forecaster) for r in rows]
    for h in HORIZONS:
        for series in (POOLED, PORTFOLIO_SERIES):
            assert [k for k in keys if k[:2] == (h, series)] == [
                (h, series, n) for n in ("model", "EWMA", "GARCH")
            ]
    model = next(r for r in rows if r.forecaster == "model" and r.series == POOLED and r.horizon == 5)
    ewma = next(r for r in rows if r.forecaster == "EWMA" and r.series == POOLED and r.horizon == 5)
    assert model.coverage.n == ewma.coverage.n > 500
    assert 0.7 < (model.coverage.share or 0) < 0.9
    ratio, p, _, _ = model.versus["EWMA"]
    assert ratio is not None and 0.8 < ratio < 1.2 and p is not None
    assert model.mse_ratio is not None and model.clark_west_p is not None
    assert model.tickers is not None and model.tickers[0] <= (model.coverage.share or 0) <= model.tickers[1]
    assert model.buckets is not None and model.buckets[0] <= model.buckets[1]
    assert "_PORTFOLIO" in format_table(rows)
    # The grid holds every series the table scored.
    assert set(grid_of(data, XNYS).tickers) == {"T0", "T1", "T2", PORTFOLIO_SERIES}
    assert np.isfinite(grid_of(data, XNYS).ranges).any()
