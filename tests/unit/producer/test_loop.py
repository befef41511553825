"""The producer loop's decisions, with a fake source and a fake producer (no broker)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from services.producer import app
from services.producer.app import ProducerLoop
from services.producer.metrics import ProducerMetrics
from services.producer.revisions import restart_safe_rev_base
from services.producer.sources.base import Fetch, FetchError, empty_bars
from shared.lifecycle import StopFlag
from shared.ops import Health
from shared.schemas import decode_bar
from tests.conftest import make_settings

NOW = datetime(2026, 11, 25, 14, 35, 20, tzinfo=UTC)


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, Any]] = []
        self.failed_attempts = 0
        self.delivered = 0

    def produce(self, topic: str, value: bytes, key: Any = None, headers: Any = None) -> None:
        self.sent.append((topic, value, key))

    def poll(self, timeout: float = 0) -> None:
        return None

    @property
    def pending(self) -> int:
        return 0


class FakeSource:
    name = "synthetic"

    def __init__(self, results: list[Fetch | FetchError], open_: bool = True) -> None:
        self.results = results
        self.open = open_
        self.calls: list[tuple[datetime, datetime]] = []

    def is_open(self, now: datetime) -> bool:
        return self.open

    def backfill(self, minutes: int, now: datetime) -> Iterator[Fetch]:
        return iter([])

    def fetch(self, since: datetime, now: datetime) -> Fetch:
        self.calls.append((since, now))
        result = self.results.pop(0)
        if isinstance(result, FetchError):
            raise result
        return result


def one_bar(minute: datetime, close: float) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "ticker": ["AAPL"],
            "ts": [minute],
            "open": [10.0],
            "high": [12.0],
            "low": [9.0],
            "close": [close],
            "volume": [100],
        }
    )
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def make_loop(source: FakeSource) -> tuple[ProducerLoop, FakeProducer, Health]:
    settings = make_settings(common={"download_period_s": 10}, producer={"fetch_backoff_max_s": 60})
    producer = FakeProducer()
    health = Health("kafka", "last_cycle")
    loop = ProducerLoop(settings, source, producer, ProducerMetrics(), health, StopFlag())  # type: ignore[arg-type]
    return loop, producer, health


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "utc_now", lambda: NOW)


def test_a_cycle_publishes_new_and_revised_bars_and_logs_one_line(caplog: pytest.LogCaptureFixture) -> None:
    minute = datetime(2026, 11, 25, 14, 35, tzinfo=UTC)
    source = FakeSource(
        [
            Fetch(one_bar(minute, 11.0), closed_before=minute),
            Fetch(one_bar(minute, 11.0), closed_before=minute),
            Fetch(one_bar(minute, 11.5), closed_before=minute),
        ]
    )
    loop, producer, health = make_loop(source)
    with caplog.at_level(logging.INFO, logger="services.producer.app"):
        for _ in range(3):
            wait = loop.cycle(n_tickers=1)
            assert 0 < wait <= 10
    bars = [decode_bar(value) for _, value, _ in producer.sent]
    base = restart_safe_rev_base(NOW)
    assert [(b.close, b.rev) for b in bars] == [(11.0, base), (11.5, base + 1)]
    assert all(key == "AAPL" for _, _, key in producer.sent)
    cycle_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("cycle ")]
    assert len(cycle_lines) == 3
    assert "published=1 new=0 revisions=1" in cycle_lines[2]
    assert health.snapshot()["checks"]["last_cycle"] is True  # type: ignore[index]


def test_the_next_fetch_starts_at_the_oldest_minute_not_yet_closed() -> None:
    minute = datetime(2026, 11, 25, 14, 33, tzinfo=UTC)
    source = FakeSource(
        [Fetch(one_bar(minute, 11.0), closed_before=minute), Fetch(empty_bars(), closed_before=minute)]
    )
    loop, _, _ = make_loop(source)
    loop.cycle(1)
    loop.cycle(1)
    assert source.calls[0][0] == datetime(2026, 11, 25, 14, 35, tzinfo=UTC)  # no history yet: this minute
    assert source.calls[1][0] == minute


def test_fetch_errors_back_off_exponentially_and_never_raise() -> None:
    source = FakeSource([FetchError("network", "reset")] * 6)
    loop, producer, health = make_loop(source)
    waits = [loop.cycle(1) for _ in range(6)]
    ceilings = [min(60, 10 * 2**i) for i in range(6)]
    assert all(ceiling / 2 <= wait <= ceiling for wait, ceiling in zip(waits, ceilings, strict=True))
    assert waits[-1] >= 30
    assert producer.sent == []
    assert health.snapshot()["checks"]["last_cycle"] is False  # type: ignore[index]


def test_a_success_resets_the_backoff_and_a_rate_limit_waits_longer() -> None:
    minute = datetime(2026, 11, 25, 14, 35, tzinfo=UTC)
    source = FakeSource(
        [
            FetchError("rate_limit", "429"),
            FetchError("rate_limit", "429"),
            Fetch(one_bar(minute, 11.0), closed_before=minute, rate_limited=True),
            Fetch(one_bar(minute, 11.0), closed_before=minute),
        ]
    )
    loop, _, _ = make_loop(source)
    loop.cycle(1)
    loop.cycle(1)
    assert loop.cycle(1) >= 20  # data came, but some tickers were rate limited: third step of the backoff
    assert loop.cycle(1) <= 10
    assert loop.backoff.attempts == 0


def test_nothing_is_fetched_while_the_market_is_closed() -> None:
    source = FakeSource([], open_=False)
    loop, _, health = make_loop(source)
    assert loop.cycle(1) == 10
    assert source.calls == []
    assert health.snapshot()["checks"]["last_cycle"] is True  # type: ignore[index]


def test_a_source_with_more_ready_is_fetched_again_at_once() -> None:
    minute = datetime(2026, 11, 20, 14, 35, tzinfo=UTC)
    source = FakeSource(
        [Fetch(one_bar(minute, 11.0), closed_before=minute + timedelta(minutes=1), more=True)]
    )
    loop, _, _ = make_loop(source)
    assert loop.cycle(1) == 0.0


def test_an_unreachable_broker_makes_the_producer_unready_until_a_delivery() -> None:
    from confluent_kafka import KafkaError

    health = Health("kafka", "last_cycle")
    health.set("kafka", True)
    health.set("last_cycle", True)
    app._on_kafka_error(KafkaError(KafkaError._ALL_BROKERS_DOWN), health)
    assert health.snapshot()["ready"] is False
    app._on_delivered(1, ProducerMetrics(), health)
    assert health.snapshot()["ready"] is True


def test_a_failing_ticker_is_reported_when_it_starts_changes_and_ends_not_every_cycle(
    caplog: pytest.LogCaptureFixture,
) -> None:
    minute = datetime(2026, 11, 25, 14, 35, tzinfo=UTC)
    delisted = {"NOPE": "possibly delisted; no timezone found"}
    errors = [delisted, delisted, delisted, {"NOPE": "YFRateLimitError('Too Many Requests')"}, {}]
    source = FakeSource([Fetch(one_bar(minute, 11.0), closed_before=minute, errors=e) for e in errors])
    loop, _, _ = make_loop(source)
    with caplog.at_level(logging.INFO, logger="services.producer.app"):
        for _ in errors:
            loop.cycle(n_tickers=2)
    about_nope = [r.getMessage() for r in caplog.records if "NOPE" in r.getMessage()]
    assert len(about_nope) == 3, about_nope
    assert "delisted" in about_nope[0] and "Too Many Requests" in about_nope[1]
    assert about_nope[2] == "data for NOPE again"
    assert loop.metrics.fetch_errors.labels("ticker")._value.get() == 4
