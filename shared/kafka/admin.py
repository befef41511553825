"""Waiting for the brokers and creating the topics the pipeline needs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from shared.kafka.config import authentication_error, client_config
from shared.settings import Settings

logger = logging.getLogger(__name__)


def ensure_topics(
    settings: Settings,
    topics: Iterable[str],
    partitions: int = 6,
    timeout: float = 30.0,
    config: dict[str, str] | None = None,
) -> None:
    """Create the topics that do not exist yet (one replica: the local stack has one broker), with the
    topic-level ``config`` given (e.g. ``message.timestamp.type``); existing topics are left as they are."""
    admin = AdminClient(client_config(settings))
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [
        NewTopic(t, num_partitions=partitions, replication_factor=1, config=dict(config or {}))
        for t in topics
        if t not in existing
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
            logger.warning("Kafka at %s not reachable (%s); retrying", settings.kafka.bootstrap_servers, exc)
        if refused and (error := authentication_error(refused[0])):
            raise error from None
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 10.0)
    return False
