"""Waiting for the brokers and creating the topics the pipeline needs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from shared.kafka.config import authentication_error, client_config
from shared.retry import retry
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

    def brokers() -> bool:
        # A refused login may come only through error_cb: raise it here, where ``fatal`` sees it.
        if refused:
            raise KafkaException(refused[0])
        return bool(admin.list_topics(timeout=5).brokers)

    def fatal(exc: BaseException) -> BaseException | None:
        return authentication_error(exc.args[0]) if isinstance(exc, KafkaException) and exc.args else None

    return retry(
        f"reaching Kafka at {settings.kafka.bootstrap_servers}",
        brokers,
        retry_on=(KafkaException,),
        stop=stop,
        timeout=timeout,
        fatal=fatal,
        done=bool,
    ).ok
