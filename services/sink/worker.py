"""The sink's write worker: one batch written on its own thread through poison isolation.

The loop thread keeps polling (partitions paused) while :meth:`BatchWriter.start` writes; the worker
hands its result to the :class:`~services.sink.flight.Flight` and sets ``flight.done``.

Each write that :func:`~services.sink.isolation.write_isolating_poison` makes (the whole batch, a retry,
a half) is one call of :meth:`SinkRepository.write` on a :class:`DecodedBatch` rebuilt from those
items, with no retry of its own: isolation owns retries, backoff and bisection.

The closes the repository settles for the portfolio rows' owners are delivered from this thread too,
inside each write, before it rewrites ``latest`` (:mod:`services.sink.close_delivery`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from services.sink.batch import DecodedBatch
from services.sink.close_delivery import CloseDelivery
from services.sink.flight import Flight, Item
from services.sink.isolation import Isolated, write_isolating_poison
from services.sink.repository import SinkRepository, WriteOutcome
from shared.lifecycle import StopFlag
from shared.schemas import BarV1, PredictionV1

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sweep:
    """The partitions (by kind) whose items in progress a write checks for settling, messages or not."""

    partitions: dict[str, set[int]] = field(default_factory=dict)
    settle_all: bool = False  # everything they hold settles (the sink is stopping)


def sub_batch(items: Sequence[Item]) -> DecodedBatch:
    """The decoded batch of ``items`` only, with the partitions their records came from."""
    batch = DecodedBatch()
    for record, message in items:
        partition = record.partition() or 0
        if isinstance(message, BarV1):
            batch.bars.append(message)
            batch.bar_partitions[message.ticker] = partition
        elif isinstance(message, PredictionV1):
            batch.predictions.append(message)
            batch.prediction_partitions[message.ticker] = partition
        else:
            batch.closes.append((partition, message))
    return batch


class BatchWriter:
    """Writes one batch at a time through ``repository`` (built with ``delivery.deliver``)."""

    def __init__(
        self,
        repository: SinkRepository,
        delivery: CloseDelivery,
        stop: StopFlag,
        on_outage: Callable[[Exception], None],
        reachable: Callable[[], bool],
    ) -> None:
        self.repository = repository
        self.delivery = delivery
        self.stop = stop
        self.on_outage = on_outage
        self.reachable = reachable
        self.sweep = Sweep()
        self.caught_up = False

    def write(self, items: Sequence[Item]) -> WriteOutcome:
        batch = sub_batch(items)
        batch.sweep, batch.settle_all = self.sweep.partitions, self.sweep.settle_all
        batch.caught_up = self.caught_up
        return self.repository.write(batch)

    def _write_sweep(self) -> Isolated[Item, WriteOutcome]:
        """A write of no messages, retried through outages like any batch."""
        swept = write_isolating_poison(
            ["sweep"], lambda _: self.write([]), self.stop, self.on_outage, self.reachable
        )
        for _, error in swept.poison:  # no message to blame: the next sweep tries again
            logger.warning("settling what is in progress failed: %s: %s", type(error).__name__, error)
        return Isolated(results=swept.results)

    def start(
        self, flight: Flight, items: list[Item], sweep: Sweep | None = None, caught_up: bool = False
    ) -> None:
        """Write ``items`` (and check ``sweep``'s partitions) on a worker thread; ``flight.done`` is set
        when it ends, however it ends. ``caught_up``: less than a full batch was in hand."""
        self.sweep = sweep or Sweep()
        self.caught_up = caught_up

        def work() -> None:
            delivered_before = self.delivery.delivered
            try:
                flight.outcome = (
                    write_isolating_poison(items, self.write, self.stop, self.on_outage, self.reachable)
                    if items
                    else self._write_sweep()
                )
                flight.closes = self.delivery.delivered - delivered_before
            except BaseException as error:  # noqa: BLE001 (handed to the loop thread, which decides)
                flight.error = error
            finally:
                flight.done.set()

        threading.Thread(target=work, name="sink-write", daemon=True).start()
