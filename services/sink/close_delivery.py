"""The closes a write settled, delivered to the closes topic before the write lets ``latest`` forget them.

A bar leaves its partition's ``latest`` document when it settles, and it often settles because of a
*later* bar of its ticker. A replay after a crash therefore does not meet that bar again: if its close
were still only queued when ``latest`` was rewritten (and the sink then died), nothing would ever publish
it, and its portfolio row would lack that ticker for good. So :meth:`CloseDelivery.deliver` returns only
once the broker has acknowledged every close (idempotent producer, ``acks=all``), and the repository
calls it before it rewrites ``latest``: a crash before that replays the batch from the old ``latest``,
which settles the same bars again and publishes their closes again (harmless: the row's owner compares
``rev``s).

It runs on the write worker's thread while the loop keeps polling, as the database writes do; a broker
away is waited out, and a stop request while it is away ends the write unfinished (``Stopped``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from services.sink.isolation import Stopped
from shared.kafka import ReliableProducer
from shared.lifecycle import StopFlag

logger = logging.getLogger(__name__)

# Each wait for the broker's acknowledgements is this long, so a stop request is seen between them.
FLUSH_S = 5.0

Close = tuple[str, bytes]  # (key, value) on the closes topic


class CloseDelivery:
    """Produces closes to ``topic`` and waits until all are delivered. ``delivered`` counts them (for the
    batch's log line; a retried or split write delivers its closes again)."""

    def __init__(self, producer: ReliableProducer, topic: str, stop: StopFlag) -> None:
        self.producer = producer
        self.topic = topic
        self.stop = stop
        self.delivered = 0

    def deliver(self, closes: Sequence[Close]) -> None:
        for key, value in closes:
            self.producer.produce(self.topic, value, key=key)
        while self.producer.flush(FLUSH_S):
            if self.stop.is_set():
                raise Stopped(f"stopped with {self.producer.pending} closes undelivered")
            logger.warning("%d closes not delivered yet; still trying", self.producer.pending)
        self.delivered += len(closes)
