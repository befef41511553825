"""The sink's start: Kafka reachable, topics created, MongoDB reachable with its indexes, the
transactional producer registered. Each step waits out outages; a refused login exits at once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from confluent_kafka import KafkaException
from pymongo.database import Database
from pymongo.errors import PyMongoError

from services.sink.dlq import DeadLetters
from shared.kafka import authentication_error, ensure_topics, wait_for_kafka
from shared.lifecycle import StopFlag
from shared.mongo import ErrorKind, classify_error, database, ensure_indexes, make_client, wait_for_mongodb
from shared.mongo import authentication_error as mongo_auth_error
from shared.retry import retry
from shared.settings import Settings

logger = logging.getLogger(__name__)


def _refused_login(exc: BaseException) -> BaseException | None:
    if isinstance(exc, PyMongoError) and classify_error(exc) is ErrorKind.AUTH:
        return mongo_auth_error(exc)
    if isinstance(exc, KafkaException):
        return authentication_error(exc.args[0])
    return None


def retry_until_done(what: str, action: Callable[[], object], stop: StopFlag) -> bool:
    """``action`` retried through Kafka and MongoDB outages until done (True) or stopped (False)."""
    return retry(
        what, action, retry_on=(KafkaException, PyMongoError), stop=stop.is_set, wait=stop.wait,
        fatal=_refused_login,
    ).ok  # fmt: skip


def connect(
    settings: Settings, topics: list[str], client_id: str, stack: ExitStack, stop: StopFlag
) -> tuple[Database[dict[str, Any]], DeadLetters] | None:
    """The database and the dead-letter/closes producer, closed by ``stack``; ``None`` if stopped first."""
    if not wait_for_kafka(settings, stop):
        return None
    wanted = list(dict.fromkeys([*settings.kafka.topics(), *topics]))
    if not retry_until_done("creating topics", lambda: ensure_topics(settings, wanted), stop):
        return None
    client = stack.enter_context(make_client(settings))
    if not wait_for_mongodb(client, stop):
        return None
    db = database(client, settings)
    if not retry_until_done("creating indexes", lambda: ensure_indexes(db), stop):
        return None
    dead_letters = DeadLetters(settings, client_id=f"{client_id}-dlq")
    if not retry_until_done("starting the dead-letter producer", dead_letters.start, stop):
        return None
    stack.callback(dead_letters.close)
    return db, dead_letters
