"""Feeding the sink's integration tests: bars (or raw bytes) produced to the test's topics."""

from __future__ import annotations

from shared.kafka import ReliableProducer, ensure_topics
from shared.schemas import BarV1, encode
from shared.settings import Settings


def produce(settings: Settings, messages: list[tuple[str | None, bytes]], topic: str | None = None) -> None:
    """Produce ``(key, value)`` pairs (raw bytes) to the bars topic (or ``topic``) and wait for delivery."""
    ensure_topics(settings, settings.kafka.topics())
    producer = ReliableProducer(settings, client_id="test-feed")
    for key, value in messages:
        producer.produce(topic or settings.kafka.bars_topic, value, key=key)
    assert producer.flush(30) == 0


def bar_messages(bars: list[BarV1]) -> list[tuple[str | None, bytes]]:
    return [(b.ticker, encode(b)) for b in bars]
