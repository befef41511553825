"""Turn a batch of consumed Kafka records into validated bars, predictions, closes and poison (no I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from services.sink.portfolio import CloseV1, decode_close
from shared.schemas import BarV1, MessageError, PredictionV1, decode_bar, decode_prediction


class KafkaRecord(Protocol):
    """The part of ``confluent_kafka.Message`` the sink reads (so tests can pass plain objects)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...


@dataclass(frozen=True)
class Poison:
    """A record that failed validation, with what the dead-letter topic needs to explain it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    detail: str


@dataclass
class DecodedBatch:
    bars: list[BarV1] = field(default_factory=list)
    predictions: list[PredictionV1] = field(default_factory=list)
    closes: list[tuple[int, CloseV1]] = field(default_factory=list)  # (partition, close): closes topic
    poison: list[Poison] = field(default_factory=list)
    # The partition each ticker's messages came from: its in-progress items live in that partition's
    # ``latest`` document, which only the partition's owner writes.
    bar_partitions: dict[str, int] = field(default_factory=dict)
    prediction_partitions: dict[str, int] = field(default_factory=dict)
    # Partitions (by kind: bars, predictions, portfolio) whose items in progress are checked for settling
    # although the batch may hold nothing of theirs: how an item settles once its messages stop.
    sweep: dict[str, set[int]] = field(default_factory=dict)
    settle_all: bool = False  # settle everything in progress there (the sink is stopping)
    # Less than a full batch was in hand: no backlog to gather late items across, so they are applied now.
    caught_up: bool = False


def decode_batch(
    records: Iterable[KafkaRecord],
    *,
    bars_topic: str,
    predictions_topic: str,
    max_bytes: int,
    closes_topic: str | None = None,
) -> DecodedBatch:
    """Validate each record against the schema of its topic; a failure becomes :class:`Poison`."""
    batch = DecodedBatch()
    for record in records:
        topic = record.topic() or ""
        value = record.value()
        try:
            if topic == bars_topic:
                bar = decode_bar(value, max_bytes)
                batch.bars.append(bar)
                batch.bar_partitions[bar.ticker] = record.partition() or 0
            elif topic == predictions_topic:
                prediction = decode_prediction(value, max_bytes)
                batch.predictions.append(prediction)
                batch.prediction_partitions[prediction.ticker] = record.partition() or 0
            elif topic == closes_topic:
                batch.closes.append((record.partition() or 0, decode_close(value)))
            else:
                # Raised here to join the decoding errors: an unknown topic is poison like the rest.
                raise MessageError("unknown_topic", f"the sink does not read {topic!r}")  # noqa: TRY301
        except MessageError as error:
            batch.poison.append(
                Poison(
                    topic=topic,
                    partition=record.partition() or 0,
                    offset=record.offset() or 0,
                    key=record.key(),
                    value=value,
                    reason=error.reason,
                    detail=error.detail,
                )
            )
    return batch
