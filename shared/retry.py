"""Exponential backoff with full jitter, for outages that are waited out rather than crashed on."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays ``base * 2**n`` capped at ``cap``, each drawn uniformly from its upper half.

    Half-jitter keeps replicas from retrying in step while guaranteeing a minimum wait.
    """

    base: float = 0.5
    cap: float = 30.0
    attempts: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * 2**self.attempts)
        self.attempts += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempts = 0
