"""The trainer's loop: bars in, a forecast for each fresh bar out at once, training on a worker thread.

Start: the checkpoint, with the series it carries and the bars stored after them (``restart.py``).
Polling thread: poll a micro-batch of bars -> validate -> load MongoDB history for tickers seen for the
first time -> ingest (with the portfolio's value) -> forecast every ticker with a fresh bar -> publish ->
score the forecasts the new bars settled -> store offsets. Forecasting first keeps the bar-to-prediction
latency far below the cycle; training never runs here, so a long cold start cannot make this member miss
``max.poll.interval.ms`` and leave its group.

Training thread: every ``download_period_s`` one training cycle (cold start or warm update), giving way
to the minutes being served (``serving/gate.py``), then the walk-forward scores and, every
``checkpoint_interval_s``, a checkpoint. On stop: the worker finishes its step, the producer is flushed, a
last checkpoint and the scores are written, offsets committed."""

from __future__ import annotations

import logging
import os
import socket
import time
from contextlib import ExitStack
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message
from prometheus_client import CollectorRegistry
from pymongo.database import Database
from pymongo.errors import PyMongoError

from services.scoring.score import NAIVE_PREFIX
from services.trainer.assignment import Assignment
from services.trainer.forecaster.core import Forecaster
from services.trainer.forecaster.portfolio_value import live_portfolio, with_portfolio
from services.trainer.forecaster.records import Config, Forecast
from services.trainer.messages import PredictionEncoder, bar_in
from services.trainer.metrics import TrainerMetrics, observe_many
from services.trainer.model.network import set_threads
from services.trainer.restart import catch_up, load_history, resume
from services.trainer.serving.gate import ServingGate
from services.trainer.stores.checkpoints import make_store
from services.trainer.worker import TrainingWorker, finish_worker
from shared import heap
from shared.kafka import (
    Headers,
    ReliableProducer,
    commit_stored,
    consumer_lag,
    ensure_topics,
    make_consumer,
    store_offsets,
    subscribe,
    take_arrived,
    wait_for_kafka,
)
from shared.lifecycle import StopFlag
from shared.mongo import METRICS, database, ensure_indexes, make_client, wait_for_mongodb
from shared.ops import Health, OpsServer
from shared.retry import Backoff
from shared.schemas import BarV1, MessageError, decode_bar
from shared.settings import Settings

logger = logging.getLogger(__name__)

# Enough to take a whole minute of a 2,000-ticker portfolio in one go; the short timeout keeps the loop
# (signals, producer callbacks) responsive.
POLL_BATCH = 5_000
POLL_TIMEOUT_S = 0.05
# How long a poll goes on taking bars after the last came, unless every partition has given some
# (shared.kafka.take_arrived): a minute's bars come in fetches a few milliseconds apart, and forecasting
# them in one batch beats two batches one after the other.
GATHER_S = 0.003
# Tickers a cold start made forecastable, forecast again a chunk a poll: all 500 at once took ~60 ms, and a
# minute's bars arriving meanwhile waited for it (issue 18).
REFRESH_CHUNK = 64
# Predictions leave at once: the shared producer's 20 ms linger (batching for throughput) would be added to
# every forecast's latency, and a minute's forecasts are produced together anyway, so they batch by
# themselves (issue 12: p99 bar -> prediction <= 50 ms).
PREDICTION_LINGER_MS = 1


