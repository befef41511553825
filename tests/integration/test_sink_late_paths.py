"""Late revisions of stored bars and late closes into stored portfolio rows, on the real FerretDB: each batch
costs a constant number of database commands whatever its size (counted by a command listener), and an
older ``rev`` never overwrites a newer one."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from pymongo import monitoring
from pymongo.database import Database

from services.sink.batch import DecodedBatch
from services.sink.close_delivery import CloseDelivery
from services.sink.portfolio import closes_topic, decode_close
from services.sink.repository import SinkRepository, WriteOutcome
from shared.kafka import ReliableProducer, ensure_topics
from shared.lifecycle import StopFlag
from shared.mongo import BARS, PORTFOLIO, database, ensure_indexes, make_client
from shared.schemas import BarV1
from shared.settings import Settings
from testkit.bars import T0, bar

pytestmark = pytest.mark.integration

TICKERS, MINUTES = 50, 100  # 5,000 bars and 100 rows of 50 closes
PARTITIONS = 6


class CommandCounter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in ("ping", "endSessions", "hello", "isMaster"):
            self.commands[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class Sink:
    """A sink's repository on the test's database, its closes delivered to the real closes topic and kept, so
    they can be written as the closes partition's owner would."""

    def __init__(self, settings: Settings, db: Database[dict[str, Any]], counter: CommandCounter) -> None:
        ensure_topics(settings, [*settings.kafka.topics(), closes_topic(settings.kafka.bars_topic)])
        producer = ReliableProducer(settings, client_id="test-late-closes")
        self.delivery = CloseDelivery(producer, closes_topic(settings.kafka.bars_topic), StopFlag())
        self.closes: list[bytes] = []
        self.repository = SinkRepository(db, self._deliver)
        self.counter = counter

    def _deliver(self, closes: Sequence[tuple[str, bytes]]) -> None:
        self.delivery.deliver(closes)
        self.closes += [value for _, value in closes]

    def write(self, batch: DecodedBatch) -> tuple[WriteOutcome, Counter[str], float]:
        self.counter.commands.clear()
        started = time.perf_counter()
        outcome = self.repository.write(batch)
        return outcome, Counter(self.counter.commands), time.perf_counter() - started

    def write_bars(self, bars: list[BarV1]) -> tuple[WriteOutcome, Counter[str], float]:
        partitions = {b.ticker: int(b.ticker[1:]) % PARTITIONS for b in bars}
        return self.write(DecodedBatch(bars=bars, bar_partitions=partitions))

    def write_closes(self) -> tuple[WriteOutcome, Counter[str], float]:
        closes = [(0, decode_close(value)) for value in self.closes]
        self.closes = []
        return self.write(DecodedBatch(closes=closes))


@pytest.fixture
def sink(integration_settings: Settings) -> Iterator[tuple[Sink, Database[dict[str, Any]]]]:
    counter = CommandCounter()
    with make_client(integration_settings, event_listeners=[counter]) as client:
        db = database(client, integration_settings)
        ensure_indexes(db)
        yield Sink(integration_settings, db, counter), db


def grid(rev: int, shift: float = 0.0) -> list[BarV1]:
    return [
        bar(f"T{t}", m, rev=rev, close=100.0 + t + m / 100 + shift).model_copy(update={"final": True})
        for t in range(TICKERS)
        for m in range(MINUTES)
    ]


# Per batch, whatever its size: the state read, the redo log's check, the insert, one find of what clashed,
# the log written, one delete and one insert, the log cleared, and the partitions' state rewritten.
MOST_COMMANDS = 12 + PARTITIONS


def test_5000_late_revisions_and_late_closes_are_written_in_a_constant_number_of_commands(
    sink: tuple[Sink, Database[dict[str, Any]]],
) -> None:
    writer, db = sink
    writer.write_bars(grid(rev=2))
    writer.write_closes()
    assert db[BARS].count_documents({}) == TICKERS * MINUTES
    assert db[PORTFOLIO].count_documents({}) == MINUTES  # every row complete: settled at once

    revised, commands, seconds = writer.write_bars(grid(rev=3, shift=0.5))
    # The measured figures, for the note (pytest -s shows them).
    print(f"5,000 late revisions: {sum(commands.values())} commands {dict(commands)} in {seconds:.2f} s")  # noqa: T201 (report)
    assert revised.bars_updated == TICKERS * MINUTES
    assert sum(commands.values()) <= MOST_COMMANDS
    assert commands["update"] <= PARTITIONS and commands["delete"] <= 2

    merged, commands, seconds = writer.write_closes()
    print(f"5,000 late closes: {sum(commands.values())} commands {dict(commands)} in {seconds:.2f} s")  # noqa: T201 (report)
    assert merged.portfolio_rows == MINUTES
    assert sum(commands.values()) <= MOST_COMMANDS
    assert commands["update"] <= 1 and commands["delete"] <= 2

    # Older revisions, late, in their own batch: neither bars nor rows take them.
    stale, commands, _ = writer.write_bars(grid(rev=1, shift=9.0))
    assert stale.bars_updated == 0 and stale.revisions_ignored == TICKERS * MINUTES
    writer.write_closes()

    newest = {(b.ticker, b.ts): b.close for b in grid(rev=3, shift=0.5)}
    stored = {(d["ticker"], d["ts"]): (d["rev"], d["close"]) for d in db[BARS].find()}
    assert stored == {key: (3, close) for key, close in newest.items()}
    rows = {d["ts"]: d for d in db[PORTFOLIO].find()}
    assert len(rows) == MINUTES
    for m in range(MINUTES):
        row = rows[T0 + timedelta(minutes=m)]
        assert row["close"] == {f"T{t}": newest[(f"T{t}", row["ts"])] for t in range(TICKERS)}
        assert set(row["rev"].values()) == {3}
    assert db["replacing"].count_documents({}) == 0
