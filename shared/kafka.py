"""Kafka clients configured the one way the pipeline uses them.

* :class:`ReliableProducer`: idempotent, ``acks=all``; every delivery report is checked, a failed delivery
  is logged and produced again (never dropped), and :meth:`ReliableProducer.flush` waits for all of them.
* :func:`make_consumer`: at-least-once. Offsets are stored by the caller only after its side effect
  (``store_offsets``), and auto-commit commits only what was stored.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from shared.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

Headers = list[tuple[str, str | bytes | None]]


def client_config(settings: Settings) -> dict[str, Any]:
    """Connection and security settings common to every client."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "security.protocol": settings.kafka_security_protocol,
        # librdkafka logs every refused connection at error level; our own code logs outages once.
        "log_level": 3,
    }
    if settings.kafka_sasl_mechanism:
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_sasl_username
        assert settings.kafka_sasl_password is not None
        config["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_ca_location:
        config["ssl.ca.location"] = str(settings.kafka_ssl_ca_location)
    return config


@dataclass
class _Pending:
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers | None
    attempts: int = 0


class ReliableProducer:
    """A producer that does not lose messages: failed deliveries are retried until :meth:`flush` gives up.

    ``on_delivered(count)`` is called (from :meth:`poll`/:meth:`flush`) as deliveries are confirmed.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        client_id: str,
        on_delivered: Callable[[int], None] | None = None,
        **overrides: Any,
    ) -> None:
        config = client_config(settings) | {
            "client.id": client_id,
            "enable.idempotence": True,
            "acks": "all",
            # Batch small JSON messages: 20 ms of latency buys large batches and far fewer requests.
            "linger.ms": 20,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
        self._producer = Producer(config | overrides)
        self._retry: deque[_Pending] = deque()
        self._in_flight = 0
        self._on_delivered = on_delivered
        self.delivered = 0
        self.failed_attempts = 0

    def produce(
        self, topic: str, value: bytes, key: bytes | str | None = None, headers: Headers | None = None
    ) -> None:
        key_bytes = key.encode() if isinstance(key, str) else key
        self._send(_Pending(topic, key_bytes, value, headers))

    def _send(self, item: _Pending) -> None:
        def report(err: KafkaError | None, _msg: Message) -> None:
            self._in_flight -= 1
            if err is None:
                self.delivered += 1
                if self._on_delivered:
                    self._on_delivered(1)
                return
            item.attempts += 1
            self.failed_attempts += 1
            logger.warning(
                "delivery failed, will retry topic=%s key=%s attempt=%d error=%s",
                item.topic,
                item.key.decode(errors="replace") if item.key else None,
                item.attempts,
                err.str(),
            )
            self._retry.append(item)

        while True:
            try:
                self._producer.produce(
                    item.topic, item.value, item.key, headers=item.headers, on_delivery=report
                )
                self._in_flight += 1
                return
            except BufferError:
                # The local queue is full: serve delivery reports to make room, then try again.
                self._producer.poll(0.05)

    def poll(self, timeout: float = 0) -> None:
        """Serve delivery reports and resend what failed. Call it often (every loop iteration)."""
        self._producer.poll(timeout)
        while self._retry:
            self._send(self._retry.popleft())

    @property
    def pending(self) -> int:
        """Messages produced but not yet confirmed delivered."""
        return self._in_flight + len(self._retry)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait until every message is delivered (retrying failures); return how many are still pending."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            self.poll(0)
            self._producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
        self.poll(0)
        if self.pending:
            logger.error("flush gave up after %.0f s with %d messages undelivered", timeout, self.pending)
        return self.pending

    def list_topics(self, timeout: float = 5.0) -> Any:
        return self._producer.list_topics(timeout=timeout)


def make_consumer(
    settings: Settings,
    group_id: str,
    *,
    client_id: str,
    **overrides: Any,
) -> Consumer:
    """A consumer for at-least-once processing: call ``store_offsets(msg)`` after the side effect.

    Partitions are assigned cooperatively, so a member joining or leaving does not stop the others.
    """
    config = client_config(settings) | {
        "group.id": group_id,
        "client.id": client_id,
        "enable.auto.offset.store": False,
        "enable.auto.commit": True,
        "auto.commit.interval.ms": 1_000,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "max.poll.interval.ms": settings.kafka_max_poll_interval_ms,
        "session.timeout.ms": settings.kafka_session_timeout_ms,
    }
    return Consumer(config | overrides)


def subscribe(
    consumer: Consumer,
    topics: list[str],
    on_assign: Callable[[Consumer, list[TopicPartition]], None] | None = None,
    on_revoke: Callable[[Consumer, list[TopicPartition]], None] | None = None,
    on_lost: Callable[[Consumer, list[TopicPartition]], None] | None = None,
) -> None:
    """Subscribe with rebalance callbacks. Without ``on_lost``, a partition lost without a clean revoke
    (session timeout, poll interval overrun) goes to ``on_revoke``, which must drop what it holds for it."""
    kwargs: dict[str, Any] = {}
    if on_assign:
        kwargs["on_assign"] = on_assign
    if on_revoke:
        kwargs["on_revoke"] = on_revoke
        kwargs["on_lost"] = on_lost or on_revoke
    consumer.subscribe(topics, **kwargs)


def store_offsets(consumer: Consumer, messages: Iterable[Message]) -> None:
    """Store the offsets after ``messages`` (processed); a partition already revoked is skipped.

    librdkafka raises ``_STATE`` for a partition this member no longer owns: its messages will be
    delivered again to the new owner, which is what at-least-once wants.
    """
    offsets = next_offsets(messages)
    if not offsets:
        return
    try:
        consumer.store_offsets(offsets=offsets)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError._STATE:
            raise
        for tp in offsets:
            try:
                consumer.store_offsets(offsets=[tp])
            except KafkaException as one:
                if one.args[0].code() != KafkaError._STATE:
                    raise
                logger.info("partition %s[%d] revoked before its offset was stored", tp.topic, tp.partition)


def commit_stored(consumer: Consumer) -> None:
    """Commit the stored offsets now (on shutdown or before partitions are revoked).

    Nothing stored since the last commit is not an error.
    """
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError._NO_OFFSET:
            raise


def next_offsets(messages: Iterable[Message]) -> list[TopicPartition]:
    """The offsets to commit after ``messages``: one past the last of each partition."""
    latest: dict[tuple[str, int], int] = {}
    for msg in messages:
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        assert topic is not None and partition is not None and offset is not None
        latest[(topic, partition)] = max(latest.get((topic, partition), -1), offset)
    return [TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in latest.items()]


def consumer_lag(consumer: Consumer, unprocessed: Iterable[Message] = (), timeout: float = 2.0) -> int:
    """Messages not yet processed over the partitions this consumer holds (0 when it holds none).

    ``unprocessed`` are messages already consumed but not yet written (in hand, or being written): they
    count as lag, so the figure does not drop to 0 while a slow batch is in the database's hands.
    """
    assignment = consumer.assignment()
    if not assignment:
        return 0
    first_unprocessed: dict[tuple[str, int], int] = {}
    for msg in unprocessed:
        key = (msg.topic() or "", msg.partition() or 0)
        offset = msg.offset() or 0
        first_unprocessed[key] = min(first_unprocessed.get(key, offset), offset)
    lag = 0
    for tp in consumer.position(assignment):
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
        position = tp.offset if tp.offset >= 0 else low
        position = min(position, first_unprocessed.get((tp.topic, tp.partition), position))
        lag += max(0, high - position)
    return lag


def authentication_error(error: KafkaError) -> SettingsError | None:
    """A refused SASL login (or missing ACLs) as a settings error naming what to check; else None."""
    if error.code() not in (
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    ):
        return None
    return SettingsError(
        f"Kafka authentication or authorization failed ({error.str()}): check PORTFOLIO_KAFKA_SASL_USERNAME, "
        "PORTFOLIO_KAFKA_SASL_PASSWORD, PORTFOLIO_KAFKA_SASL_MECHANISM and PORTFOLIO_KAFKA_SECURITY_PROTOCOL"
    )


def ensure_topics(
    settings: Settings, topics: Iterable[str], partitions: int = 6, timeout: float = 30.0
) -> None:
    """Create the topics that do not exist yet (one replica: the local stack has one broker)."""
    admin = AdminClient(client_config(settings))
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [
        NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics if t not in existing
    ]
    if not missing:
        return
    for topic, future in admin.create_topics(missing, request_timeout=timeout).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        logger.info("created topic %s with %d partitions", topic, partitions)


def wait_for_kafka(settings: Settings, stop: Callable[[], bool], timeout: float | None = None) -> bool:
    """Block until the brokers answer a metadata request (True) or ``stop()``/``timeout`` (False).

    A refused login raises :class:`SettingsError` at once instead of being retried forever.
    """
    refused: list[KafkaError] = []

    def on_error(error: KafkaError) -> None:
        if authentication_error(error):
            refused.append(error)

    admin = AdminClient(client_config(settings) | {"error_cb": on_error})
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.5
    while not stop():
        try:
            if admin.list_topics(timeout=5).brokers:
                return True
        except KafkaException as exc:
            if authentication_error(exc.args[0]):
                refused.append(exc.args[0])
            logger.warning("Kafka at %s not reachable (%s); retrying", settings.kafka_bootstrap_servers, exc)
        if refused and (error := authentication_error(refused[0])):
            raise error from None
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 10.0)
    return False