def run(settings: Settings, stop: StopFlag, *, member: str | None = None) -> None:
    """The service until ``stop``. ``member`` names this replica (Kafka client id, ``trainer`` header on its
    predictions); default host-pid."""
    member = member or f"{socket.gethostname()}-{os.getpid()}"
    threads = set_threads(settings.trainer.torch_threads)
    registry = CollectorRegistry()
    metrics = TrainerMetrics(registry)
    health = Health("kafka", "mongodb", "consuming", "training")
    forecaster = Forecaster(Config.from_settings(settings))
    forecaster.portfolio_value = live_portfolio(settings)
    with ExitStack() as stack:
        ops = stack.enter_context(
            OpsServer(settings.common.http_host, settings.trainer.http_port, registry, health)
        )
        logger.info("trainer starting: ops port %d, torch threads %d", ops.port, threads)
        if not wait_for_kafka(settings, stop):
            return
        health.set("kafka", True)
        ensure_topics(settings, [settings.kafka.bars_topic, settings.kafka.predictions_topic])
        mongo = stack.enter_context(make_client(settings))
        if not wait_for_mongodb(mongo, stop):
            return
        health.set("mongodb", True)
        db = database(mongo, settings)
        ensure_indexes(db, (METRICS,))
        store = make_store(settings, db)
        reached = resume(settings, store, forecaster)
        if reached is not None:
            catch_up(db, forecaster, reached)

        linger = {"linger.ms": PREDICTION_LINGER_MS}
        producer = ReliableProducer(settings, client_id=f"portfolio-trainer-{member}", config=linger)
        consumer = make_consumer(settings, settings.trainer.group_id, client_id=f"portfolio-trainer-{member}")
        # Unwound last-first: the worker ends, predictions are flushed, then offsets committed, then close.
        stack.callback(consumer.close)
        stack.callback(commit_owed, consumer)
        stack.callback(producer.flush, 30.0)
        assignment = Assignment(forecaster)
        subscribe(consumer, [settings.kafka.bars_topic], assignment.on_assign, assignment.on_revoke)

        gate = ServingGate()
        forecaster.pause = gate.give_way
        worker = TrainingWorker(settings, forecaster, db, store, metrics, stop, gate)
        worker.start()
        stack.callback(finish_worker, worker)
        health.set("training", True)
        heap.settle()  # torch and the rest imported, the checkpoint loaded: see shared/heap.py
        heap.defer_full_collections()  # later ones in the quiet after a minute (serving/gate.py)
        TrainerLoop(
            settings, consumer, producer, db, forecaster, assignment, metrics, health, member, gate=gate
        ).run(stop)
    if worker.error is not None:
        raise worker.error


def commit_owed(consumer: Consumer) -> None:
    try:
        commit_stored(consumer)
    except Exception as exc:  # noqa: BLE001 (re-read on restart: at-least-once)
        logger.warning("final offset commit failed: %s", exc)


