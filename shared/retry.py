"""Waiting out outages, in one place: :class:`Backoff` (the delays) and :func:`retry` (the loop).

Every loop that must outlast a broker or database outage calls :func:`retry`: the service's start (Kafka
and MongoDB reachable, topics and indexes made), the producer's topic, the trainer's checkpoint, the sink's
commits. A failure that retrying cannot mend (a refused login) is turned into its own error by ``fatal``
and raised at once; everything in ``retry_on`` is logged and tried again after the next delay.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Backoff:
    """Delays ``base * 2**n`` capped at ``cap``, each drawn uniformly from its upper half.

    Half jitter keeps replicas from retrying in step while guaranteeing a minimum wait.
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


@dataclass(frozen=True)
class Retried(Generic[T]):
    """What :func:`retry` ended with: ``ok`` and the action's value, or not ``ok`` (stopped, out of
    attempts or past the timeout) and no value."""

    ok: bool
    value: T | None = None


def _never() -> bool:
    return False


def _no_fatal(_: BaseException) -> BaseException | None:
    return None


def _any_result(_: object) -> bool:
    return True


def retry(
    what: str,
    action: Callable[[], T],
    *,
    retry_on: tuple[type[BaseException], ...],
    stop: Callable[[], bool] = _never,
    wait: Callable[[float], object] = time.sleep,
    backoff: Backoff | None = None,
    attempts: int | None = None,
    timeout: float | None = None,
    fatal: Callable[[BaseException], BaseException | None] = _no_fatal,
    done: Callable[[T], bool] = _any_result,
) -> Retried[T]:
    """Call ``action`` until it returns a value ``done`` accepts, waiting ``backoff``'s delays between tries.

    Gives up (``ok=False``) when ``stop()`` turns true, after ``attempts`` tries, or once ``timeout``
    seconds have passed. ``wait(delay)`` does the waiting: ``time.sleep`` by default, a stop flag's
    ``wait`` to wake at once on SIGTERM, or a loop that keeps a consumer polling.
    """
    backoff = backoff or Backoff(base=0.5, cap=10.0)
    deadline = None if timeout is None else time.monotonic() + timeout
    tries = 0
    while not stop():
        tries += 1
        try:
            value = action()
            if done(value):
                return Retried(ok=True, value=value)
            reason = "not ready yet"
        except retry_on as exc:
            if (error := fatal(exc)) is not None:
                raise error from None
            reason = f"{type(exc).__name__}: {str(exc)[:200]}"
        out_of_tries = attempts is not None and tries >= attempts
        past_deadline = deadline is not None and time.monotonic() >= deadline
        if out_of_tries or past_deadline or stop():
            logger.warning("%s failed (%s); giving up after %d tries", what, reason, tries)
            break
        delay = backoff.next_delay()
        logger.warning("%s failed (%s); retrying in %.1f s", what, reason, delay)
        wait(delay)
    return Retried(ok=False)
