"""Bounded staleness: when the sink checks its partitions' items in progress for settling although no
message touched them, and how it settles everything it holds when it stops.

An item settles once untouched for half of ``PORTFOLIO_SINK_SETTLE_S`` (``SinkRepository``); the loop
sweeps every partition it owns every quarter of it, so an item is in history at most about three quarters
of the bound after its last message, the rest left for the write. A sweep rides on the next batch, or is a
write of its own when no message is in hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from confluent_kafka import TopicPartition

from services.sink.portfolio import closes_topic
from services.sink.worker import Sweep
from shared.mongo import BARS, PORTFOLIO, PREDICTIONS
from shared.settings import Settings

# After settling at a stop: polls without a close coming back before the rows are settled too.
QUIET_POLLS = 3
QUIET_POLL_S = 0.5


class SweepClock:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = settings.sink.settle_s / 4
        self.clock = clock
        self.next_at = clock() + self.every
        self.kinds = {
            settings.kafka.bars_topic: BARS,
            settings.kafka.predictions_topic: PREDICTIONS,
            closes_topic(settings.kafka.bars_topic): PORTFOLIO,
        }

    def due(self) -> bool:
        return self.clock() >= self.next_at

    def take(self, assignment: Iterable[TopicPartition], settle_all: bool = False) -> Sweep | None:
        """The sweep of the owned partitions when one is due (always with ``settle_all``), else None."""
        if not (settle_all or self.due()):
            return None
        self.next_at = self.clock() + self.every
        partitions: dict[str, set[int]] = {}
        for tp in assignment:
            if tp.topic in self.kinds:
                partitions.setdefault(self.kinds[tp.topic], set()).add(tp.partition)
        return Sweep(partitions, settle_all)


def settle_on_stop(
    poll: Callable[[float], int], write: Callable[[bool], bool], deadline: Callable[[], bool]
) -> bool:
    """Settle everything held, then the portfolio rows the closes just published make (those of the closes
    partitions this sink owns come back to it): ``poll(timeout)`` takes messages into hand and returns how
    many, ``write(settle_all)`` writes them and commits. False if a write gave up (out of time)."""
    if not write(True):
        return False
    quiet = 0
    while quiet < QUIET_POLLS and not deadline():
        if poll(QUIET_POLL_S):
            quiet = 0
            if not write(False):
                return False
        else:
            quiet += 1
    return write(True)
