"""Each source through the real producer loop to the real broker, read back by an independent consumer."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from confluent_kafka import Consumer

from services.producer.app import run
from services.producer.sources.base import Source
from services.producer.sources.yfinance_source import YFinanceSource
from shared.kafka import make_consumer
from shared.lifecycle import StopFlag
from shared.schemas import BarV1, decode_bar
from shared.settings import Settings
from testkit.ports import free_port

pytestmark = pytest.mark.integration


@contextmanager
def producer_running(settings: Settings, source: Source | None = None) -> Iterator[StopFlag]:
    stop = StopFlag()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run(settings, stop, source=source)
        except BaseException as error:  # surfaced in the test thread below
            errors.append(error)

    thread = threading.Thread(target=target, name="producer-under-test")
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive(), "the producer did not stop"
    assert not errors, errors


def read_bars(settings: Settings, until: Callable[[list[BarV1]], bool], timeout: float = 60.0) -> list[BarV1]:
    consumer: Consumer = make_consumer(
        settings, f"{settings.kafka.bars_topic}-reader", client_id="test-reader"
    )
    consumer.subscribe([settings.kafka.bars_topic])
    got: list[BarV1] = []
    deadline = time.monotonic() + timeout
    try:
        while not until(got) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            bar = decode_bar(msg.value())
            assert msg.key() == bar.ticker.encode()
            got.append(bar)
    finally:
        consumer.close()
    return got


def test_synthetic_bars_for_every_ticker_reach_an_independent_consumer(
    settings_factory: Callable[..., Settings],
) -> None:
    port = free_port()
    settings = settings_factory(
        producer={"source": "synthetic", "backfill_minutes": 20, "http_port": port},
        common={"tickers": "AAPL,MSFT,NVDA", "download_period_s": 1.0},
    )
    with producer_running(settings):
        # Backfill (3 tickers × 20 minutes minus the ~1% missing) and then at least one live bar each.
        got = read_bars(
            settings,
            until=lambda bars: len({b.ticker for b in bars if not b.final}) == 3 and len(bars) >= 60,
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            health = json.loads(response.read())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            metrics = response.read().decode()

    assert {b.ticker for b in got} == {"AAPL", "MSFT", "NVDA"}
    first_rev = min(b.rev for b in got)  # the producer's restart-safe base
    backfill = [b for b in got if b.final and b.rev == first_rev]
    assert len(backfill) >= 3 * 20 * 0.9
    assert all(b.source == "synthetic" for b in got)
    live = [b for b in got if not b.final]
    now = datetime.now(UTC)
    assert all(now - b.ts < timedelta(minutes=2) for b in live)
    assert health["ready"] is True
    assert "portfolio_producer_bars_published_total" in metrics
    assert "portfolio_producer_cycle_seconds_count" in metrics


def test_replay_publishes_every_valid_row_of_a_file_and_skips_the_invalid(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    t0 = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
    rows = []
    for m in range(50):
        for i, ticker in enumerate(("AAPL", "MSFT")):
            price = 100.0 + i + m
            rows.append(
                [ticker, (t0 + timedelta(minutes=m)).isoformat(), price, price + 1, price - 1, price, 10]
            )
    rows[7][5] = 500.0  # close above high: logged and skipped
    path = tmp_path / "bars.csv"
    pd.DataFrame(rows, columns=["ticker", "ts", "open", "high", "low", "close", "volume"]).to_csv(
        path, index=False
    )
    settings = settings_factory(
        producer={"source": "replay", "replay_file": path, "replay_speed": 0, "backfill_minutes": 10},
        common={"tickers": "AAPL,MSFT"},
    )
    with producer_running(settings):
        got = read_bars(settings, until=lambda bars: len(bars) >= 99)

    assert len(got) == 99
    assert all(b.final and b.rev == got[0].rev and b.source == "replay" for b in got)
    assert len({(b.ticker, b.ts) for b in got}) == 99
    assert min(b.ts for b in got) == t0


class ScriptedYahoo:
    """A download function that serves yfinance-shaped frames: the minute in progress fills up."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, **kwargs: Any) -> pd.DataFrame:
        self.calls += 1
        now = pd.Timestamp.now(tz="UTC").floor("min")
        minutes = pd.DatetimeIndex([now - pd.Timedelta(minutes=2), now - pd.Timedelta(minutes=1), now])
        index = minutes.tz_convert("America/New_York").rename("Datetime")
        columns = {}
        for ticker, base in (("AAPL", 200.0), ("MSFT", 400.0)):
            # A minute's close depends on the minute; the one in progress moves on every call (revised).
            closes = [base + m.minute * 0.1 for m in minutes]
            closes[-1] += min(self.calls, 5) * 0.01
            columns.update(
                {
                    ("Close", ticker): closes,
                    ("High", ticker): [c + 1 for c in closes],
                    ("Low", ticker): [c - 1 for c in closes],
                    ("Open", ticker): closes,
                    ("Volume", ticker): [100.0, 200.0, 300.0],
                }
            )
        frame = pd.DataFrame(columns, index=index)
        frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["Price", "Ticker"])
        return frame.sort_index(axis=1, level=0)


def test_yfinance_source_publishes_and_revises_the_minute_in_progress(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(
        producer={"source": "yfinance", "backfill_minutes": 0},
        common={"tickers": "AAPL,MSFT", "download_period_s": 0.5},
    )
    yahoo = ScriptedYahoo()
    source = YFinanceSource(settings.shard_tickers(), download=yahoo)
    with producer_running(settings, source):
        got = read_bars(
            settings, until=lambda bars: {b.ticker for b in bars if b.rev >= 2} == {"AAPL", "MSFT"}
        )

    assert {b.ticker for b in got} == {"AAPL", "MSFT"}
    assert all(b.source == "yfinance" for b in got)
    latest: dict[tuple[str, datetime], BarV1] = {}
    for bar in got:
        previous = latest.get((bar.ticker, bar.ts))
        assert previous is None or bar.rev == previous.rev + 1  # per key, in order, no gaps
        latest[(bar.ticker, bar.ts)] = bar
    assert {b.ticker for b in got if b.rev >= 2} == {"AAPL", "MSFT"}
    # Yahoo's last minutes may still change: nothing younger than 2 minutes is final.
    assert all(b.ts < datetime.now(UTC) - timedelta(minutes=2) for b in got if b.final)
