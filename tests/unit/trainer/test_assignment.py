"""Which partitions a trainer member owns, and when a poll holds bars of every one of them."""

from __future__ import annotations

from typing import cast

from confluent_kafka import Message, TopicPartition

from services.trainer.assignment import Assignment
from services.trainer.forecaster.core import Forecaster
from tests.unit.trainer.synthetic import tiny_config


class _Fetched:
    def __init__(self, partition: int) -> None:
        self._partition = partition

    def partition(self) -> int:
        return self._partition


def fetched(*partitions: int) -> list[Message]:
    return [cast("Message", _Fetched(p)) for p in partitions]


def test_a_poll_is_complete_once_every_owned_partition_has_given_bars() -> None:
    assignment = Assignment(Forecaster(tiny_config()))
    assignment.on_assign(None, [TopicPartition("bars", p) for p in (0, 1, 2)])  # type: ignore[arg-type]
    assert not assignment.every_partition(fetched(0, 0, 1))
    assert not assignment.every_partition(fetched(0, 1, 5))  # a partition not owned does not stand in
    assert assignment.every_partition(fetched(2, 0, 1, 1))
    assignment.on_assign(None, [TopicPartition("bars", 3)])  # type: ignore[arg-type]  # cooperative: added
    assert not assignment.every_partition(fetched(0, 1, 2))
    assignment.on_revoke(None, [TopicPartition("bars", 2), TopicPartition("bars", 3)])  # type: ignore[arg-type]
    assert assignment.every_partition(fetched(0, 1))
