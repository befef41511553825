"""Dead letters: poison goes to the dead-letter topic exactly once, in one transaction with its offsets.

A record keeps the original key and bytes, with headers that say why and where from. An original larger
than the broker would take is cut to its first :data:`KEEP_BYTES` (``dlq.truncated`` gives the full size),
so a dead letter can never be refused for its size.

Poison and the consumer offsets past it are committed in one Kafka transaction: a sink killed in between
leaves an aborted transaction (invisible to ``read_committed`` readers, librdkafka's default) and
uncommitted offsets, so the replay dead-letters the same messages again, and they appear once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from confluent_kafka import KafkaException, Producer, TopicPartition

from services.sink.batch import Poison
from shared.kafka import Headers, client_config
from shared.settings import Settings

logger = logging.getLogger(__name__)

# Kafka headers travel with every fetch: a pydantic error list can be long, the reason code is what matters.
MAX_DETAIL_BYTES = 1_000
# What is kept of an oversized key or value: enough to study it, far below any broker's limit (1 MB).
KEEP_BYTES = 65_536
TRANSACTION_TIMEOUT_S = 10.0


def dlq_headers(poison: Poison) -> Headers:
    headers: Headers = [
        ("dlq.reason", poison.reason.encode()),
        ("dlq.detail", poison.detail.encode("utf-8", errors="replace")[:MAX_DETAIL_BYTES]),
        ("dlq.topic", poison.topic.encode()),
        ("dlq.partition", str(poison.partition).encode()),
        ("dlq.offset", str(poison.offset).encode()),
    ]
    sizes = [len(poison.value or b""), len(poison.key or b"")]
    if max(sizes) > KEEP_BYTES:
        headers.append(("dlq.truncated", f"value={sizes[0]} key={sizes[1]}".encode()))
    return headers


def dlq_value(poison: Poison) -> bytes:
    # A null value (a tombstone) has no bytes to keep; the reason header says it was empty.
    return (poison.value or b"")[:KEEP_BYTES]


def dlq_key(poison: Poison) -> bytes | None:
    return None if poison.key is None else poison.key[:KEEP_BYTES]


class DeadLetters:
    """A transactional producer for the dead-letter topic. :meth:`send` raises ``KafkaException`` when
    the transaction could not be committed (broker away, rebalance): the caller retries the whole send."""

    def __init__(self, settings: Settings, *, client_id: str) -> None:
        self._config = client_config(settings) | {
            "client.id": client_id,
            # Unique per process: a crashed sink's open transaction is aborted by the broker after
            # transaction.timeout.ms, and the group generation (KIP-447) fences a zombie's offsets.
            "transactional.id": client_id,
            "transaction.timeout.ms": int(TRANSACTION_TIMEOUT_S * 1000),
        }
        self.topic = settings.kafka.dlq_topic
        self._producer: Producer | None = None

    def _ready(self) -> Producer:
        if self._producer is None:
            producer = Producer(self._config)
            producer.init_transactions(TRANSACTION_TIMEOUT_S)
            self._producer = producer
        return self._producer

    def send(
        self, poison: Sequence[Poison], offsets: Sequence[TopicPartition], group_metadata: object
    ) -> None:
        """Produce ``poison`` and commit ``offsets`` for the consumer group in one transaction."""
        producer = self._ready()
        producer.begin_transaction()
        try:
            for item in poison:
                producer.produce(self.topic, dlq_value(item), dlq_key(item), headers=dlq_headers(item))
            producer.send_offsets_to_transaction(list(offsets), group_metadata, TRANSACTION_TIMEOUT_S)
            self._commit(producer)
        except KafkaException as exc:
            error = exc.args[0]
            if error.fatal():
                self._producer = None  # fenced or broken: a fresh producer next time
            else:
                try:
                    producer.abort_transaction(TRANSACTION_TIMEOUT_S)
                except KafkaException as abort:
                    logger.warning("aborting the dead-letter transaction failed (%s); starting over", abort)
                    self._producer = None
            raise

    @staticmethod
    def _commit(producer: Producer) -> None:
        # A timed-out commit may still complete: it is retried as such, never aborted and sent again
        # (that could put the same poison on the topic twice).
        for attempt in range(3):
            try:
                producer.commit_transaction(TRANSACTION_TIMEOUT_S)
                return
            except KafkaException as exc:
                if not exc.args[0].retriable() or attempt == 2:
                    raise

    def start(self) -> None:
        """Register the transactional id with the broker (fencing any earlier owner of it)."""
        self._ready()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(1.0)
