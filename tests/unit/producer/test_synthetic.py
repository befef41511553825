from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from services.producer.revisions import RevisionTracker
from services.producer.sources.synthetic import SyntheticSource
from services.producer.validation import split_valid

NOW = datetime(2026, 11, 25, 14, 35, 20, tzinfo=UTC)
TICKERS = [f"T{i}" for i in range(40)]


def test_a_restart_regenerates_the_same_history() -> None:
    first = pd.concat(f.bars for f in SyntheticSource(TICKERS, seed=7).backfill(90, NOW))
    again = pd.concat(f.bars for f in SyntheticSource(TICKERS[::-1], seed=7).backfill(90, NOW))
    key = ["ticker", "ts"]
    pd.testing.assert_frame_equal(
        first.sort_values(key).reset_index(drop=True), again.sort_values(key).reset_index(drop=True)
    )
    other_seed = pd.concat(f.bars for f in SyntheticSource(TICKERS, seed=8).backfill(90, NOW))
    assert not np.allclose(other_seed["close"].to_numpy()[:100], first["close"].to_numpy()[:100])


def test_backfill_is_closed_valid_ohlc_on_the_minute_with_about_one_percent_missing() -> None:
    source = SyntheticSource(TICKERS, seed=7)
    fetches = list(source.backfill(390, NOW))
    bars = pd.concat(f.bars for f in fetches)
    valid, invalid = split_valid(bars)
    assert invalid == []
    assert len(valid) == len(bars)
    assert bars["ts"].max() == pd.Timestamp("2026-11-25 14:34", tz="UTC")
    assert bars["ts"].min() == pd.Timestamp("2026-11-25 08:05", tz="UTC")
    assert all(f.closed_before == datetime(2026, 11, 25, 14, 35, tzinfo=UTC) for f in fetches)
    assert (bars["ts"].dt.second == 0).all()
    missing = 1 - len(bars) / (390 * len(TICKERS))
    assert 0.002 < missing < 0.03
    # The next minute opens where the previous one closed.
    aapl = bars[bars["ticker"] == "T0"].set_index("ts").sort_index()
    consecutive = aapl.index.to_series().diff() == pd.Timedelta(minutes=1)
    assert np.allclose(aapl["open"][consecutive], aapl["close"].shift()[consecutive])


def test_backfill_across_midnight_is_continuous_in_time() -> None:
    source = SyntheticSource(["AAPL"], seed=1)
    now = datetime(2026, 11, 26, 0, 30, 5, tzinfo=UTC)
    bars = pd.concat(f.bars for f in source.backfill(120, now))
    assert bars["ts"].min() >= pd.Timestamp("2026-11-25 22:30", tz="UTC")
    assert bars["ts"].max() == pd.Timestamp("2026-11-26 00:29", tz="UTC")
    assert bars["ts"].is_unique


def test_returns_are_correlated_across_tickers() -> None:
    bars = pd.concat(f.bars for f in SyntheticSource(TICKERS[:10], seed=3).backfill(600, NOW))
    closes = bars.pivot_table(index="ts", columns="ticker", values="close")
    returns = np.log(closes).diff().dropna()
    corr = returns.corr().to_numpy()
    off_diagonal = corr[~np.eye(len(corr), dtype=bool)]
    assert 0.15 < off_diagonal.mean() < 0.8


def test_volume_is_u_shaped_over_the_day() -> None:
    source = SyntheticSource(TICKERS, seed=7)
    day = source.bars(datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC), NOW)
    by_hour = day.groupby(day["ts"].dt.hour)["volume"].mean()
    assert by_hour[0] > 2 * by_hour[12]
    assert by_hour[23] > 2 * by_hour[12]


def test_the_minute_in_progress_fills_then_closes_as_one_more_revision() -> None:
    source = SyntheticSource(["AAPL"], seed=7)
    minute = datetime(2026, 11, 25, 14, 35, tzinfo=UTC)
    tracker = RevisionTracker()
    seen = []
    for second in (5, 20, 35, 50, 59):
        now = minute + timedelta(seconds=second)
        fetch = source.fetch(minute, now)
        seen += tracker.changes(split_valid(fetch.bars)[0], fetch.closed_before)
    closed = source.fetch(minute, minute + timedelta(minutes=1, seconds=3))
    last = [p for p in tracker.changes(split_valid(closed.bars)[0], closed.closed_before) if p.ts == minute]

    assert [p.rev for p in seen] == [0, 1, 2, 3]  # 4 sub-steps: a change every 15 s, none 50 -> 59 s
    assert all(not p.final for p in seen)
    assert [(p.rev, p.final) for p in last] == [(4, True)]
    assert seen[0].volume < seen[-1].volume == last[0].volume
    assert seen[-1].close == last[0].close
    assert all(p.open == seen[0].open for p in seen)


def test_no_bar_exists_after_now() -> None:
    source = SyntheticSource(["AAPL"], seed=7)
    fetch = source.fetch(NOW - timedelta(minutes=2), NOW)
    assert fetch.bars["ts"].max() <= pd.Timestamp(NOW).floor("min")
    assert source.bars(NOW + timedelta(minutes=1), NOW + timedelta(minutes=5), NOW).empty
