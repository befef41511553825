"""Feeding the sink's integration tests: bars (or raw bytes) produced to the test's topics; the sink's
repository driven in the test's process, its database commands counted."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import monitoring
from pymongo.database import Database

from services.sink.batch import DecodedBatch
from services.sink.close_delivery import CloseDelivery
from services.sink.portfolio import closes_topic, decode_close
from services.sink.repository import SinkRepository, WriteOutcome
from shared.kafka import ReliableProducer, ensure_topics
from shared.lifecycle import StopFlag
from shared.schemas import BarV1, encode
from shared.settings import Settings

PARTITIONS = 6


def produce(settings: Settings, messages: list[tuple[str | None, bytes]], topic: str | None = None) -> None:
    """Produce ``(key, value)`` pairs (raw bytes) to the bars topic (or ``topic``) and wait for delivery."""
    ensure_topics(settings, settings.kafka.topics())
    producer = ReliableProducer(settings, client_id="test-feed")
    for key, value in messages:
        producer.produce(topic or settings.kafka.bars_topic, value, key=key)
    assert producer.flush(30) == 0


def bar_messages(bars: list[BarV1]) -> list[tuple[str | None, bytes]]:
    return [(b.ticker, encode(b)) for b in bars]


class CommandCounter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: Counter[str] = Counter()
        self.by_collection: Counter[tuple[str, str]] = Counter()  # (command, collection)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in ("ping", "endSessions", "hello", "isMaster"):
            self.commands[event.command_name] += 1
            self.by_collection[(event.command_name, str(event.command.get(event.command_name)))] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class Sink:
    """A sink's repository on the test's database, its closes delivered to the real closes topic and kept, so
    they can be written as the closes partition's owner would."""

    def __init__(self, settings: Settings, db: Database[dict[str, Any]], counter: CommandCounter) -> None:
        ensure_topics(settings, [*settings.kafka.topics(), closes_topic(settings.kafka.bars_topic)])
        producer = ReliableProducer(settings, client_id="test-late-closes")
        self.delivery = CloseDelivery(producer, closes_topic(settings.kafka.bars_topic), StopFlag())
        self.closes: list[bytes] = []
        self.skipped = timedelta()  # wall time skipped ahead: what settles by time settles without waiting
        self.repository = SinkRepository(db, self._deliver, now=lambda: datetime.now(UTC) + self.skipped)
        self.counter = counter

    def _deliver(self, closes: Sequence[tuple[str, bytes]]) -> None:
        self.delivery.deliver(closes)
        self.closes += [value for _, value in closes]

    def write(self, batch: DecodedBatch) -> tuple[WriteOutcome, Counter[str], float]:
        self.counter.commands.clear()
        started = time.perf_counter()
        outcome = self.repository.write(batch)
        return outcome, Counter(self.counter.commands), time.perf_counter() - started

    def write_bars(self, bars: list[BarV1]) -> tuple[WriteOutcome, Counter[str], float]:
        partitions = {b.ticker: int(b.ticker[1:]) % PARTITIONS for b in bars}
        return self.write(DecodedBatch(bars=bars, bar_partitions=partitions))

    def write_closes(self) -> tuple[WriteOutcome, Counter[str], float]:
        closes = [(0, decode_close(value)) for value in self.closes]
        self.closes = []
        return self.write(DecodedBatch(closes=closes))
