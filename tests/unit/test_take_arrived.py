"""shared.kafka.take_arrived against a scripted consumer: when a poll stops taking what arrives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from confluent_kafka import Consumer

from shared.kafka import take_arrived


@dataclass
class ScriptedConsumer:
    """``consume`` as librdkafka's: what is queued, up to ``num_messages``, after waiting for a full batch or
    the timeout. ``arrivals``: (seconds after the first call, count) of fetches landing in the queue."""

    arrivals: list[tuple[float, int]]
    now: float = 0.0
    queued: int = 0
    taken: list[int] = field(default_factory=list)
    calls: list[tuple[int, float]] = field(default_factory=list)

    def _land(self) -> None:
        while self.arrivals and self.arrivals[0][0] <= self.now:
            self.queued += self.arrivals.pop(0)[1]

    def consume(self, num_messages: int, timeout: float) -> list[int]:
        self.calls.append((num_messages, timeout))
        self._land()
        deadline = self.now + timeout
        while self.queued < num_messages and self.arrivals and self.arrivals[0][0] <= deadline:
            self.now = self.arrivals[0][0]
            self._land()
        if self.queued < num_messages:
            self.now = deadline
        count = min(num_messages, self.queued)
        self.queued -= count
        return list(range(count))


def take(consumer: ScriptedConsumer, limit: int = 5000, expected: int | None = None) -> list[int]:
    scripted = cast("Consumer", consumer)  # the one method take_arrived calls
    complete = None if expected is None else (lambda messages: len(messages) >= expected)
    taken = take_arrived(
        scripted, limit, wait_s=0.05, gather_s=0.003, clock=lambda: consumer.now, complete=complete
    )
    return cast("list[int]", taken)


def test_a_minute_fetched_in_two_parts_is_taken_in_one_poll() -> None:
    consumer = ScriptedConsumer([(0.010, 80), (0.012, 420)])
    assert len(take(consumer)) == 500
    # A wait that brought the second fetch (2 ms after the first) ran its 3 ms; the next found nothing.
    assert abs(consumer.now - 0.016) < 1e-9


def test_a_fetch_later_than_the_gather_waits_for_the_next_poll() -> None:
    consumer = ScriptedConsumer([(0.010, 80), (0.020, 420)])
    assert len(take(consumer)) == 80
    assert len(take(consumer)) == 420


def test_nothing_within_the_poll_timeout_returns_empty_after_it() -> None:
    consumer = ScriptedConsumer([(0.5, 10)])
    assert take(consumer) == []
    assert abs(consumer.now - 0.05) < 1e-9


def test_what_is_already_queued_is_taken_without_waiting_for_the_first() -> None:
    consumer = ScriptedConsumer([(0.0, 7000)])
    assert len(take(consumer)) == 5000  # the limit: no wait at all
    assert consumer.now == 0.0 and consumer.calls == [(5000, 0)]


def test_a_steady_trickle_is_cut_after_ten_gathers() -> None:
    consumer = ScriptedConsumer([(0.001 * k, 1) for k in range(1, 200)])
    taken = take(consumer)
    assert 25 <= len(taken) <= 35  # 30 ms of it at one a millisecond
    assert consumer.now <= 0.001 + 10 * 0.003 + 0.003


def test_gathering_stops_once_what_is_in_hand_is_complete() -> None:
    consumer = ScriptedConsumer([(0.010, 80), (0.012, 420), (0.014, 5)])
    assert len(take(consumer, expected=500)) == 500  # the 5 after it wait for the next poll
    assert abs(consumer.now - 0.013) < 1e-9  # no wait after the second fetch
    consumer = ScriptedConsumer([(0.010, 80), (0.012, 420)])
    assert len(take(consumer, expected=80)) == 80  # complete from the first fetch on: no wait at all
    assert abs(consumer.now - 0.010) < 1e-9
