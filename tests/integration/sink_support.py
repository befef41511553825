"""Helpers for the sink's integration tests: bars to produce, sink subprocesses, waiting on the database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.synthetic_bars import synthetic_bar
from shared.kafka import ReliableProducer, ensure_topics
from shared.schemas import BarV1, encode
from shared.settings import Settings

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


def bar(ticker: str, minute: int, rev: int = 0, close: float | None = None) -> BarV1:
    """``ticker``'s bar of minute ``minute`` after ``T0``; its price tells the minute and the ``rev``."""
    price = close if close is not None else 100.0 + minute + rev / 100
    return synthetic_bar(
        ticker, T0 + timedelta(minutes=minute), price, rev=rev, final=rev >= 2, volume=1_000 + minute
    )


def produce(settings: Settings, messages: list[tuple[str | None, bytes]], topic: str | None = None) -> None:
    """Produce ``(key, value)`` pairs (raw bytes) to the bars topic (or ``topic``) and wait for delivery."""
    ensure_topics(settings, settings.kafka.topics())
    producer = ReliableProducer(settings, client_id="test-feed")
    for key, value in messages:
        producer.produce(topic or settings.kafka.bars_topic, value, key=key)
    assert producer.flush(30) == 0


def bar_messages(bars: list[BarV1]) -> list[tuple[str | None, bytes]]:
    return [(b.ticker, encode(b)) for b in bars]


def sink_env(settings: Settings, log_file: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTFOLIO_")}
    env |= {
        "PORTFOLIO_KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "PORTFOLIO_MONGODB_URI": settings.mongo.uri,
        "PORTFOLIO_MONGODB_DB": settings.mongo.db,
        "PORTFOLIO_BARS_TOPIC": settings.kafka.bars_topic,
        "PORTFOLIO_PREDICTIONS_TOPIC": settings.kafka.predictions_topic,
        "PORTFOLIO_DLQ_TOPIC": settings.kafka.dlq_topic,
        "PORTFOLIO_SINK_GROUP_ID": settings.sink.group_id,
        "PORTFOLIO_SINK_BATCH_MAX": str(settings.sink.batch_max),
        "PORTFOLIO_SINK_BATCH_MS": str(settings.sink.batch_ms),
        "PORTFOLIO_SINK_HTTP_PORT": "0",
        "PORTFOLIO_LOG_FILE": str(log_file),
        "PYTHONPATH": str(REPO),
    }
    return env | extra


@contextmanager
def sink_process(settings: Settings, log_file: Path, **extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """A ``portfolio sink`` subprocess; stopped with SIGTERM (or already killed) on the way out."""
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "sink"],
        cwd=REPO,
        env=sink_env(settings, log_file, **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def log_text(log_file: Path) -> str:
    return log_file.read_text(encoding="utf-8") if log_file.exists() else ""
