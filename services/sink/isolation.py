"""Write a batch so that one bad message cannot stop the sink: outages are waited out, poison is isolated.

:func:`write_isolating_poison` wraps any ``write(batch)`` callable. A failure is classified
(:func:`shared.mongo.classify_error`):

* an **outage** (connection lost, timeout, a conflict with another writer) is retried with backoff until the
  write succeeds or the sink is asked to stop; the batch is never split for it;
* a **document error** (the database refused a document, BSON could not encode it) is caused by some
  message(s) in the batch: the batch is split in halves and each half written on its own, down to the
  single messages that fail, which come back as poison; everything else is written.
* a connection **dropped while the server answers** ``ping`` (``reachable()``), :data:`SUSPECT_AFTER`
  times in a row for the same part, is taken as a document error too: FerretDB 1.24 closes the connection
  on some documents (a NaN double) instead of answering with an error, which would otherwise be retried
  forever.

Every write must be idempotent (re-sent halves overlap what already landed), which the sink's are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pymongo.errors import ConnectionFailure

from shared.lifecycle import StopFlag
from shared.mongo import ErrorKind, classify_error
from shared.retry import Backoff

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

SUSPECT_AFTER = 3


class Stopped(Exception):
    """Asked to stop before the batch was written: nothing may be committed for it."""


@dataclass
class Isolated(Generic[Item, Result]):
    """What a batch write came to: one result per successful write, and the items refused with why."""

    results: list[Result] = field(default_factory=list)
    poison: list[tuple[Item, Exception]] = field(default_factory=list)


def write_isolating_poison(
    batch: Sequence[Item],
    write: Callable[[Sequence[Item]], Result],
    stop: StopFlag,
    on_outage: Callable[[Exception], None] | None = None,
    reachable: Callable[[], bool] | None = None,
    backoff: Backoff | None = None,
) -> Isolated[Item, Result]:
    """Write ``batch`` through ``write``; raise :class:`Stopped` if ``stop`` comes before it is written.

    An error that is neither an outage nor a document error (a bug, a refused login) is raised as is.
    """
    outcome: Isolated[Item, Result] = Isolated()
    # Capped low: once the database is back, the sink should notice within seconds.
    backoff = backoff or Backoff(base=0.5, cap=5.0)
    # Depth-first over halves, so the parts are written in their original order.
    pending: list[Sequence[Item]] = [batch] if batch else []
    dropped_while_up = 0
    while pending:
        part = pending.pop()
        try:
            outcome.results.append(write(part))
            backoff.reset()
            dropped_while_up = 0
        except Exception as error:
            kind = classify_error(error)
            if (
                kind is ErrorKind.OUTAGE
                and isinstance(error, ConnectionFailure)
                and reachable
                and reachable()
            ):
                dropped_while_up += 1
                if dropped_while_up >= SUSPECT_AFTER:
                    kind, dropped_while_up = ErrorKind.DOCUMENT, 0
                else:
                    pending.append(part)  # the server is up: try again at once
                    continue
            if kind is ErrorKind.DOCUMENT:
                if len(part) == 1:
                    logger.warning(
                        "write refused one message: %s: %s", type(error).__name__, str(error)[:300]
                    )
                    outcome.poison.append((part[0], error))
                else:
                    middle = len(part) // 2
                    pending += [part[middle:], part[:middle]]
                continue
            if kind is not ErrorKind.OUTAGE:
                raise
            if on_outage:
                on_outage(error)
            delay = backoff.next_delay()
            logger.warning(
                "database write failed (%s: %s); retrying in %.1f s",
                type(error).__name__,
                str(error)[:200],
                delay,
            )
            if stop.wait(delay):
                raise Stopped(f"stopped with a batch unwritten ({type(error).__name__})") from error
            pending.append(part)
    return outcome
