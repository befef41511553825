"""Reading a topic back as a test does: the messages one consumer group gets, up to a count or a deadline."""

from __future__ import annotations

import time

from confluent_kafka import Message

from shared.kafka import commit_stored, make_consumer, store_offsets, subscribe
from shared.settings import Settings


def consume(
    settings: Settings,
    topic: str,
    expected: int,
    group: str,
    timeout: float = 30.0,
    client_id: str = "test",
) -> list[Message]:
    """Up to ``expected`` messages of ``topic`` read by ``group`` within ``timeout`` seconds (errors
    skipped); their offsets are committed, so the group does not see them again."""
    consumer = make_consumer(settings, group, client_id=client_id)
    subscribe(consumer, [topic])
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            got.append(msg)
            store_offsets(consumer, [msg])
        commit_stored(consumer)
    finally:
        consumer.close()
    return got


def value_of(msg: Message) -> bytes:
    """The message's value as bytes (every message the pipeline writes has one)."""
    value = msg.value()
    assert isinstance(value, bytes), f"{msg.topic()}[{msg.partition()}]@{msg.offset()} has no bytes value"
    return value


def headers_of(msg: Message) -> dict[str, bytes]:
    """The message's headers by name (the pipeline's headers are all bytes)."""
    raw = msg.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    return {name: value.encode() if isinstance(value, str) else value or b"" for name, value in items}
