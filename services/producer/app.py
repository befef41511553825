"""The producer loop: backfill, then every ``download_period_s`` fetch -> validate -> detect new and
revised bars -> publish, one log line per cycle. SIGTERM/SIGINT end it after the cycle in hand, with
every produced bar flushed."""

from __future__ import annotations

import logging
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime

from confluent_kafka import KafkaError
from tqdm import tqdm

from services.producer.cycle import Prepared, prepare
from services.producer.metrics import ProducerMetrics
from services.producer.revisions import RevisionTracker, restart_safe_rev_base
from services.producer.sources import Fetch, FetchError, Source, make_source
from services.producer.sources.synthetic import floor_minute
from shared.kafka import ReliableProducer, ensure_topics, wait_for_kafka
from shared.lifecycle import StopFlag
from shared.ops import Health, OpsServer
from shared.retry import Backoff, retry
from shared.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

# Invalid rows logged one by one per cycle; the rest are counted (a broken feed must not flood the log).
MAX_INVALID_LOGGED = 10
# Seconds to wait on SIGTERM for the brokers to confirm what was produced.
FLUSH_TIMEOUT_S = 30.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def run(settings: Settings, stop: StopFlag, *, source: Source | None = None) -> None:
    """Run the producer until ``stop`` is set. ``source`` replaces the one the settings choose (tests)."""
    tickers = settings.shard_tickers()
    if not tickers:
        raise SettingsError(
            f"shard (PORTFOLIO_SHARD): slice {settings.producer.shard} of {len(settings.common.tickers)}"
            " tickers is empty"
        )
    source = source or make_source(settings, tickers)
    metrics = ProducerMetrics()
    health = Health("kafka", "last_cycle")
    logger.info(
        "producer for %d tickers (shard %s) from %s", len(tickers), settings.producer.shard, source.name
    )

    with ExitStack() as resources:
        resources.enter_context(
            OpsServer(settings.common.http_host, settings.producer.http_port, metrics.registry, health)
        )
        if not wait_for_kafka(settings, stop):
            return
        _ensure_topic(settings, stop)
        producer = ReliableProducer(
            settings,
            client_id=f"portfolio-producer-{settings.producer.shard.replace('/', 'of')}",
            on_delivered=lambda n: _on_delivered(n, metrics, health),
            config={"error_cb": lambda error: _on_kafka_error(error, health)},
        )
        health.set("kafka", True)
        resources.callback(_flush, producer)

        loop = ProducerLoop(settings, source, producer, metrics, health, stop)
        loop.backfill(len(tickers))
        while not stop.is_set():
            wait_s = loop.cycle(len(tickers))
            loop.idle(wait_s)
        logger.info(
            "stopping: published=%d delivered=%d pending=%d",
            loop.published_total,
            producer.delivered,
            producer.pending,
        )


