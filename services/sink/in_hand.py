"""The messages the loop gathers between polls, and when they make a batch (no I/O).

A batch is due at ``batch_max`` messages or ``batch_ms`` after the first one came, whichever is first;
the loop's poll waits no longer than that (and at most a second, so a stop signal is seen in time).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Message


class InHand:
    def __init__(self, batch_max: int, batch_ms: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.batch_max, self.batch_ms, self.clock = batch_max, batch_ms, clock
        self.messages: list[Message] = []
        self.first_at = 0.0

    def __len__(self) -> int:
        return len(self.messages)

    def add(self, msg: Message) -> None:
        if not self.messages:
            self.first_at = self.clock()
        self.messages.append(msg)

    @property
    def room(self) -> int:
        """How many more to take in one poll (at least one, so a poll always serves rebalances)."""
        return max(self.batch_max - len(self.messages), 1)

    def poll_timeout(self) -> float:
        if not self.messages:
            return 1.0  # short enough that a stop signal is seen within a second
        age = self.clock() - self.first_at
        return max(0.0, min(1.0, self.batch_ms / 1000 - age))

    def due(self) -> bool:
        if not self.messages:
            return False
        if len(self.messages) >= self.batch_max:
            return True
        return (self.clock() - self.first_at) * 1000 >= self.batch_ms

    def take(self) -> list[Message]:
        messages, self.messages = self.messages, []
        return messages

    def drop(self, gone: set[tuple[str, int]]) -> None:
        """Forget the messages of partitions this member no longer owns: their new owner reads them."""
        self.messages = [m for m in self.messages if (m.topic(), m.partition()) not in gone]