class TrainerLoop:
    """The polling thread: poll -> validate -> history for new tickers -> step (ingest, forecast every bar)
    -> publish -> score what the bars settled -> store offsets; a refresh (tickers a cold start just made
    forecastable) first."""

    def __init__(
        self,
        settings: Settings,
        consumer: Consumer,
        producer: ReliableProducer,
        db: Database[dict[str, Any]],
        forecaster: Forecaster,
        assignment: Assignment,
        metrics: TrainerMetrics,
        health: Health,
        member: str,
        gate: ServingGate | None = None,
    ) -> None:
        self.settings, self.consumer, self.producer, self.db = settings, consumer, producer, db
        self.forecaster, self.assignment, self.metrics, self.health = forecaster, assignment, metrics, health
        self.headers: Headers = [("trainer", member.encode())]
        self.loaded: set[str] = set(forecaster.tickers())
        self.history_backoff = Backoff(cap=60.0)
        self.history_retry_at = 0.0
        self.next_lag = 0.0
        # Told when a minute is being served and when it is over (the training thread gives way to it).
        self.gate = gate or ServingGate()

    def run(self, stop: StopFlag) -> None:
        while not stop.is_set():
            self.poll_once()
        self.gate.quiet()  # no more minutes: the last scores and checkpoint are written without waiting

    def poll_once(self) -> None:
        messages = self.take()
        arrived = time.perf_counter()
        refresh = self.forecaster.take_refresh(REFRESH_CHUNK)
        if messages or refresh:
            self.gate.serving()
        self.producer.poll(0)
        self.health.set("consuming", True)
        self.update_lag(arrived)
        if refresh:
            self.publish(self.forecaster.forecast(refresh))
        if not messages:
            self.publish_waited()
            self.gate.quiet()
            return
        bars = self.decode(messages)
        self.load_history(sorted({b.ticker for b in bars} - self.loaded), arrived)
        # Every bar is forecast (a backlog too), batched across tickers (the backtest's call), scored after;
        # the portfolio's bars go in where they became ready, under the checkpoint's lock (none half-built).
        with heap.collections_after():  # the minute's garbage is collected once it is published
            taken = [bar_in(bar) for bar in bars]
            with self.forecaster.lock:
                mixed = with_portfolio(self.forecaster.portfolio_value, taken, time.monotonic())
                forecasts = self.forecaster.step(mixed, score=False)
            self.publish(forecasts)
        seconds = time.perf_counter() - arrived
        observe_many(self.metrics.latency, seconds, len(forecasts))
        logger.debug("poll: %d messages -> %d forecasts published in %.1f ms", len(messages), len(forecasts),
                     1000 * seconds)  # fmt: skip
        self.producer.poll(0)
        self.forecaster.score_settled()
        store_offsets(self.consumer, [m for m in messages if not m.error()])

    def publish_waited(self) -> None:
        """The portfolio's bars whose wait ran out, forecast and published: asked on a poll that brought
        nothing, so a backlog's unevenly read partitions never count as a silent ticker."""
        value = self.forecaster.portfolio_value
        if value is None or not value.open:
            return
        with self.forecaster.lock:
            waited = value.due(time.monotonic())
            forecasts = self.forecaster.step(waited, score=False) if waited else []
        if forecasts:
            self.publish(forecasts)

    def take(self) -> list[Message]:
        complete = self.assignment.every_partition
        return take_arrived(self.consumer, POLL_BATCH, POLL_TIMEOUT_S, GATHER_S, complete=complete)

    def update_lag(self, now: float) -> None:
        if now < self.next_lag:
            return
        self.next_lag = now + 5.0
        try:
            # Cached watermarks: asking the broker per partition on the polling thread every 5 s stalled a
            # whole minute's forecasts 0.6-1.6 s on a loaded broker (issue 12 bench).
            self.metrics.lag.set(consumer_lag(self.consumer, cached=True))
        except Exception as exc:  # noqa: BLE001 (a gauge is not worth stopping for)
            logger.debug("lag unavailable: %s", exc)

    def decode(self, messages: list[Message]) -> list[BarV1]:
        bars = []
        consumed = 0
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    logger.warning("consumer error: %s", error)
                continue
            consumed += 1
            try:
                bar = decode_bar(msg.value(), self.settings.kafka.max_message_bytes)
            except MessageError as exc:
                # The sink routes poison to the DLQ; here it is only skipped (and counted, and logged).
                self.metrics.invalid.labels(exc.reason).inc()
                logger.warning(
                    "skipped bar at %s[%s]@%s: %s", msg.topic(), msg.partition(), msg.offset(), exc
                )
                continue
            self.assignment.partition_of[bar.ticker] = msg.partition() or 0
            bars.append(bar)
        self.metrics.messages_in.inc(consumed)  # once a poll, not per message (a lock each)
        return bars

    def load_history(self, new: list[str], now: float) -> None:
        if not new or now < self.history_retry_at:
            return
        try:
            count = load_history(self.db, self.forecaster, new, self.settings.trainer.history)
            self.loaded.update(new)
            self.history_backoff.reset()
            logger.info("loaded %d stored bars for %d new tickers", count, len(new))
        except PyMongoError as exc:
            self.history_retry_at = now + self.history_backoff.next_delay()
            logger.warning("history for %d tickers not loaded (%s); retrying later", len(new), exc)

    def publish(self, forecasts: list[Forecast]) -> None:
        topic = self.settings.kafka.predictions_topic
        # One encoder per call: it checks and formats the poll's shared minutes and versions once (issue 18).
        encoder = PredictionEncoder(self.settings.trainer.target)
        self.producer.produce_many(topic, ((encoder.encode(fc), fc.ticker) for fc in forecasts), self.headers)
        naive = sum(fc.model_version.startswith(NAIVE_PREFIX) for fc in forecasts)
        # Counted once per kind, not per message (a labelled counter's lookup is not free at 2,000 a minute).
        if naive:
            self.metrics.published.labels("naive").inc(naive)
        if len(forecasts) > naive:
            self.metrics.published.labels("model").inc(len(forecasts) - naive)
