"""The live trainer's portfolio series (``portfolio_value.py``): the same bars as the backtest's
``portfolio_closes``, built as the tickers' bars come, nothing at or before t moved by later bars, the waits,
the checkpoint, and the live forecasts equal to the backtest's for the same bars."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import torch

from services.trainer.backtest import bars_in, normalized, predictions_frame, run_backtest
from services.trainer.forecaster.core import Forecaster
from services.trainer.forecaster.portfolio_value import PortfolioValue, portfolio_weights, with_portfolio
from services.trainer.forecaster.records import BarIn, Forecast
from services.trainer.intervals.range_grid import portfolio_closes
from services.trainer.model.series import from_minute
from services.trainer.restart import ingest_stored
from shared.session import XNYS
from shared.settings import PORTFOLIO_SERIES
from tests.unit.trainer.synthetic import tiny_config

from .test_horizons import OPEN, market
from .test_range_table import frame

TICKERS = ["T0", "T1", "T2"]


def gappy(bars: list[BarIn], seed: int = 3, share: float = 0.03) -> list[BarIn]:
    """Bars with a few missing (a ticker without a trade in a minute), ordered as the backtest feeds them."""
    rng = np.random.default_rng(seed)
    kept = [b for b in bars if rng.random() >= share]
    return sorted(kept, key=lambda b: (b.minute, b.ticker))


def live_bars(bars: list[BarIn], weights: dict[str, float] | None = None) -> list[BarIn]:
    value = PortfolioValue(portfolio_weights(weights or {}, TICKERS), XNYS)
    out = with_portfolio(value, bars, now=0.0)
    return [b for b in out if b.ticker == PORTFOLIO_SERIES]


def as_frame(bars: list[BarIn]) -> pd.DataFrame:
    return frame(bars).assign(ticker=PORTFOLIO_SERIES)[["ticker", "ts", "close", "high", "low"]]


@pytest.mark.parametrize("weights", [None, {"T0": 3.0, "T2": 1.0, "T1": 0.5}])
def test_live_portfolio_bars_are_the_backtests(weights: dict[str, float] | None) -> None:
    bars = gappy(market(3))
    # One ticker starts late: no value before it has traded (it is bought at its first close).
    bars = [b for b in bars if not (b.ticker == "T2" and b.minute < OPEN + 7)]
    live = as_frame(live_bars(bars, weights))
    backtest = portfolio_closes(frame(bars), XNYS, weights)
    assert len(live) > 1000 and live["ts"].min() == from_minute(OPEN + 7)
    # The minutes after the last one some ticker traded wait for the wait (none here): all but the tail.
    pd.testing.assert_frame_equal(live, backtest.iloc[: len(live)], check_exact=False, rtol=1e-12)
    assert len(backtest) - len(live) <= 1


def test_shifting_the_future_changes_no_live_portfolio_bar_at_or_before_t() -> None:
    bars = gappy(market(2))
    t = bars[len(bars) // 2].minute
    shifted = [b if b.minute <= t else b._replace(minute=b.minute + 1, close=b.close * 1.05) for b in bars]
    before, after = live_bars(bars), live_bars(shifted)
    known = [b for b in before if b.minute <= t]
    assert [b for b in after if b.minute <= t] == known and len(known) > 100
    assert [b for b in after if b.minute > t] != [b for b in before if b.minute > t]


def test_a_minute_waits_for_every_ticker_then_for_the_wait_at_most() -> None:
    value = PortfolioValue({"A": 0.5, "B": 0.5}, XNYS, wait_s=5.0)
    bar = BarIn("A", OPEN, 10.0)
    assert value.add(bar, now=0.0) == []
    assert value.add(bar._replace(final=False, ticker="B"), now=0.0) == []  # provisional: not counted
    (first,) = value.add(BarIn("B", OPEN, 20.0), now=0.0)
    assert (first.ticker, first.minute, first.close) == (PORTFOLIO_SERIES, OPEN, 100.0)
    # B has no bar at the next minute: its close carries on once the wall-clock wait is over.
    assert value.add(BarIn("A", OPEN + 1, 11.0), now=10.0) == []
    assert value.due(now=14.9) == []
    (second,) = value.due(now=15.0)
    assert second.minute == OPEN + 1 and second.close == pytest.approx(105.0)
    # A backlog read unevenly: A's bars minutes ahead of B's build nothing until B's come.
    for minute in range(OPEN + 2, OPEN + 8):
        assert value.add(BarIn("A", minute, 12.0), now=20.0) == []
    (third,) = value.add(BarIn("B", OPEN + 2, 20.0), now=20.0)
    assert third.minute == OPEN + 2 and third.close == pytest.approx(110.0)
    # B has no bar at minute 3: its bar at minute 4 says it will not get one, and builds both.
    (fourth, fifth) = value.add(BarIn("B", OPEN + 4, 30.0), now=20.0)
    assert [fourth.minute, fifth.minute] == [OPEN + 3, OPEN + 4]
    assert [fourth.close, fifth.close] == pytest.approx([110.0, 135.0])
    # B's late bar for a minute already built changes nothing: the series is never revised.
    assert value.add(BarIn("B", OPEN + 3, 40.0), now=20.0) == []
    # A ticker whose partition is revoked: no value until its bars come again.
    value.forget(["B"])
    assert value.due(now=24.9) == [] and len(value.open) == 3
    assert value.due(now=25.0) == [] and not value.open  # minutes 5-7 waited out, without a value


def test_no_value_across_the_night_before_every_ticker_trades_again() -> None:
    value = PortfolioValue({"A": 0.5, "B": 0.5}, XNYS)
    with_portfolio(value, [BarIn("A", OPEN, 10.0), BarIn("B", OPEN, 10.0)], now=0.0)
    next_day = OPEN + 1440
    assert with_portfolio(value, [BarIn("A", next_day, 11.0)], now=0.0)[1:] == []
    assert value.due(now=10.0) == []  # B's close is yesterday's: not carried into a new session
    out = with_portfolio(value, [BarIn("A", next_day + 1, 11.0), BarIn("B", next_day + 1, 12.0)], now=10.0)
    assert [b.close for b in out if b.ticker == PORTFOLIO_SERIES] == [pytest.approx(115.0)]


def test_weights_cover_the_published_tickers_only() -> None:
    assert portfolio_weights({}, ["A", "B"]) == {"A": 0.5, "B": 0.5}
    assert portfolio_weights({"A": 0.3, "B": 0.7, "ZZZ": 5.0}, ["A", "B"]) == pytest.approx(
        {"A": 0.3, "B": 0.7}
    )
    with pytest.raises(ValueError, match="no weighted ticker"):
        portfolio_weights({"ZZZ": 1.0}, ["A", "B"])


def rows(bars: list[BarIn]) -> list[tuple[str, datetime, float, int, float, float]]:
    return [(b.ticker, from_minute(b.minute).astimezone(UTC), b.close, b.rev, b.high, b.low) for b in bars]


def test_the_portfolio_series_and_its_builder_travel_with_the_checkpoint() -> None:
    bars = gappy(market(2))
    cut = bars[len(bars) // 2].minute
    forecaster = Forecaster(tiny_config(max_epochs=1, update_steps=0))
    forecaster.portfolio_value = PortfolioValue(portfolio_weights({}, TICKERS), XNYS)
    ingest_stored(forecaster, rows([b for b in bars if b.minute < cut]))
    assert forecaster.train_cycle().cold_start is not None
    buffer = io.BytesIO()
    torch.save(forecaster.state(), buffer)
    state = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)

    resumed = Forecaster(tiny_config(max_epochs=1, update_steps=0))
    resumed.portfolio_value = PortfolioValue(portfolio_weights({}, TICKERS), XNYS)
    assert resumed.restore(state)
    rest = [b for b in bars if b.minute >= cut]
    ran_on = forecaster.step(with_portfolio(forecaster.portfolio_value, rest, now=0.0))
    again = resumed.step(with_portfolio(resumed.portfolio_value, rest, now=0.0))
    mine = [f for f in ran_on if f.ticker == PORTFOLIO_SERIES]
    assert len(mine) > 100 and mine == [f for f in again if f.ticker == PORTFOLIO_SERIES]

    # Saved for other weights: another portfolio's series, dropped and built again.
    other = Forecaster(tiny_config(max_epochs=1, update_steps=0))
    other.portfolio_value = PortfolioValue(portfolio_weights({"T0": 1.0}, TICKERS), XNYS)
    assert other.restore(state)
    assert PORTFOLIO_SERIES not in other.series and PORTFOLIO_SERIES not in other.scalers


def test_live_portfolio_forecasts_equal_the_backtests_for_the_same_bars() -> None:
    bars = gappy(market(3, seed=4), seed=5)
    config = tiny_config(max_epochs=2, update_steps=0)
    data = frame(bars)
    backtest = run_backtest(
        pd.concat([data, portfolio_closes(data, XNYS)], ignore_index=True), config, cold_fraction=0.5
    )
    expected = backtest.predictions[backtest.predictions["ticker"] == PORTFOLIO_SERIES]

    # The live path: history read as at a start (restart.ingest_stored), the cold start, then every minute's
    # bars as the trainer's loop hands them to the forecaster, a training cycle after each (as the backtest).
    forecaster = Forecaster(config, seed=0)
    value = forecaster.portfolio_value = PortfolioValue(portfolio_weights({}, TICKERS), XNYS)
    ordered = bars_in(normalized(data))
    ingest_stored(forecaster, rows([b for b in ordered if b.minute < backtest.boundary]))
    assert forecaster.train_cycle().cold_start is not None
    forecasts: list[Forecast] = []
    rest = [b for b in ordered if b.minute >= backtest.boundary]
    for minute in sorted({b.minute for b in rest}):
        forecasts += forecaster.step(with_portfolio(value, [b for b in rest if b.minute == minute], now=0.0))
        forecaster.train_cycle()
    live = predictions_frame(forecasts)
    live = live[
        (live["ticker"] == PORTFOLIO_SERIES) & (live["based_on_ts"] >= from_minute(backtest.boundary))
    ]
    columns = ["ts", "based_on_ts", "horizon_min", "yhat", "ar_yhat", "q10", "q90"]
    assert len(expected) > 500 and set(expected["horizon_min"]) == {1, 5, 15, 30}
    assert expected["model_version"].str.startswith("per_stock").mean() > 0.9
    key = ["based_on_ts", "horizon_min"]
    left = expected[columns].sort_values(key).reset_index(drop=True)
    right = live[columns].sort_values(key).reset_index(drop=True)
    # The tail the live series still waits on (bars after the last minute would decide it) aside.
    pd.testing.assert_frame_equal(right, left.iloc[: len(right)], check_exact=False, rtol=1e-9)
    assert len(left) - len(right) <= 4
    assert not math.isnan(float(right["q10"].iloc[-1]))
