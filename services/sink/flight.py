"""The sink's batch in flight: which records it holds, what came of writing it, and how that is reported.

No I/O here beyond metrics and logging; the loop in ``app.py`` drives it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message

from services.sink.batch import Poison, decode_batch
from services.sink.isolation import Isolated
from services.sink.metrics import SinkMetrics
from services.sink.portfolio import CloseV1, closes_topic
from services.sink.repository import WriteOutcome
from shared.schemas import BarV1, PredictionV1
from shared.settings import Settings

logger = logging.getLogger(__name__)

Item = tuple[Message, BarV1 | PredictionV1 | CloseV1]
Written = WriteOutcome  # what one repository write did


@dataclass
class Flight:
    """One batch in the database's hands. ``excluded`` partitions were revoked or lost meanwhile: nothing
    of theirs is committed or dead-lettered by this member (their new owner reads them again)."""

    records: list[Message]
    poison: list[Poison]
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Isolated[Item, Written] | None = None
    closes: int = 0  # delivered to the closes topic by the write
    error: BaseException | None = None
    excluded: set[tuple[str, int]] = field(default_factory=set)

    def keeps(self, topic: str | None, partition: int | None) -> bool:
        return (topic or "", partition or 0) not in self.excluded


def record_batch(metrics: SinkMetrics, flight: Flight, outcome: Isolated[Item, Written]) -> None:
    """Metrics and the one log line of a written batch."""
    elapsed = time.monotonic() - flight.started
    metrics.write_batch_seconds.observe(elapsed)
    totals = WriteOutcome()
    for written in outcome.results:
        for name in vars(totals):
            setattr(totals, name, getattr(totals, name) + getattr(written, name))
    # A count of what ``latest`` holds, not of what was done: summing the parts' would count twice.
    totals.bars_in_progress = max((w.bars_in_progress for w in outcome.results), default=0)
    for collection, count in totals.documents_written.items():
        metrics.documents_written.labels(collection).inc(count)
    for poison in flight.poison:
        metrics.dlq_messages.labels(poison.reason).inc()
        logger.warning(
            "dead-lettered reason=%s topic=%s partition=%d offset=%d detail=%s",
            poison.reason,
            poison.topic,
            poison.partition,
            poison.offset,
            poison.detail[:300],
        )
    metrics.revisions_ignored.inc(totals.revisions_ignored)
    logger.info(
        "wrote batch messages=%d bars_inserted=%d bars_updated=%d bars_replayed=%d bars_in_progress=%d "
        "revisions_ignored=%d portfolio_rows=%d predictions=%d late_gathered=%d closes=%d dead_letters=%d "
        "seconds=%.3f",
        len(flight.records),
        totals.bars_inserted,
        totals.bars_updated,
        totals.bars_replayed,
        totals.bars_in_progress,
        totals.revisions_ignored,
        totals.portfolio_rows,
        totals.predictions_written,
        totals.late_gathered,
        flight.closes,
        len(flight.poison),
        elapsed,
    )


def after(seconds: float) -> Callable[[], bool]:
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() >= deadline


def decode_flight(records: list[Message], settings: Settings) -> tuple[Flight, list[Item]]:
    """The batch in flight for ``records`` (what validation refused is its poison), and each valid
    record paired with its decoded message, ready to write."""
    batch = decode_batch(
        records,
        bars_topic=settings.kafka.bars_topic,
        predictions_topic=settings.kafka.predictions_topic,
        max_bytes=settings.kafka.max_message_bytes,
        closes_topic=closes_topic(settings.kafka.bars_topic),
    )
    decoded: dict[str, list[Any]] = {
        settings.kafka.bars_topic: batch.bars,
        settings.kafka.predictions_topic: batch.predictions,
        closes_topic(settings.kafka.bars_topic): [close for _, close in batch.closes],
    }
    return Flight(records, list(batch.poison)), pair_records(records, batch.poison, decoded)


def pair_records(records: list[Message], poison: list[Poison], decoded: dict[str, list[Any]]) -> list[Item]:
    """Each valid record with its decoded message (``decode_batch`` keeps record order per topic), so a
    message the database refuses can be dead-lettered as the record it came from. ``decoded`` maps each
    topic to its messages in order."""
    refused = {(p.topic, p.partition, p.offset) for p in poison}
    valid = [r for r in records if (r.topic() or "", r.partition() or 0, r.offset() or 0) not in refused]
    items: list[Item] = []
    for topic, messages in decoded.items():
        mine = [r for r in valid if r.topic() == topic]
        items += zip(mine, messages, strict=True)
    assert len(items) == len(valid), "a record of a topic the batch did not decode"
    return items


def refused_poison(record: Message, error: Exception) -> Poison:
    return Poison(
        topic=record.topic() or "",
        partition=record.partition() or 0,
        offset=record.offset() or 0,
        key=record.key(),
        value=record.value(),
        reason="write_refused",
        detail=f"{type(error).__name__}: {error}",
    )
