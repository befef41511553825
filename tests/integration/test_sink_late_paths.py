"""Late revisions of stored bars and late closes into stored portfolio rows, on the real FerretDB: each batch
costs a constant number of database commands whatever its size (counted by a command listener), a backlog
of them one find and one delete of each history collection (each a full scan on FerretDB) however many
batches it spans, and an older ``rev`` never overwrites a newer one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from pymongo.database import Database

from services.sink import late, replace
from services.sink.batch import DecodedBatch
from services.sink.late import LATE
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


# Per batch, whatever its size: the state read, the redo log's check, the insert, the late items gathered
# (one insert per partition), and the partitions' state rewritten. Where they are applied: one find of
# what clashed, the log written, one delete and one insert, the log cleared, the late items dropped.
MOST_COMMANDS = 12 + 2 * PARTITIONS
BATCHES = 5  # the backlog: 5,000 late revisions in 5 batches of 1,000, their closes after each
SCANS = ("find", "delete", "update")


def late_items(db: Database[dict[str, Any]]) -> int:
    return sum(db[n].count_documents({}) for n in db.list_collection_names() if n.startswith(f"{LATE}_"))


def scans(counter: CommandCounter, collection: str) -> int:
    """Commands that read or change stored documents of ``collection``: each one scans it on FerretDB."""
    return sum(n for (name, coll), n in counter.by_collection.items() if coll == collection and name in SCANS)


def test_a_backlog_of_late_revisions_and_late_closes_costs_one_scan_pair_per_history_collection(
    sink: tuple[Sink, Database[dict[str, Any]]],
) -> None:
    writer, db = sink
    writer.write_bars(grid(rev=2))
    writer.write_closes()
    assert db[BARS].count_documents({}) == TICKERS * MINUTES
    assert db[PORTFOLIO].count_documents({}) == MINUTES  # every row complete: settled at once

    revisions = grid(rev=3, shift=0.5)
    per_batch: list[int] = []
    writer.counter.by_collection.clear()
    started = time.perf_counter()
    for n in range(BATCHES):
        share = len(revisions) // BATCHES
        gathered, commands, _ = writer.write_bars(revisions[n * share : (n + 1) * share])
        per_batch.append(sum(commands.values()))
        assert gathered.bars_updated == 0 and gathered.late_gathered == share
        closes, commands, _ = writer.write_closes()
        per_batch.append(sum(commands.values()))
        assert closes.late_gathered == MINUTES  # a share of every row, late
    # Not yet due: history holds the revisions' predecessors, the late items wait in ``late``.
    assert scans(writer.counter, BARS) == 0 and scans(writer.counter, PORTFOLIO) == 0
    assert {d["rev"] for d in db[BARS].find({}, {"rev": 1})} == {2}
    assert late_items(db) == TICKERS * MINUTES + BATCHES * MINUTES
    writer.counter.by_collection.clear()  # the test's own reads

    # Half the settle bound later a sweep of the partitions applies them all, one find and one delete each.
    writer.skipped += writer.repository.idle
    sweep = {BARS: set(range(PARTITIONS)), PORTFOLIO: {0}}
    applied, commands, _ = writer.write(DecodedBatch(sweep=sweep))
    seconds = time.perf_counter() - started
    per_batch.append(sum(commands.values()))
    print(  # noqa: T201 (report: pytest -s shows the measured figures)
        f"{len(revisions)} late revisions in {BATCHES} batches and their closes: {sum(per_batch)} commands, "
        f"scans of bars {scans(writer.counter, BARS)}, of portfolio {scans(writer.counter, PORTFOLIO)}, "
        f"{seconds:.2f} s; the applying write: {dict(commands)}"
    )
    assert applied.bars_updated == TICKERS * MINUTES and applied.portfolio_rows == MINUTES
    assert max(per_batch) <= MOST_COMMANDS
    assert scans(writer.counter, BARS) == 2 and scans(writer.counter, PORTFOLIO) == 2
    assert late_items(db) == 0

    # Older revisions, late, in their own batch and applied at a stop: neither bars nor rows take them.
    remembered, _, _ = writer.write_bars(grid(rev=1, shift=9.0))
    writer.write_closes()
    stale, _, _ = writer.write(DecodedBatch(sweep=sweep, settle_all=True))
    assert remembered.bars_updated == stale.bars_updated == 0
    assert remembered.revisions_ignored + stale.revisions_ignored == TICKERS * MINUTES

    newest = {(b.ticker, b.ts): b.close for b in revisions}
    stored = {(d["ticker"], d["ts"]): (d["rev"], d["close"]) for d in db[BARS].find()}
    assert stored == {key: (3, close) for key, close in newest.items()}
    rows = {d["ts"]: d for d in db[PORTFOLIO].find()}
    assert len(rows) == MINUTES
    for m in range(MINUTES):
        row = rows[T0 + timedelta(minutes=m)]
        assert row["close"] == {f"T{t}": newest[(f"T{t}", row["ts"])] for t in range(TICKERS)}
        assert set(row["rev"].values()) == {3}
    assert db["replacing"].count_documents({}) == 0
    assert late_items(db) == 0


def test_partitions_handed_over_while_their_late_items_are_applied_are_applied_again_by_their_new_owner(
    sink: tuple[Sink, Database[dict[str, Any]]],
    integration_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writer, db = sink
    writer.write_bars(grid(rev=2))
    writer.write_closes()
    revisions = grid(rev=3, shift=0.5)
    writer.write_bars(revisions)
    handed_over = [0, 1]
    held = {p: db[f"{LATE}_{BARS}_{p}"].count_documents({}) for p in handed_over}
    assert all(held.values())

    # The rebalance's revoke callback runs on the loop's thread while the worker's write is applying: here
    # it lands between the replacement and the drop of the entries, the narrowest place.
    applying = replace.replace_documents

    def revoked_meanwhile(*args: Any, **kwargs: Any) -> None:
        applying(*args, **kwargs)
        writer.repository.forget(BARS, handed_over)

    monkeypatch.setattr(late, "replace_documents", revoked_meanwhile)
    writer.skipped += writer.repository.idle
    applied, _, _ = writer.write(DecodedBatch(sweep={BARS: set(range(PARTITIONS))}))
    assert applied.bars_updated == TICKERS * MINUTES
    # What the handed-over partitions gathered stays for their new owner; the others' entries are gone.
    left = {n for n in db.list_collection_names() if n.startswith(f"{LATE}_{BARS}_")}
    assert left == {f"{LATE}_{BARS}_{p}" for p in handed_over}
    assert {p: db[f"{LATE}_{BARS}_{p}"].count_documents({}) for p in handed_over} == held

    # The new owner reads them back and applies them again: history already holds them, so nothing moves.
    monkeypatch.undo()
    owner = Sink(integration_settings, db, writer.counter)
    owner.skipped = writer.skipped + owner.repository.idle
    again, _, _ = owner.write(DecodedBatch(sweep={BARS: set(handed_over)}))
    assert again.bars_updated == 0 and again.bars_replayed == sum(held.values())
    assert late_items(db) == 0
    newest = {(b.ticker, b.ts): b.close for b in revisions}
    stored = {(d["ticker"], d["ts"]): (d["rev"], d["close"]) for d in db[BARS].find()}
    assert stored == {key: (3, close) for key, close in newest.items()}
