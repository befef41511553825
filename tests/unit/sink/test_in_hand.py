"""A batch is due at batch_max messages or batch_ms after its first, and a poll never waits past that."""

from __future__ import annotations

from services.sink.in_hand import InHand
from tests.unit.sink.test_batch import Record


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_batch_is_due_when_full_or_when_its_first_message_is_batch_ms_old() -> None:
    clock = Clock()
    in_hand = InHand(batch_max=3, batch_ms=500, clock=clock)
    assert not in_hand.due() and in_hand.poll_timeout() == 1.0 and in_hand.room == 3
    in_hand.add(Record("bars", b"1"))  # type: ignore[arg-type]
    clock.now += 0.2
    in_hand.add(Record("bars", b"2"))  # type: ignore[arg-type]
    assert not in_hand.due() and round(in_hand.poll_timeout(), 3) == 0.3 and in_hand.room == 1
    clock.now += 0.3
    assert in_hand.due() and in_hand.poll_timeout() == 0.0
    assert [r.value() for r in in_hand.take()] == [b"1", b"2"] and not in_hand

    in_hand.add(Record("bars", b"3"))  # type: ignore[arg-type]
    assert not in_hand.due()  # the age counts from the first message of this batch
    for value in (b"4", b"5"):
        in_hand.add(Record("bars", value))  # type: ignore[arg-type]
    assert in_hand.due() and in_hand.room == 1  # a full hand still polls, to serve rebalances


def test_messages_of_partitions_gone_to_another_member_are_dropped() -> None:
    in_hand = InHand(batch_max=10, batch_ms=500)
    for topic, partition in [("bars", 1), ("bars", 2), ("closes", 1)]:
        in_hand.add(Record(topic, b"x", _partition=partition))  # type: ignore[arg-type]
    in_hand.drop({("bars", 1)})
    assert [(m.topic(), m.partition()) for m in in_hand.messages] == [("bars", 2), ("closes", 1)]
