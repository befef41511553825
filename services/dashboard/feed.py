"""The dashboard's Kafka consumer: bars and forecasts into the window, and out to the browsers.

Its own consumer group, so it reads every message whatever the sink and trainer do. Offsets are stored
after a message is in the window: a restart resumes there (the window refills from the database first).
A message that does not decode is skipped and counted, as the trainer does; the sink dead-letters it.
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import KafkaError, Message

from services.dashboard.events import Broadcaster, bar_event, prediction_event
from services.dashboard.window import Window
from shared.kafka import consumer_lag, make_consumer, store_offsets, subscribe
from shared.lifecycle import StopFlag
from shared.schemas import MessageError, decode_bar, decode_prediction
from shared.settings import Settings

logger = logging.getLogger(__name__)

BATCH = 1_000
# Short: an event waits at most this long in the consumer before it goes out to the browsers.
POLL_S = 0.1
LAG_EVERY_S = 2.0


class Feed:
    """Consume in a thread until ``stop``; ``lag``, ``skipped`` and ``connected`` are read by /api/health."""

    def __init__(self, settings: Settings, window: Window, broadcaster: Broadcaster, stop: StopFlag) -> None:
        self._settings = settings
        self._window = window
        self._broadcaster = broadcaster
        self._stop = stop
        self.lag: int | None = None
        self.skipped = 0
        self.connected = False
        self._thread = threading.Thread(target=self._run, name="dashboard-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        settings = self._settings
        consumer = make_consumer(settings, settings.dashboard.group_id, client_id="portfolio-dashboard")
        bars_topic = settings.kafka.bars_topic
        subscribe(consumer, [bars_topic, settings.kafka.predictions_topic])
        logger.info("consuming %s and %s", bars_topic, settings.kafka.predictions_topic)
        next_lag = 0.0
        try:
            while not self._stop.is_set():
                messages = consumer.consume(BATCH, timeout=POLL_S)
                self._broadcaster.publish(self._apply(messages, bars_topic))
                store_offsets(consumer, [m for m in messages if m.error() is None])
                if time.monotonic() >= next_lag:
                    # Cached watermarks: no broker round trip per partition on the feed's thread.
                    self.lag = consumer_lag(consumer, cached=True)
                    self.connected = bool(consumer.assignment())
                    next_lag = time.monotonic() + LAG_EVERY_S
        except Exception:
            logger.exception("the feed stopped")
            self.connected = False
            raise
        finally:
            consumer.close()

    def _apply(self, messages: list[Message], bars_topic: str) -> list[dict[str, object]]:
        events: list[dict[str, object]] = []
        limit = self._settings.kafka.max_message_bytes
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    logger.warning("consumer error: %s", error)
                continue
            try:
                if message.topic() == bars_topic:
                    bar = decode_bar(message.value(), limit)
                    if self._window.add_bar(bar):
                        events.append(bar_event(bar))
                else:
                    prediction = decode_prediction(message.value(), limit)
                    self._window.add_prediction(prediction)
                    events.append(prediction_event(prediction))
            except MessageError as exc:
                self.skipped += 1
                logger.warning("skipped a message of %s: %s", message.topic(), exc.reason)
        return events
