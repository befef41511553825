"""Bad settings fail at start with an error that names the setting."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.producer.app import run
from services.producer.market_hours import MarketHours
from services.producer.sources import make_source
from shared.lifecycle import StopFlag
from shared.settings import SettingsError, load_settings
from tests.conftest import REPO, make_settings, merge


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"producer": {"source": "bloomberg"}}, "source"),
        ({"common": {"tickers": ""}}, "tickers"),
        ({"common": {"tickers": " , "}}, "tickers"),
        ({"common": {"download_period_s": 0}}, "download_period_s"),
        ({"common": {"download_period_s": -5}}, "download_period_s"),
        ({"producer": {"source": "replay", "replay_file": "/no/such/file.csv"}}, "replay_file"),
        ({"producer": {"source": "replay"}}, "replay_file"),
        ({"producer": {"shard": "4/3"}}, "shard"),
        ({"producer": {"backfill_minutes": -1}}, "backfill_minutes"),
        ({"producer": {"replay_speed": -1}}, "replay_speed"),
        ({"producer": {"fetch_backoff_max_s": 0}}, "fetch_backoff_max_s"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(overrides: dict[str, dict[str, object]], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(**merge({"common": {"log_file": None}}, overrides))


def test_an_unknown_exchange_calendar_is_refused_naming_it() -> None:
    settings = make_settings(producer={"source": "yfinance", "exchange_calendar": "XMARS"})
    with pytest.raises(SettingsError, match="exchange_calendar"):
        make_source(settings, settings.shard_tickers())


def test_a_replay_file_that_cannot_be_read_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("not,a,bar\n1,2,3\n")
    settings = make_settings(producer={"source": "replay", "replay_file": path})
    with pytest.raises(SettingsError, match="replay_file"):
        make_source(settings, settings.shard_tickers())


def test_an_empty_shard_is_refused_before_connecting() -> None:
    settings = make_settings(
        common={"tickers": "AAPL,MSFT"}, producer={"shard": "3/3"}, kafka={"bootstrap_servers": "127.0.0.1:1"}
    )
    with pytest.raises(SettingsError, match="shard"):
        run(settings, StopFlag())


def test_shards_split_the_tickers_without_overlap() -> None:
    tickers = [f"T{i}" for i in range(10)]
    slices = [
        make_settings(common={"tickers": ",".join(tickers)}, producer={"shard": f"{i}/3"}).shard_tickers()
        for i in (1, 2, 3)
    ]
    assert sorted(t for s in slices for t in s) == sorted(tickers)
    assert all(not set(a) & set(b) for a in slices for b in slices if a is not b)


def test_the_cli_exits_2_naming_the_bad_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shared.cli", "producer"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "PORTFOLIO_SOURCE": "nasdaq"},
        timeout=60,
    )
    assert result.returncode == 2
    assert "source (PORTFOLIO_SOURCE)" in result.stderr


def test_market_hours_follow_the_exchange_calendar() -> None:
    hours = MarketHours("XNYS")
    assert hours.is_open(datetime(2026, 11, 25, 15, 0, tzinfo=UTC))
    assert not hours.is_open(datetime(2026, 11, 28, 15, 0, tzinfo=UTC))  # a Saturday
    assert not hours.is_open(datetime(2026, 11, 26, 15, 0, tzinfo=UTC))  # Thanksgiving
    assert hours.next_open(datetime(2026, 11, 28, 15, 0, tzinfo=UTC)) == datetime(
        2026, 11, 30, 14, 30, tzinfo=UTC
    )
    # 390 trading minutes before Monday 15:00 reach into the Friday after Thanksgiving (closes 13:00 ET)
    # and on into Wednesday.
    assert hours.start_of_last(390, datetime(2026, 11, 30, 15, 0, tzinfo=UTC)) == datetime(
        2026, 11, 25, 18, 31, tzinfo=UTC
    )
