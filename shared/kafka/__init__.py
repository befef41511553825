"""Kafka clients configured the one way the pipeline uses them.

* :class:`ReliableProducer` (``producer.py``): idempotent, ``acks=all``; every delivery report is checked,
  a failed delivery is logged and produced again (never dropped), and :meth:`ReliableProducer.flush`
  waits for all of them.
* :func:`make_consumer` (``consumer.py``): at-least-once. Offsets are stored by the caller only after its
  side effect (``store_offsets``), and auto-commit commits only what was stored.
* ``config.py``: the connection settings common to every client, headers, refused logins told apart.
* ``admin.py``: waiting for the brokers, creating topics.

Import from ``shared.kafka``: the modules are how it is laid out, not separate entry points.
"""

from shared.kafka.admin import ensure_topics, wait_for_kafka
from shared.kafka.config import Headers, authentication_error, client_config
from shared.kafka.consumer import (
    commit_stored,
    consumer_lag,
    make_consumer,
    next_offsets,
    store_offsets,
    subscribe,
    take_arrived,
)
from shared.kafka.producer import ReliableProducer

__all__ = [
    "Headers",
    "ReliableProducer",
    "authentication_error",
    "client_config",
    "commit_stored",
    "consumer_lag",
    "ensure_topics",
    "make_consumer",
    "next_offsets",
    "store_offsets",
    "subscribe",
    "take_arrived",
    "wait_for_kafka",
]
