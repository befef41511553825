"""The sink loop: poll -> validate -> write -> commit, one batch at a time.

A batch is written to MongoDB (and its poison delivered to the dead-letter topic) before its offsets are
stored, so a crash at any point replays only messages whose writes are idempotent.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from contextlib import ExitStack

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from pymongo.errors import PyMongoError

from services.sink.batch import decode_batch
from services.sink.dlq import dlq_headers, dlq_value
from services.sink.metrics import SinkMetrics
from services.sink.portfolio import closes_topic
from services.sink.repository import SinkRepository
from shared.kafka import (
    ReliableProducer,
    commit_stored,
    consumer_lag,
    ensure_topics,
    make_consumer,
    store_offsets,
    subscribe,
    wait_for_kafka,
)
from shared.lifecycle import StopFlag
from shared.mongo import database, ensure_indexes, make_client, wait_for_mongodb
from shared.ops import Health, OpsServer
from shared.retry import Backoff
from shared.settings import Settings

logger = logging.getLogger(__name__)

LAG_REFRESH_S = 5.0
# Poison must reach the dead-letter topic before its offset is committed; while Kafka is away we wait.
DLQ_FLUSH_S = 10.0


class SinkLoop:
    """Holds the messages in hand between polls and writes them as one batch."""

    def __init__(
        self,
        settings: Settings,
        consumer: Consumer,
        repository: SinkRepository,
        dlq: ReliableProducer,
        metrics: SinkMetrics,
        health: Health,
        stop: StopFlag,
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.repository = repository
        self.dlq = dlq
        self.metrics = metrics
        self.health = health
        self.stop = stop
        self.in_hand: list[Message] = []
        self.first_in_hand_at = 0.0

    def run(self) -> None:
        next_lag_refresh = 0.0
        while not self.stop.is_set():
            room = self.settings.sink_batch_max - len(self.in_hand)
            for msg in self.consumer.consume(num_messages=max(room, 1), timeout=self._poll_timeout()):
                error = msg.error()
                if error is not None:
                    self._on_kafka_error(error)
                    continue
                if not self.in_hand:
                    self.first_in_hand_at = time.monotonic()
                self.in_hand.append(msg)
                self.metrics.messages_in.labels(msg.topic() or "").inc()
                self.health.set("kafka", True)
            if self._batch_due():
                self.write_in_hand()
            self.dlq.poll(0)
            if time.monotonic() >= next_lag_refresh:
                self._refresh_lag()
                next_lag_refresh = time.monotonic() + LAG_REFRESH_S
        logger.info("stopping: writing %d messages in hand", len(self.in_hand))
        if self.write_in_hand():
            self._commit()

    def _poll_timeout(self) -> float:
        if not self.in_hand:
            return 1.0  # short enough that a stop signal is seen within a second
        age = time.monotonic() - self.first_in_hand_at
        return max(0.0, min(1.0, self.settings.sink_batch_ms / 1000 - age))

    def _batch_due(self) -> bool:
        if not self.in_hand:
            return False
        if len(self.in_hand) >= self.settings.sink_batch_max:
            return True
        return (time.monotonic() - self.first_in_hand_at) * 1000 >= self.settings.sink_batch_ms

    def write_in_hand(self) -> bool:
        """Write the batch in hand, then store its offsets. False if stopped before it was written."""
        if not self.in_hand:
            return True
        records = self.in_hand
        started = time.monotonic()
        batch = decode_batch(
            records,
            bars_topic=self.settings.bars_topic,
            predictions_topic=self.settings.predictions_topic,
            max_bytes=self.settings.max_message_bytes,
            closes_topic=closes_topic(self.settings.bars_topic),
        )
        for poison in batch.poison:
            logger.warning(
                "dead-letter reason=%s topic=%s partition=%d offset=%d detail=%s",
                poison.reason,
                poison.topic,
                poison.partition,
                poison.offset,
                poison.detail[:300],
            )
            self.dlq.produce(
                self.settings.dlq_topic, dlq_value(poison), key=poison.key, headers=dlq_headers(poison)
            )
        outcome = self.repository.write_until_done(batch, self.stop, on_failure=self._on_write_failure)
        if outcome is None:
            return False
        self.health.set("mongodb", True)
        while self.dlq.flush(DLQ_FLUSH_S):
            if self.stop.is_set():
                logger.warning(
                    "stopping with dead-letter messages undelivered; their batch will be read again"
                )
                return False
        store_offsets(self.consumer, records)
        self.in_hand = []

        elapsed = time.monotonic() - started
        self.metrics.write_batch_seconds.observe(elapsed)
        for collection, count in outcome.documents_written.items():
            self.metrics.documents_written.labels(collection).inc(count)
        for poison in batch.poison:
            self.metrics.dlq_messages.labels(poison.reason).inc()
        self.metrics.revisions_ignored.inc(outcome.revisions_ignored)
        logger.info(
            "wrote batch messages=%d bars_inserted=%d bars_updated=%d bars_replayed=%d bars_in_progress=%d "
            "revisions_ignored=%d portfolio_rows=%d predictions=%d dead_letters=%d seconds=%.3f",
            len(records),
            outcome.bars_inserted,
            outcome.bars_updated,
            outcome.bars_replayed,
            outcome.bars_in_progress,
            outcome.revisions_ignored,
            outcome.portfolio_rows,
            outcome.predictions_written,
            len(batch.poison),
            elapsed,
        )
        return True

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Before partitions go to another member: write what is in hand and commit it."""
        logger.info("partitions revoked: %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        if self.write_in_hand():
            self._commit()
            return
        # Stopped before the write: let the new owner read the revoked partitions' messages again.
        revoked = {(p.topic, p.partition) for p in partitions}
        self.in_hand = [m for m in self.in_hand if (m.topic(), m.partition()) not in revoked]

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        logger.info("partitions assigned: %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        self.health.set("kafka", True)

    def _commit(self) -> None:
        try:
            commit_stored(self.consumer)
        except KafkaException as exc:
            # Lost partitions or a broker away: uncommitted batches are replayed, and replays are harmless.
            logger.warning("commit failed (%s); the last batches may be read again", exc)

    def _on_kafka_error(self, error: KafkaError) -> None:
        if error.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            self.health.set("kafka", False)
        logger.warning("Kafka: %s", error.str())

    def _on_write_failure(self, error: Exception) -> None:
        self.health.set("mongodb", False)
        self.metrics.write_failures.inc()

    def _refresh_lag(self) -> None:
        try:
            self.metrics.consumer_lag.set(consumer_lag(self.consumer))
        except KafkaException as exc:
            logger.debug("lag not refreshed: %s", exc)


def _retry_until_done(what: str, action: Callable[[], object], stop: StopFlag) -> bool:
    backoff = Backoff(base=0.5, cap=10.0)
    while not stop.is_set():
        try:
            action()
            return True
        except (KafkaException, PyMongoError) as exc:
            delay = backoff.next_delay()
            logger.warning("%s failed (%s); retrying in %.1f s", what, exc, delay)
            stop.wait(delay)
    return False


def run(settings: Settings, stop: StopFlag) -> None:
    """Run the sink until ``stop`` is set; on the way out write what is in hand and commit it."""
    metrics = SinkMetrics()
    health = Health("kafka", "mongodb")
    client_id = f"portfolio-sink-{socket.gethostname()}-{os.getpid()}"
    topics = [settings.bars_topic, settings.predictions_topic, closes_topic(settings.bars_topic)]
    with ExitStack() as stack:
        stack.enter_context(OpsServer(settings.http_host, settings.sink_http_port, metrics.registry, health))
        if not wait_for_kafka(settings, stop):
            return
        if not _retry_until_done(
            "creating topics", lambda: ensure_topics(settings, [*settings.topics(), topics[-1]]), stop
        ):
            return
        client = stack.enter_context(make_client(settings))
        if not wait_for_mongodb(client, stop):
            return
        db = database(client, settings)
        if not _retry_until_done("creating indexes", lambda: ensure_indexes(db), stop):
            return
        health.set("mongodb", True)

        dlq = ReliableProducer(settings, client_id=f"{client_id}-dlq")
        stack.callback(dlq.flush, DLQ_FLUSH_S)
        consumer = make_consumer(settings, settings.sink_group_id, client_id=client_id)
        # close() leaves the group at once, so the partitions move to the other sinks without a timeout.
        stack.callback(consumer.close)
        publish = lambda key, value: dlq.produce(topics[-1], value, key=key)  # noqa: E731
        loop = SinkLoop(settings, consumer, SinkRepository(db, publish), dlq, metrics, health, stop)
        subscribe(consumer, topics, on_assign=loop.on_assign, on_revoke=loop.on_revoke)
        logger.info(
            "consuming %s in group %s into database %s", topics, settings.sink_group_id, settings.mongodb_db
        )
        loop.run()
    logger.info("sink stopped")
