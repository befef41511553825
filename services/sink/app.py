"""The sink loop: poll -> validate -> write -> dead-letter and commit, one batch at a time; a sweep of the
owned partitions rides along regularly, and everything in progress settles at a stop (``settling.py``).

A batch is written before its offsets are committed, so a crash replays only idempotent writes. While a
batch is written (on a worker thread, ``worker.py``) the loop pauses its partitions and keeps polling, so a
slow or absent database never costs the group membership, and lag, ``/healthz`` and ``/metrics`` stay
truthful. Poison goes to the dead-letter topic in one transaction with the batch's offsets (``dlq.py``).
The write delivers the closes of the bars it settles before ``latest`` forgets them (``close_delivery.py``),
so before any offset is stored. The closes topic is read and decoded like bars and predictions.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from contextlib import ExitStack

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from pymongo.errors import PyMongoError

from services.sink.close_delivery import CloseDelivery
from services.sink.commit import commit_batch
from services.sink.dlq import DeadLetters
from services.sink.flight import Flight, Item, Written, after, decode_flight, record_batch, refused_poison
from services.sink.in_hand import InHand
from services.sink.isolation import Isolated, Stopped
from services.sink.metrics import SinkMetrics
from services.sink.portfolio import closes_topic
from services.sink.repository import SinkRepository
from services.sink.settling import SweepClock, settle_on_stop
from services.sink.startup import connect
from services.sink.worker import BatchWriter, Sweep
from shared.kafka import (
    ReliableProducer,
    authentication_error,
    commit_stored,
    consumer_lag,
    make_consumer,
    subscribe,
)
from shared.lifecycle import StopFlag
from shared.mongo import ErrorKind, classify_error
from shared.mongo import authentication_error as mongo_auth_error
from shared.ops import Health, OpsServer
from shared.retry import retry
from shared.settings import Settings

logger = logging.getLogger(__name__)

LAG_REFRESH_S = 5.0
# Left of PORTFOLIO_STOP_TIMEOUT_S after giving up on a write: to close the consumer and the clients.
CLOSE_MARGIN_S = 5.0


class SinkLoop:
    """Holds the messages in hand between polls and writes them as one batch."""

    def __init__(
        self,
        settings: Settings,
        consumer: Consumer,
        repository: SinkRepository,
        delivery: CloseDelivery,
        dead_letters: DeadLetters,
        metrics: SinkMetrics,
        health: Health,
        stop: StopFlag,
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.repository = repository
        self.writer = BatchWriter(repository, delivery, stop, self._on_outage, self._reachable)
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.health = health
        self.stop = stop
        self.in_hand = InHand(settings.sink.batch_max, settings.sink.batch_ms)
        self.sweeps = SweepClock(settings)
        self.flight: Flight | None = None
        self._stop_seen_at: float | None = None
        self._next_lag_refresh = 0.0

    def run(self) -> None:
        while not self.stop.is_set():
            self.poll()
            if self.in_hand.due() or self.sweeps.due():
                self.write_in_hand()
            self.tend()
        logger.info("stopping: writing %d messages in hand, settling what is in progress", len(self.in_hand))
        if settle_on_stop(self._poll_count, self.write_in_hand, self._past_stop_bound):
            self._commit()

    def poll(self, timeout: float | None = None) -> None:
        """Take what the broker has into hand (nothing from paused partitions); serve rebalances."""
        self._poll_count(self.in_hand.poll_timeout() if timeout is None else timeout)

    def _poll_count(self, timeout: float) -> int:
        taken = 0
        for msg in self.consumer.consume(num_messages=self.in_hand.room, timeout=timeout):
            error = msg.error()
            if error is not None:
                self._on_kafka_error(error)
                continue
            self.in_hand.add(msg)
            taken += 1
            self.metrics.messages_in.labels(msg.topic() or "").inc()
            self.health.set("kafka", True)
        return taken

    def write_in_hand(self, settle_all: bool = False) -> bool:
        """Write the batch in hand (its closes delivered), with a sweep when one is due; commit it with its
        dead letters. False if stopped first."""
        sweep = self.sweeps.take(self.consumer.assignment(), settle_all)
        if not self.in_hand and sweep is None:
            return True
        flight, items = decode_flight(self.in_hand.take(), self.settings)
        outcome = self._write(flight, items, sweep)
        if outcome is None:
            return False
        flight.poison += [refused_poison(record, error) for (record, _message), error in outcome.poison]
        if not self._commit_written(flight):
            return False
        if flight.records or any(any(r.documents_written.values()) for r in outcome.results):
            record_batch(self.metrics, flight, outcome)
        return True

    def _write(
        self, flight: Flight, items: list[Item], sweep: Sweep | None
    ) -> Isolated[Item, Written] | None:
        """Write on a worker thread while this one keeps polling with the partitions paused."""
        self.writer.start(flight, items, sweep, caught_up=len(flight.records) < self.settings.sink.batch_max)
        try:
            finished = self._keep_polling_paused(flight, flight.done.is_set)
        finally:
            self.metrics.write_in_flight_seconds.set(0)
            self.health.set("writes", True)
        if not finished or isinstance(flight.error, Stopped):
            logger.warning("stopping with a batch of %d unwritten; it is read again", len(flight.records))
            return None
        if flight.error is not None:
            if classify_error(flight.error) is ErrorKind.AUTH:
                raise mongo_auth_error(flight.error) from None
            raise flight.error
        self.health.set("mongodb", True)
        return flight.outcome

    def _commit_written(self, flight: Flight) -> bool:
        """Commit the written batch (``commit.py``), retried through broker outages while the loop keeps
        polling. False if stopped first: nothing committed."""

        def refused(exc: BaseException) -> BaseException | None:
            return authentication_error(exc.args[0]) if isinstance(exc, KafkaException) else None

        committed = retry(
            f"committing a batch with {len(flight.poison)} dead letters",
            lambda: commit_batch(self.consumer, self.dead_letters, flight),
            retry_on=(KafkaException,),
            # While stopping too, within the stop bound: what a stop settles is committed.
            stop=self._past_stop_bound,
            wait=lambda delay: self._keep_polling_paused(flight, after(delay)),
            fatal=refused,
        )
        if not committed.ok:
            logger.warning("stopping with the batch uncommitted; it will be read again")
        return committed.ok

    def _past_stop_bound(self) -> bool:
        """Stopping, and out of time to finish (``PORTFOLIO_STOP_TIMEOUT_S`` less the close margin)."""
        if not self.stop.is_set():
            return False
        self._stop_seen_at = self._stop_seen_at or time.monotonic()
        return time.monotonic() - self._stop_seen_at > self.settings.common.stop_timeout_s - CLOSE_MARGIN_S

    def _keep_polling_paused(self, flight: Flight, done: Callable[[], bool]) -> bool:
        """Poll with every partition paused until ``done()`` (see :meth:`_keep_polling_until`); a rebalance
        meanwhile excludes partitions from ``flight``. The partitions are resumed however it ends: a
        commit retry once left them paused, and the sink read nothing more after a broker restart."""
        self.flight = flight
        self.consumer.pause(self.consumer.assignment())
        try:
            return self._keep_polling_until(done)
        finally:
            self.flight = None
            self.consumer.resume(self.consumer.assignment())

    def _keep_polling_until(self, done: Callable[[], bool]) -> bool:
        """Poll (paused) and keep health and lag current until ``done()``; False when stopped and out of
        time (``PORTFOLIO_STOP_TIMEOUT_S``)."""
        while not done():
            if self._past_stop_bound():
                return False
            self.poll(timeout=0.2)
            # Partitions assigned meanwhile arrive unpaused; pausing is idempotent.
            self.consumer.pause(self.consumer.assignment())
            self.tend()
        return True

    def tend(self) -> None:
        flight = self.flight
        if flight is not None:
            age = time.monotonic() - flight.started
            self.metrics.write_in_flight_seconds.set(age)
            self.health.set("writes", age <= self.settings.sink.write_stall_s)
        if time.monotonic() >= self._next_lag_refresh:
            unprocessed = self.in_hand.messages + (flight.records if flight else [])
            try:
                # Cached: a round trip per partition stalled the loop for seconds (past the settle bound).
                self.metrics.consumer_lag.set(consumer_lag(self.consumer, unprocessed, cached=True))
            except KafkaException as exc:
                logger.debug("lag not refreshed: %s", exc)
            self._next_lag_refresh = time.monotonic() + LAG_REFRESH_S

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Before partitions go to another member: commit what was written, give up the rest."""
        logger.info("partitions revoked: %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        self._drop(partitions)
        self._commit()

    def on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions already owned by another member: nothing of theirs may be committed any more."""
        logger.warning("partitions lost: %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        self._drop(partitions)

    def _drop(self, partitions: list[TopicPartition]) -> None:
        gone = {(p.topic, p.partition) for p in partitions}
        # Never written: the new owner reads them again. A batch being written keeps going (its writes
        # are idempotent) but commits and dead-letters nothing of these partitions.
        self.in_hand.drop(gone)
        if self.flight is not None:
            self.flight.excluded |= gone
        for topic, partition in gone & {(t, p) for t, p in gone if t in self.sweeps.kinds}:
            self.repository.forget(self.sweeps.kinds[topic], [partition])  # their late items are its own

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
        refused = authentication_error(error)
        if refused:
            raise refused
        if error.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            self.health.set("kafka", False)
        logger.warning("Kafka: %s", error.str())

    def _reachable(self) -> bool:
        try:
            self.repository.ping()
            return True
        except PyMongoError:
            return False

    def _on_outage(self, error: Exception) -> None:
        self.health.set("mongodb", False)
        self.metrics.write_failures.inc()


def run(settings: Settings, stop: StopFlag) -> None:
    """Run the sink until ``stop`` is set; on the way out write what is in hand, settle what is in progress
    and commit it."""
    metrics = SinkMetrics()
    health = Health("kafka", "mongodb", "writes")
    health.set("writes", True)
    client_id = f"portfolio-sink-{socket.gethostname()}-{os.getpid()}"
    topics = [
        settings.kafka.bars_topic,
        settings.kafka.predictions_topic,
        closes_topic(settings.kafka.bars_topic),
    ]
    with ExitStack() as stack:
        stack.enter_context(
            OpsServer(settings.common.http_host, settings.sink.http_port, metrics.registry, health)
        )
        ready = connect(settings, topics, client_id, stack, stop)
        if ready is None:
            return
        db, dead_letters = ready
        closes = ReliableProducer(settings, client_id=f"{client_id}-closes")
        stack.callback(closes.flush, 1.0)
        delivery = CloseDelivery(closes, closes_topic(settings.kafka.bars_topic), stop)
        health.set("mongodb", True)
        consumer = make_consumer(settings, settings.sink.group_id, client_id=client_id)
        # close() leaves the group at once, so the partitions move to the other sinks without a timeout.
        stack.callback(consumer.close)
        repository = SinkRepository(db, delivery.deliver, settle_s=settings.sink.settle_s)
        loop = SinkLoop(settings, consumer, repository, delivery, dead_letters, metrics, health, stop)
        subscribe(consumer, topics, on_assign=loop.on_assign, on_revoke=loop.on_revoke, on_lost=loop.on_lost)
        logger.info("consuming %s in group %s into %s", topics, settings.sink.group_id, settings.mongo.db)
        loop.run()
    logger.info("sink stopped")
