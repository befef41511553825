"""The trainer's loop: bars in, a forecast for each fresh bar out at once, training on a worker thread.

Polling thread: poll a micro-batch of bars -> validate -> load MongoDB history for tickers seen for the
first time -> ingest (which also scores the forecasts the new bars settle) -> forecast every ticker with a
fresh bar -> publish -> store offsets. Forecasting first, on arrival, keeps the bar-to-prediction latency
far below the cycle; training never runs here, so a long cold start cannot make this member miss
``max.poll.interval.ms`` and leave its group.

Training thread: every ``download_period_s`` one training cycle (cold start or warm update), then the
walk-forward scores to MongoDB and, every ``checkpoint_interval_s``, a checkpoint. On stop: the worker
finishes its step, the producer is flushed, a last checkpoint and the scores are written, offsets committed.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from contextlib import ExitStack
from typing import Any, NoReturn

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pymongo.database import Database
from pymongo.errors import PyMongoError
from tqdm import tqdm

from services.trainer.checkpoints import CheckpointStore, checkpoint_name, make_store
from services.trainer.forecaster import BarIn, Config, Forecast, Forecaster
from services.trainer.history import recent_bars
from services.trainer.metrics_store import POOLED, write_holdout, write_walk_forward
from services.trainer.model import set_threads
from services.trainer.series import from_minute, to_minute
from shared.kafka import (
    Headers,
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
from shared.mongo import METRICS, database, ensure_indexes, make_client, wait_for_mongodb
from shared.ops import Health, OpsServer
from shared.retry import Backoff
from shared.schemas import BarV1, MessageError, PredictionV1, decode_bar, encode
from shared.settings import Settings

logger = logging.getLogger(__name__)

# Enough to take a whole minute of a 2,000-ticker portfolio in one go; the short timeout keeps the loop
# (signals, producer callbacks) responsive.
POLL_BATCH = 5_000
POLL_TIMEOUT_S = 0.05


class TrainerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages_in = Counter("portfolio_messages_in_total", "Bars consumed", registry=registry)
        self.invalid = Counter(
            "portfolio_messages_invalid_total", "Bars rejected (logged)", ["reason"], registry=registry
        )
        self.published = Counter(
            "portfolio_predictions_published_total", "Predictions produced", ["kind"], registry=registry
        )
        self.training = Histogram(
            "portfolio_training_seconds",
            "Time of one training step",
            ["kind"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.cycle = Histogram(
            "portfolio_cycle_seconds",
            "Time of one training cycle (train, scores, checkpoint)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.latency = Histogram(
            "portfolio_prediction_latency_seconds",
            "From a bar's arrival to its prediction's publication",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5),
            registry=registry,
        )
        self.lag = Gauge("portfolio_consumer_lag", "Bars behind the log end", registry=registry)
        self.mse_ratio = Gauge(
            "portfolio_mse_ratio_to_naive",
            "Walk-forward MSE of the model / MSE of the naive forecast, pooled over tickers (<1 beats naive)",
            registry=registry,
        )
        # "Not yet" until something is scored: NaN, never a 0 that would read as a perfect model.
        self.mse_ratio.set(float("nan"))


def prediction_message(forecast: Forecast, target: str) -> PredictionV1:
    return PredictionV1(
        ticker=forecast.ticker,
        ts=from_minute(forecast.minute),
        yhat=forecast.yhat,
        horizon_min=forecast.minute - forecast.based_on,
        based_on_ts=from_minute(forecast.based_on),
        model_version=forecast.model_version,
        trained_at=forecast.trained_at,
        target=target,
    )


class TrainingWorker(threading.Thread):
    """Runs the training cycles, writes scores and checkpoints; the only thread that changes weights."""

    def __init__(
        self,
        settings: Settings,
        forecaster: Forecaster,
        db: Database[dict[str, Any]],
        store: CheckpointStore,
        metrics: TrainerMetrics,
        stop: StopFlag,
    ) -> None:
        super().__init__(name="trainer-worker", daemon=True)
        self.settings, self.forecaster, self.db, self.store = settings, forecaster, db, store
        self.metrics, self.stop = metrics, stop
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self._saved_version: str | None = None
        self._last_checkpoint = time.monotonic()

    def run(self) -> None:
        try:
            while not self.stop.wait(self.settings.download_period_s):
                self.cycle()
        except BaseException as exc:  # surfaced to run(), which re-raises
            self.error = exc
            logger.exception("training worker failed")
            self.stop.set()
        finally:
            self.finished.set()

    def cycle(self) -> None:
        started = time.perf_counter()
        with ColdStartProgress(self.forecaster, self.settings.max_epochs):
            report = self.forecaster.train_cycle(should_stop=self.stop.is_set)
        cold = report.cold_start
        if cold is not None and cold.fit is not None:
            self.metrics.training.labels("cold").observe(cold.fit.seconds)
        elif report.updated_tickers:
            self.metrics.training.labels("warm").observe(report.seconds)
        if cold is not None:
            s, ar = cold.pooled.summary(), cold.baseline.summary()
            logger.info(
                "hold-out model=%s tickers=%d joined=%s epochs=%s seconds=%.1f mse_ratio=%s dm_p=%s "
                "verdict=%r mae=%s naive_mae=%s direction=%s (n=%s, 95%% CI %s-%s) "
                "ar_mse_ratio=%s ar_dm_p=%s",
                cold.model_version, len(cold.per_ticker), cold.joined, cold.fit.epochs if cold.fit else "-",
                cold.fit.seconds if cold.fit else 0.0, _fmt(s["mse_ratio"]), _fmt(s["dm_p"]), s["verdict"],
                _fmt(s["mae_model"]), _fmt(s["mae_naive"]), _fmt(s["directional_accuracy"]),
                s["directional_n"], _fmt(s["directional_ci_low"]), _fmt(s["directional_ci_high"]),
                _fmt(ar["mse_ratio"]), _fmt(ar["dm_p"]),
            )  # fmt: skip
            self._write(
                lambda: write_holdout(self.db, cold, self.settings.trainer_mode, self.settings.trainer_target)
            )
        self.flush_scores()
        if time.monotonic() - self._last_checkpoint >= self.settings.checkpoint_interval_s:
            self.checkpoint()
        self.metrics.cycle.observe(time.perf_counter() - started)
        logger.info(
            "cycle model=%s updated=%d loss=%s train_s=%.3f tickers=%d",
            report.model_version, report.updated_tickers, _fmt(report.loss), report.seconds,
            len(self.forecaster.series),
        )  # fmt: skip

    def flush_scores(self) -> None:
        forecaster = self.forecaster
        self._write(lambda: write_walk_forward(self.db, forecaster))
        if forecaster.lineage:
            with forecaster.lock:
                pooled = forecaster.walk_forward.pooled(forecaster.lineage).summary()
            if pooled["mse_ratio"] is not None:
                self.metrics.mse_ratio.set(float(pooled["mse_ratio"]))
                logger.info(
                    "walk-forward ticker=%s lineage=%s n=%s coverage=%s mse_ratio=%s dm_p=%s verdict=%r "
                    "mae=%s naive_mae=%s direction=%s",
                    POOLED, forecaster.lineage, pooled["n"], _fmt(pooled["coverage"]),
                    _fmt(pooled["mse_ratio"]), _fmt(pooled["dm_p"]), pooled["verdict"],
                    _fmt(pooled["mae_model"]), _fmt(pooled["mae_naive"]),
                    _fmt(pooled["directional_accuracy"]),
                )  # fmt: skip

    def checkpoint(self) -> None:
        self._last_checkpoint = time.monotonic()
        state = self.forecaster.state()
        if state is None or state["lineage"] + str(state["updates"]) == self._saved_version:
            return
        name = checkpoint_name(self.settings)
        if self._write(lambda: self.store.save(name, state)):
            self._saved_version = state["lineage"] + str(state["updates"])
            logger.info("checkpoint %s saved: model=%s", name, self.forecaster.model_version)

    def _write(self, action: Any) -> bool:
        # A database outage must not stop training or forecasting: the write is retried next cycle.
        try:
            action()
            return True
        except (PyMongoError, OSError) as exc:
            logger.warning("MongoDB write failed (%s: %s); retrying next cycle", type(exc).__name__, exc)
            return False


class ColdStartProgress:
    """A progress bar over cold-start epochs, on a terminal only (logs stay one line per event)."""

    def __init__(self, forecaster: Forecaster, max_epochs: int) -> None:
        self._forecaster = forecaster
        self._max_epochs = max_epochs
        self._bar: tqdm[NoReturn] | None = None

    def __enter__(self) -> ColdStartProgress:
        if sys.stderr.isatty():
            self._forecaster.on_epoch = self._on_epoch
        return self

    def _on_epoch(self, epoch: int, holdout_loss: float) -> None:
        if self._bar is None:
            self._bar = tqdm(total=self._max_epochs, desc="cold training", unit="epoch", leave=False)
        self._bar.update(1)
        self._bar.set_postfix(holdout_loss=f"{holdout_loss:.4g}")

    def __exit__(self, *exc: object) -> None:
        self._forecaster.on_epoch = None
        if self._bar is not None:
            self._bar.close()


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


class Assignment:
    """Which tickers this member owns, learnt from the partitions its bars come from."""

    def __init__(self, forecaster: Forecaster) -> None:
        self.forecaster = forecaster
        self.partition_of: dict[str, int] = {}

    def on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        logger.info("assigned partitions %s", sorted(p.partition for p in partitions))

    def on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        lost = {p.partition for p in partitions}
        tickers = [t for t, p in self.partition_of.items() if p in lost]
        for t in tickers:
            del self.partition_of[t]
        self.forecaster.forget(tickers)
        logger.info("revoked partitions %s: dropped %d tickers", sorted(lost), len(tickers))


def load_history(
    db: Database[dict[str, Any]], forecaster: Forecaster, tickers: list[str], minutes: int
) -> int:
    count = 0
    for ticker, ts, close, rev in recent_bars(db, tickers, minutes):
        forecaster.ingest(ticker, to_minute(ts), close, rev, final=True)
        count += 1
    return count


def run(settings: Settings, stop: StopFlag, *, member: str | None = None) -> None:
    """The service until ``stop``. ``member`` names this replica (Kafka client id, ``trainer`` header on its
    predictions); default host-pid."""
    member = member or f"{socket.gethostname()}-{os.getpid()}"
    threads = set_threads(settings.torch_threads)
    registry = CollectorRegistry()
    metrics = TrainerMetrics(registry)
    health = Health("kafka", "mongodb", "consuming", "training")
    forecaster = Forecaster(Config.from_settings(settings))
    with ExitStack() as stack:
        ops = stack.enter_context(OpsServer(settings.http_host, settings.trainer_http_port, registry, health))
        logger.info("trainer starting: ops port %d, torch threads %d", ops.port, threads)
        if not wait_for_kafka(settings, stop):
            return
        health.set("kafka", True)
        ensure_topics(settings, [settings.bars_topic, settings.predictions_topic])
        mongo = stack.enter_context(make_client(settings))
        if not wait_for_mongodb(mongo, stop):
            return
        health.set("mongodb", True)
        db = database(mongo, settings)
        ensure_indexes(db, (METRICS,))
        store = make_store(settings, db)
        resume(settings, store, forecaster)

        producer = ReliableProducer(settings, client_id=f"portfolio-trainer-{member}")
        consumer = make_consumer(settings, settings.trainer_group_id, client_id=f"portfolio-trainer-{member}")
        # Unwound last-first: the worker ends, predictions are flushed, then offsets committed, then close.
        stack.callback(consumer.close)
        stack.callback(commit_owed, consumer)
        stack.callback(producer.flush, 30.0)
        assignment = Assignment(forecaster)
        subscribe(consumer, [settings.bars_topic], assignment.on_assign, assignment.on_revoke)

        worker = TrainingWorker(settings, forecaster, db, store, metrics, stop)
        worker.start()
        stack.callback(finish_worker, worker)
        health.set("training", True)
        poll_loop(settings, stop, consumer, producer, db, forecaster, assignment, metrics, health, member)
    if worker.error is not None:
        raise worker.error


def resume(settings: Settings, store: CheckpointStore, forecaster: Forecaster) -> None:
    name = checkpoint_name(settings)
    backoff = Backoff(cap=10.0)
    for _ in range(5):
        try:
            state = store.load(name)
            break
        except PyMongoError as exc:
            logger.warning("loading checkpoint %s failed (%s); retrying", name, exc)
            time.sleep(backoff.next_delay())
    else:
        logger.error("checkpoint %s unreadable: starting cold", name)
        return
    if state is not None and forecaster.restore(state):
        logger.info("resumed from checkpoint %s: model=%s, %d scalers", name, forecaster.model_version,
                    len(forecaster.scalers))  # fmt: skip
    else:
        logger.info("no usable checkpoint %s: cold start when history allows", name)


def finish_worker(worker: TrainingWorker) -> None:
    """On the way out: let the worker end its step, then write what is owed (scores, a last checkpoint)."""
    worker.stop.set()
    worker.finished.wait(timeout=120)
    if worker.error is None:
        worker.flush_scores()
        worker.checkpoint()


def commit_owed(consumer: Consumer) -> None:
    try:
        commit_stored(consumer)
    except Exception as exc:  # re-read on restart: at-least-once
        logger.warning("final offset commit failed: %s", exc)


def poll_loop(
    settings: Settings,
    stop: StopFlag,
    consumer: Consumer,
    producer: ReliableProducer,
    db: Database[dict[str, Any]],
    forecaster: Forecaster,
    assignment: Assignment,
    metrics: TrainerMetrics,
    health: Health,
    member: str,
) -> None:
    headers: Headers = [("trainer", member.encode())]
    loaded: set[str] = set(forecaster.tickers())
    history_backoff = Backoff(cap=60.0)
    history_retry_at = 0.0
    next_lag = 0.0
    while not stop.is_set():
        messages: list[Message] = consumer.consume(num_messages=POLL_BATCH, timeout=POLL_TIMEOUT_S)
        arrived = time.perf_counter()
        producer.poll(0)
        health.set("consuming", True)
        if arrived >= next_lag:
            next_lag = arrived + 5.0
            try:
                metrics.lag.set(consumer_lag(consumer, timeout=1.0))
            except Exception as exc:  # a gauge is not worth stopping for
                logger.debug("lag unavailable: %s", exc)
        refresh = forecaster.take_refresh()
        if refresh:
            publish(forecaster.forecast(refresh), settings, producer, metrics, headers)
        if not messages:
            continue
        bars = []
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    logger.warning("consumer error: %s", error)
                continue
            metrics.messages_in.inc()
            try:
                bar = decode_bar(msg.value(), settings.max_message_bytes)
            except MessageError as exc:
                # The sink routes poison to the DLQ; here it is only skipped (and counted, and logged).
                metrics.invalid.labels(exc.reason).inc()
                logger.warning(
                    "skipped bar at %s[%s]@%s: %s", msg.topic(), msg.partition(), msg.offset(), exc
                )
                continue
            assignment.partition_of[bar.ticker] = msg.partition() or 0
            bars.append(bar)

        new = sorted({b.ticker for b in bars} - loaded)
        if new and arrived >= history_retry_at:
            try:
                count = load_history(db, forecaster, new, settings.history_minutes)
                loaded.update(new)
                history_backoff.reset()
                logger.info("loaded %d stored bars for %d new tickers", count, len(new))
            except PyMongoError as exc:
                history_retry_at = arrived + history_backoff.next_delay()
                logger.warning("history for %d tickers not loaded (%s); retrying later", len(new), exc)

        # Every bar is forecast (a backlog too), batched across tickers: the backtest's own call.
        forecasts = forecaster.step([bar_in(bar) for bar in bars])
        publish(forecasts, settings, producer, metrics, headers)
        published = time.perf_counter()
        for _ in forecasts:
            metrics.latency.observe(published - arrived)
        producer.poll(0)
        store_offsets(consumer, [m for m in messages if not m.error()])


def bar_in(bar: BarV1) -> BarIn:
    return BarIn(bar.ticker, to_minute(bar.ts), bar.close, bar.rev, bar.final, bar.open, bar.high, bar.low,
                 bar.volume)  # fmt: skip


def publish(
    forecasts: list[Forecast],
    settings: Settings,
    producer: ReliableProducer,
    metrics: TrainerMetrics,
    headers: Headers,
) -> None:
    for fc in forecasts:
        message = prediction_message(fc, settings.trainer_target)
        producer.produce(settings.predictions_topic, encode(message), key=fc.ticker, headers=headers)
        metrics.published.labels("naive" if fc.model_version.startswith("naive") else "model").inc()