class ProducerLoop:
    """One cycle at a time; keeps what must survive between cycles (revisions, backoff, fetch window)."""

    def __init__(
        self,
        settings: Settings,
        source: Source,
        producer: ReliableProducer,
        metrics: ProducerMetrics,
        health: Health,
        stop: StopFlag,
    ) -> None:
        self.settings = settings
        self.source = source
        self.producer = producer
        self.metrics = metrics
        self.health = health
        self.stop = stop
        self.tracker = RevisionTracker(restart_safe_rev_base(utc_now()))
        self.backoff = Backoff(
            base=settings.common.download_period_s, cap=settings.producer.fetch_backoff_max_s
        )
        # In the source's own time: the next fetch starts at the oldest minute not known to be closed.
        self.closed_before: datetime | None = None
        self.published_total = 0
        self._closed_logged = False
        self._failed_attempts_seen = 0
        # Tickers the source returned nothing for, with why: a delisted symbol fails every cycle, and
        # one line per cycle would bury the log; it is logged when it starts, changes or ends.
        self.failing: dict[str, str] = {}

    def backfill(self, n_tickers: int) -> None:
        minutes = self.settings.producer.backfill_minutes
        if minutes <= 0:
            return
        started = time.monotonic()
        published = 0
        with tqdm(
            total=minutes * n_tickers,
            unit="bar",
            desc="backfill",
            disable=not sys.stderr.isatty(),
            file=sys.stderr,
        ) as progress:
            chunks = self.source.backfill(minutes, utc_now())
            while not self.stop.is_set():
                try:
                    fetch = next(chunks)
                except StopIteration:
                    break
                except FetchError as error:
                    # Live cycles fetch from the last closed minute on, so a failed backfill chunk is
                    # only history lost; keep going rather than hold the live data back.
                    self.metrics.fetch_errors.labels(error.kind).inc()
                    logger.warning("backfill chunk failed (%s): %s", error.kind, error.detail)
                    break
                prepared = self.publish(fetch)
                published += len(prepared.messages)
                progress.update(len(fetch.bars))
        logger.info(
            "backfill published=%d minutes=%d tickers=%d in %.1f s",
            published,
            minutes,
            n_tickers,
            time.monotonic() - started,
        )

    def cycle(self, n_tickers: int) -> float:
        """Fetch and publish once; return how long to wait before the next cycle."""
        period = self.settings.common.download_period_s
        started = time.monotonic()
        now = utc_now()
        if not self.source.is_open(now):
            if not self._closed_logged:
                logger.info("market closed: not polling until it opens")
                self._closed_logged = True
            self.health.set("last_cycle", True)
            return period
        self._closed_logged = False

        since = floor_minute(now) if self.closed_before is None else self.closed_before
        oldest_open = self.tracker.oldest_open()
        if oldest_open is not None and oldest_open < since:
            since = oldest_open
        if self.closed_before is not None:
            self.tracker.forget_before(since)
        try:
            fetch = self.source.fetch(since, now)
        except FetchError as error:
            delay = self.backoff.next_delay()
            self.metrics.fetch_errors.labels(error.kind).inc()
            self.health.set("last_cycle", False)
            logger.warning(
                "fetch failed (%s), retrying in %.0f s (attempt %d): %s",
                error.kind,
                delay,
                self.backoff.attempts,
                error.detail,
            )
            return delay
        fetched = time.monotonic()
        self.metrics.fetch_seconds.observe(fetched - started)

        prepared = self.publish(fetch)
        done = time.monotonic()
        self.metrics.cycle_seconds.observe(done - fetched)
        self.metrics.last_cycle.set(time.time())
        self.health.set("last_cycle", True)
        self._report_failing_tickers(fetch.errors)
        logger.info(
            "cycle tickers=%d fetched=%d published=%d new=%d revisions=%d final=%d invalid=%d errors=%d "
            "pending=%d fetch_ms=%.0f work_ms=%.0f",
            n_tickers,
            len(fetch.bars),
            len(prepared.messages),
            prepared.new,
            prepared.revisions,
            prepared.final,
            len(prepared.invalid),
            len(fetch.errors),
            self.producer.pending,
            (fetched - started) * 1000,
            (done - fetched) * 1000,
        )
        if fetch.rate_limited:
            delay = self.backoff.next_delay()
            logger.warning("rate limited by the source: next fetch in %.0f s", delay)
            return max(delay, period)
        self.backoff.reset()
        if fetch.more:
            return 0.0
        return max(0.0, period - (time.monotonic() - started))

    def _report_failing_tickers(self, errors: dict[str, str]) -> None:
        for ticker, message in errors.items():
            self.metrics.fetch_errors.labels("ticker").inc()
            if self.failing.get(ticker) != message:
                logger.warning(
                    "no data for %s: %s (not repeated while the reason stays the same)", ticker, message
                )
        for ticker in sorted(set(self.failing) - set(errors)):
            logger.info("data for %s again", ticker)
        self.failing = dict(errors)

    def publish(self, fetch: Fetch) -> Prepared:
        prepared = prepare(fetch.bars, fetch.closed_before, self.tracker, self.source.name)
        for row in prepared.invalid[:MAX_INVALID_LOGGED]:
            logger.warning("invalid bar skipped ticker=%s ts=%s reason=%s", row.ticker, row.ts, row.reason)
        if len(prepared.invalid) > MAX_INVALID_LOGGED:
            logger.warning("%d more invalid bars skipped", len(prepared.invalid) - MAX_INVALID_LOGGED)
        for row in prepared.invalid:
            self.metrics.invalid_rows.labels(row.reason.split(":")[0]).inc()

        topic = self.settings.kafka.bars_topic
        for i, (ticker, value) in enumerate(prepared.messages):
            self.producer.produce(topic, value, key=ticker)
            if i % 10_000 == 9_999:
                self.producer.poll(0)
        self.producer.poll(0)
        self.closed_before = max(self.closed_before or fetch.closed_before, fetch.closed_before)
        self.published_total += len(prepared.messages)
        self.metrics.bars_published.labels(self.source.name).inc(len(prepared.messages))
        self.metrics.revisions.labels(self.source.name).inc(prepared.revisions)
        self._count_delivery_failures()
        return prepared

    def idle(self, seconds: float) -> None:
        """Wait for the next cycle, serving delivery reports (and their retries) meanwhile."""
        deadline = time.monotonic() + seconds
        while True:
            self.producer.poll(0)
            self._count_delivery_failures()
            self.metrics.pending.set(self.producer.pending)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.stop.wait(min(remaining, 0.5)):
                return

    def _count_delivery_failures(self) -> None:
        failed = self.producer.failed_attempts
        if failed > self._failed_attempts_seen:
            self.metrics.delivery_failures.inc(failed - self._failed_attempts_seen)
            self._failed_attempts_seen = failed


def _ensure_topic(settings: Settings, stop: StopFlag) -> None:
    retry(
        f"creating topic {settings.kafka.bars_topic}",
        lambda: ensure_topics(settings, [settings.kafka.bars_topic]),
        retry_on=(Exception,),  # any admin failure is an outage to wait out
        stop=stop.is_set,
        wait=stop.wait,
        backoff=Backoff(cap=30.0),
    )


def _on_delivered(count: int, metrics: ProducerMetrics, health: Health) -> None:
    metrics.bars_delivered.inc(count)
    health.set("kafka", True)


def _on_kafka_error(error: KafkaError, health: Health) -> None:
    # librdkafka repeats transport errors for as long as an outage lasts: log the first one only.
    if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
        if health.snapshot()["checks"].get("kafka", True):  # type: ignore[attr-defined]
            logger.warning("kafka unreachable, messages wait in the queue: %s", error.str())
        health.set("kafka", False)
        return
    logger.warning("kafka: %s", error.str())


def _flush(producer: ReliableProducer) -> None:
    started = time.monotonic()
    left = producer.flush(FLUSH_TIMEOUT_S)
    logger.info(
        "flushed: delivered=%d undelivered=%d in %.1f s", producer.delivered, left, time.monotonic() - started
    )
