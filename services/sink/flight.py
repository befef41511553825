"""The sink's batch in flight: which records it holds, what came of writing it, and how that is reported.

No I/O here beyond metrics and logging; the loop in ``app.py`` drives it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Message

from services.sink.batch import Poison
from services.sink.isolation import Isolated
from services.sink.metrics import SinkMetrics
from services.sink.repository import WriteOutcome
from shared.schemas import BarV1, PredictionV1

logger = logging.getLogger(__name__)

Item = tuple[Message, BarV1 | PredictionV1]
Written = tuple[WriteOutcome, int]  # what the repository wrote, and revisions superseded within the batch


@dataclass
class Flight:
    """One batch in the database's hands. ``excluded`` partitions were revoked or lost meanwhile: nothing
    of theirs is committed or dead-lettered by this member (their new owner reads them again)."""

    records: list[Message]
    poison: list[Poison]
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Isolated[Item, Written] | None = None
    error: BaseException | None = None
    excluded: set[tuple[str, int]] = field(default_factory=set)

    def keeps(self, topic: str | None, partition: int | None) -> bool:
        return (topic or "", partition or 0) not in self.excluded


def record_batch(metrics: SinkMetrics, flight: Flight, outcome: Isolated[Item, Written]) -> None:
    """Metrics and the one log line of a written batch."""
    elapsed = time.monotonic() - flight.started
    metrics.write_batch_seconds.observe(elapsed)
    totals = WriteOutcome()
    superseded = 0
    for written, dropped in outcome.results:
        superseded += dropped
        for name in ("bars_inserted", "bars_updated", "bars_duplicate", "bars_stale"):
            setattr(totals, name, getattr(totals, name) + getattr(written, name))
        totals.portfolio_rows += written.portfolio_rows
        totals.predictions_written += written.predictions_written
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
    metrics.revisions_ignored.inc(superseded + totals.bars_stale)
    logger.info(
        "wrote batch messages=%d bars_inserted=%d bars_updated=%d bars_replayed=%d revisions_ignored=%d "
        "portfolio_rows=%d predictions=%d dead_letters=%d seconds=%.3f",
        len(flight.records),
        totals.bars_inserted,
        totals.bars_updated,
        totals.bars_duplicate,
        superseded + totals.bars_stale,
        totals.portfolio_rows,
        totals.predictions_written,
        len(flight.poison),
        elapsed,
    )


def after(seconds: float) -> Callable[[], bool]:
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() >= deadline


def pair_records(
    records: list[Message],
    poison: list[Poison],
    bars: list[BarV1],
    predictions: list[PredictionV1],
    bars_topic: str,
) -> list[Item]:
    """Each valid record with its decoded message (``decode_batch`` keeps record order per topic), so a
    message the database refuses can be dead-lettered as the record it came from."""
    refused = {(p.topic, p.partition, p.offset) for p in poison}
    valid = [r for r in records if (r.topic() or "", r.partition() or 0, r.offset() or 0) not in refused]
    bar_records = [r for r in valid if r.topic() == bars_topic]
    other_records = [r for r in valid if r.topic() != bars_topic]
    assert len(bar_records) == len(bars) and len(other_records) == len(predictions)
    return [*zip(bar_records, bars, strict=True), *zip(other_records, predictions, strict=True)]


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
