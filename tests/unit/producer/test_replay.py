from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from services.producer.sources.replay import ReplaySource

T0 = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)


def write_file(path: Path, minutes: int = 10, tickers: tuple[str, ...] = ("AAPL", "MSFT")) -> Path:
    rows = []
    for m in range(minutes):
        for i, ticker in enumerate(tickers):
            price = 100 + i + m
            ts = (T0 + timedelta(minutes=m)).astimezone().isoformat()  # any offset: read as UTC
            rows.append(
                {
                    "Datetime": ts,
                    "Ticker": ticker,
                    "Open": price,
                    "High": price + 1,
                    "Low": price - 1,
                    "Close": price + 0.5,
                    "Volume": 1000 + m,
                }
            )
    frame = pd.DataFrame(rows)
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("name", ["bars.csv", "bars.parquet"])
def test_a_yfinance_export_is_read_in_utc_for_the_requested_tickers(tmp_path: Path, name: str) -> None:
    path = write_file(tmp_path / name, tickers=("AAPL", "MSFT", "NVDA"))
    source = ReplaySource(path, ["AAPL", "NVDA"], speed=0)
    bars = pd.concat(f.bars for f in source.backfill(10, T0))
    assert set(bars["ticker"]) == {"AAPL", "NVDA"}
    assert bars["ts"].min() == pd.Timestamp(T0)
    assert len(bars) == 20


def test_as_fast_as_possible_returns_everything_in_chunks_then_nothing(tmp_path: Path) -> None:
    source = ReplaySource(write_file(tmp_path / "b.csv", minutes=300), ["AAPL", "MSFT"], speed=0)
    wall = datetime(2026, 11, 25, tzinfo=UTC)
    backfilled = sum(len(f.bars) for f in source.backfill(30, wall))
    fetches = [source.fetch(wall, wall)]
    while fetches[-1].more:
        fetches.append(source.fetch(wall, wall))
    assert backfilled == 60
    assert sum(len(f.bars) for f in fetches) == 600 - 60
    assert len(fetches) == 3  # 270 minutes in chunks of 120
    assert source.fetch(wall, wall).bars.empty


def test_real_time_and_faster_replay_follow_the_wall_clock(tmp_path: Path) -> None:
    wall = datetime(2026, 11, 25, 12, tzinfo=UTC)
    for speed, after, expected_minutes in ((1.0, 125, 2), (10.0, 125, 20)):
        source = ReplaySource(write_file(tmp_path / "b.csv", minutes=30), ["AAPL", "MSFT"], speed=speed)
        assert source.fetch(wall, wall).bars.empty  # the replay clock starts: no minute complete yet
        fetch = source.fetch(wall, wall + timedelta(seconds=after))
        assert fetch.bars["ts"].nunique() == expected_minutes
        assert fetch.closed_before == T0 + timedelta(minutes=expected_minutes)


def test_a_file_without_the_bar_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    pd.DataFrame({"ticker": ["AAPL"], "price": [1.0]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="no column for ts, open, high, low, close, volume"):
        ReplaySource(path, ["AAPL"], speed=0)


def test_the_sample_file_replays_every_default_ticker_without_invalid_rows() -> None:
    from services.producer.cycle import prepare
    from services.producer.revisions import RevisionTracker
    from shared.settings import DEFAULT_TICKERS
    from tests.conftest import REPO

    source = ReplaySource(REPO / "services/producer/sample/bars-1h.csv", list(DEFAULT_TICKERS), speed=0)
    tracker = RevisionTracker()
    prepared = [prepare(f.bars, f.closed_before, tracker, "replay") for f in source.backfill(60, T0)]
    assert all(p.invalid == [] for p in prepared)
    assert sum(len(p.messages) for p in prepared) > 60 * len(DEFAULT_TICKERS) * 0.95
    assert source.remaining_minutes == 0
