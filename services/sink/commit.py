"""Committing a written batch: its offsets, and with poison its dead letters in the same transaction.

Only the records of partitions this member still owns count (``Flight.keeps``): a partition revoked or
lost meanwhile is read again by its new owner, so nothing of it is committed or dead-lettered here.
"""

from __future__ import annotations

from confluent_kafka import Consumer

from services.sink.dlq import DeadLetters
from services.sink.flight import Flight
from shared.kafka import commit_stored, next_offsets, store_offsets


def commit_batch(consumer: Consumer, dead_letters: DeadLetters, flight: Flight) -> None:
    """Store the batch's offsets (auto-commit sends them); with poison, dead-letter it and commit its
    offsets in one transaction. Raises ``KafkaException`` when the broker did not take it: retry it."""
    records = [r for r in flight.records if flight.keeps(r.topic(), r.partition())]
    poison = [p for p in flight.poison if flight.keeps(p.topic, p.partition)]
    if poison:
        # Earlier batches first: auto-commit must never move the group back behind this one.
        commit_stored(consumer)
        dead_letters.send(poison, next_offsets(records), consumer.consumer_group_metadata())
    store_offsets(consumer, records)
