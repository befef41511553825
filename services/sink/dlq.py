"""Dead-letter messages: the original key and bytes, with headers that say why and where from."""

from __future__ import annotations

from services.sink.batch import Poison
from shared.kafka import Headers

# Kafka headers travel with every fetch: a pydantic error list can be long, the reason code is what matters.
MAX_DETAIL_BYTES = 1_000


def dlq_headers(poison: Poison) -> Headers:
    return [
        ("dlq.reason", poison.reason.encode()),
        ("dlq.detail", poison.detail.encode("utf-8", errors="replace")[:MAX_DETAIL_BYTES]),
        ("dlq.topic", poison.topic.encode()),
        ("dlq.partition", str(poison.partition).encode()),
        ("dlq.offset", str(poison.offset).encode()),
    ]


def dlq_value(poison: Poison) -> bytes:
    # A null value (a tombstone) has no bytes to keep; the reason header says it was empty.
    return poison.value if poison.value is not None else b""
