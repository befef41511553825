"""Late revisions of stored bars and late closes into stored portfolio rows, on the real FerretDB: each batch
costs a constant number of database commands whatever its size (counted by a command listener), and an
older ``rev`` never overwrites a newer one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from pymongo.database import Database

from shared.mongo import BARS, PORTFOLIO, database, ensure_indexes, make_client
from shared.schemas import BarV1
from shared.settings import Settings
from testkit.bars import T0, bar
from tests.integration.sink_support import PARTITIONS, CommandCounter, Sink

pytestmark = pytest.mark.integration

TICKERS, MINUTES = 50, 100  # 5,000 bars and 100 rows of 50 closes


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
