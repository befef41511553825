"""Closes are delivered before the write goes on; a broker away is waited out until stop is asked."""

from __future__ import annotations

import pytest

from services.sink.close_delivery import CloseDelivery
from services.sink.isolation import Stopped
from shared.lifecycle import StopFlag


class Producer:
    """A stand-in for ``ReliableProducer``: ``flush`` leaves everything pending ``away`` times."""

    def __init__(self, away: int = 0, stop_when_away: StopFlag | None = None) -> None:
        self.produced: list[tuple[str, bytes, str]] = []
        self.away, self.stop_when_away = away, stop_when_away
        self.flushes = 0

    def produce(self, topic: str, value: bytes, key: str) -> None:
        self.produced.append((topic, value, key))

    @property
    def pending(self) -> int:
        return len(self.produced) if self.away else 0

    def flush(self, timeout: float) -> int:
        self.flushes += 1
        if self.away and self.stop_when_away:
            self.stop_when_away.set()
        pending = self.pending
        self.away = max(0, self.away - 1)
        return pending


def test_deliver_returns_once_every_close_is_acknowledged_and_counts_them() -> None:
    producer = Producer(away=2)
    delivery = CloseDelivery(producer, "bars.closes", StopFlag())  # type: ignore[arg-type]
    delivery.deliver([("m1", b"a"), ("m2", b"b")])
    assert producer.produced == [("bars.closes", b"a", "m1"), ("bars.closes", b"b", "m2")]
    assert producer.flushes == 3 and delivery.delivered == 2


def test_a_stop_while_the_broker_is_away_ends_the_write_unfinished() -> None:
    stop = StopFlag()
    delivery = CloseDelivery(Producer(away=1_000, stop_when_away=stop), "t", stop)  # type: ignore[arg-type]
    with pytest.raises(Stopped):
        delivery.deliver([("m1", b"a")])
    assert delivery.delivered == 0
