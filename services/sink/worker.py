"""The sink's write worker: one batch written on its own thread through poison isolation.

The loop thread keeps polling (partitions paused) while :meth:`BatchWriter.start` writes; the worker
hands its result to the :class:`~services.sink.flight.Flight` and sets ``flight.done``.

Each write that :func:`~services.sink.isolation.write_isolating_poison` makes (the whole batch, a retry,
a half) is one call of :meth:`SinkRepository.write` on a :class:`DecodedBatch` rebuilt from those
items, with no retry of its own: isolation owns retries, backoff and bisection.

The closes the repository publishes for the portfolio rows' owners are collected here (each once,
however often a retried or split write published it), not produced at once: the loop produces them
after the write and flushes them before it stores or commits the batch's offsets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from services.sink.batch import DecodedBatch
from services.sink.flight import Flight, Item
from services.sink.isolation import write_isolating_poison
from services.sink.repository import SinkRepository, WriteOutcome
from shared.lifecycle import StopFlag
from shared.schemas import BarV1, PredictionV1

Close = tuple[str, bytes]  # (key, value) on the closes topic


class Outbox:
    """The closes published by the write in progress, each once, in order (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closes: dict[Close, None] = {}

    def publish(self, key: str, value: bytes) -> None:
        with self._lock:
            self._closes[(key, value)] = None

    def take(self) -> list[Close]:
        with self._lock:
            closes, self._closes = list(self._closes), {}
        return closes


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
    """Writes one batch at a time through ``repository`` (built with ``outbox.publish``)."""

    def __init__(
        self,
        repository: SinkRepository,
        outbox: Outbox,
        stop: StopFlag,
        on_outage: Callable[[Exception], None],
        reachable: Callable[[], bool],
    ) -> None:
        self.repository = repository
        self.outbox = outbox
        self.stop = stop
        self.on_outage = on_outage
        self.reachable = reachable

    def write(self, items: Sequence[Item]) -> WriteOutcome:
        return self.repository.write(sub_batch(items))

    def start(self, flight: Flight, items: list[Item]) -> None:
        """Write ``items`` on a worker thread; ``flight.done`` is set when it ends, however it ends."""

        def work() -> None:
            self.outbox.take()  # nothing left over from an earlier batch given up
            try:
                flight.outcome = write_isolating_poison(
                    items, self.write, self.stop, self.on_outage, self.reachable
                )
                flight.closes = self.outbox.take()
            except BaseException as error:  # handed to the loop thread, which decides
                flight.error = error
            finally:
                flight.done.set()

        threading.Thread(target=work, name="sink-write", daemon=True).start()
