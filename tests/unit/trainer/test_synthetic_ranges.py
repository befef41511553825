"""The ranges are calibrated on the market the trainer is fed: on the synthetic market (it trades around the
clock) with a session per UTC day, a backtest's ranges hold about 80% of closes at every horizon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from services.producer.sources.synthetic import SyntheticSource
from services.scoring.score import POOLED
from services.trainer.backtest import normalized, run_backtest
from services.trainer.intervals.range_table import horizon_table
from shared.session import UTC_DAY
from shared.settings import DEFAULT_TICKERS
from tests.unit.trainer.synthetic import tiny_config

# Across a UTC midnight: the session boundary the 24h clock cuts returns and ranges at.
NOW = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)
HOURS = 48
HORIZONS = (1, 5, 15, 30)


def synthetic_bars(hours: int, seed: int = 7) -> pd.DataFrame:
    """The synthetic market's final bars of the ``hours`` before :data:`NOW`, as the producer fetches."""
    source = SyntheticSource(list(DEFAULT_TICKERS), seed)
    bars = source.fetch(NOW - timedelta(hours=hours), NOW).bars
    return normalized(bars[bars["ts"] < NOW])


def test_on_the_synthetic_market_a_utc_day_session_gives_ranges_holding_80_percent() -> None:
    bars = synthetic_bars(HOURS)
    config = tiny_config(max_epochs=1, epoch_windows=512, update_steps=0, horizons=HORIZONS, session=UTC_DAY)
    result = run_backtest(bars, config, cold_fraction=0.25)
    rows = horizon_table(bars, result.predictions, result.boundary, HORIZONS, UTC_DAY)
    pooled = {r.horizon: r.coverage for r in rows if r.series == POOLED and r.forecaster == "model"}
    assert set(pooled) == set(HORIZONS)
    shares = {h: c.share for h, c in pooled.items()}
    for h, coverage in pooled.items():
        # Every minute forecast at every horizon but the last h before midnight (past the session's close).
        assert coverage.n > 0.8 * len(DEFAULT_TICKERS) * (HOURS * 60 * 0.75 - 2 * h)
        assert coverage.share is not None and 0.75 <= coverage.share <= 0.85, (h, shares)
