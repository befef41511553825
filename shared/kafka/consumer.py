"""The pipeline's consumers: at-least-once. Offsets are stored by the caller only after its side effect
(:func:`store_offsets`), and auto-commit commits only what was stored."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from shared.kafka.config import client_config
from shared.settings import Settings

logger = logging.getLogger(__name__)


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
        "max.poll.interval.ms": settings.kafka.max_poll_interval_ms,
        "session.timeout.ms": settings.kafka.session_timeout_ms,
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


def take_arrived(
    consumer: Consumer,
    limit: int,
    wait_s: float,
    gather_s: float,
    clock: Callable[[], float] = time.monotonic,
    complete: Callable[[list[Message]], bool] | None = None,
) -> list[Message]:
    """Up to ``limit`` messages: those already fetched, or else the first to arrive within ``wait_s``; then
    whatever goes on arriving, until ``gather_s`` passes without a message, or ``complete(messages)`` says
    nothing more is expected (and for ten times ``gather_s`` at most: a steady trickle must not hold what is
    in hand).

    A live minute's bars come from every partition at once, but the broker answers a fetch as soon as one
    partition has data: at 500 tickers over 6 partitions the first ~80 bars came alone and the other ~420
    one fetch later, so they waited while the first were forecast (the trainer's two polls took 13-19 and
    39-43 ms for a minute one poll serves in ~45; issue 18). ``consume(limit, timeout)`` alone returns
    only when ``limit`` are in hand or the timeout has passed, so each wait here is a short one."""
    messages: list[Message] = consumer.consume(num_messages=limit, timeout=0)
    if not messages:
        messages = consumer.consume(num_messages=1, timeout=wait_s)
        if not messages:
            return messages
        messages += consumer.consume(num_messages=limit - 1, timeout=0)
    until = clock() + 10 * gather_s
    while len(messages) < limit and clock() < until and not (complete and complete(messages)):
        more = consumer.consume(num_messages=limit - len(messages), timeout=gather_s)
        if not more:
            break
        messages += more
    return messages


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


def consumer_lag(
    consumer: Consumer, unprocessed: Iterable[Message] = (), timeout: float = 2.0, *, cached: bool = False
) -> int:
    """Messages not yet processed over the partitions this consumer holds (0 when it holds none).

    ``unprocessed`` are messages already consumed but not yet written (in hand, or being written): they
    count as lag, so the figure does not drop to 0 while a slow batch is in the database's hands.
    ``cached``: from the high watermarks the fetches already brought back, with no broker round trip (a
    partition not fetched from yet counts 0); the round trip per partition took seconds on a loaded broker.
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
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout, cached=cached) or (-1, -1)
        if high < 0:  # cached and not known yet
            continue
        position = tp.offset if tp.offset >= 0 else max(low, 0)
        position = min(position, first_unprocessed.get((tp.topic, tp.partition), position))
        lag += max(0, high - position)
    return lag
