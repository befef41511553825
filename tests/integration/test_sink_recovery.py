"""The sink survives kill -9, a database outage and a second member in its group: nothing lost or doubled."""

from __future__ import annotations

import contextlib
import shutil
import signal
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from shared.layout import item_id, minute_id, portfolio_rows
from shared.mongo import BARS, PORTFOLIO, database, make_client
from shared.schemas import BarV1
from shared.settings import Settings
from testkit.bars import T0, bar
from testkit.ports import free_port
from testkit.services import log_text, service_process
from testkit.stack import FERRETDB, own_ferretdb
from testkit.waiting import wait_until
from tests.integration.sink_support import bar_messages, produce

pytestmark = pytest.mark.integration

END = T0 + timedelta(days=1)
# Replays meet stored bars and rows: their late closes are merged within the bound, which the checks wait.
SETTLE_S = 10.0


def stream(tickers: int, minutes: int, revised_every: int = 5) -> list[BarV1]:
    """Bars minute by minute, each ending final; every ``revised_every``-th is first sent in progress
    (rev 0) and closed by a revision (rev 1), so a kill can fall between a provisional and its final."""
    bars: list[BarV1] = []
    for minute in range(minutes):
        for t in range(tickers):
            if (minute * tickers + t) % revised_every == 0:
                bars.append(bar(f"T{t}", minute))
                bars.append(bar(f"T{t}", minute, rev=1).model_copy(update={"final": True}))
            else:
                bars.append(bar(f"T{t}", minute).model_copy(update={"final": True}))
    return bars


def assert_exactly_latest(
    db: Database[dict[str, Any]], bars: list[BarV1], tickers: int, minutes: int
) -> None:
    latest: dict[tuple[str, datetime], BarV1] = {}
    for b in bars:
        if b.rev >= latest.get((b.ticker, b.ts), b).rev:
            latest[(b.ticker, b.ts)] = b
    docs = list(db[BARS].find({}, {"ticker": 1, "ts": 1, "rev": 1, "close": 1}))
    assert len(docs) == len(latest)
    for doc in docs:
        expected = latest[(doc["ticker"], doc["ts"])]
        assert (doc["rev"], doc["close"]) == (expected.rev, expected.close)
        assert doc["_id"] == item_id(doc["ticker"], doc["ts"])
    # Rows are written by the owner of their minute on the closes topic: one hop after the bars, and the
    # closes a replay brings for rows already stored are merged within the settle bound.
    expected_rows = {
        T0 + timedelta(minutes=m): {
            f"T{t}": latest[(f"T{t}", T0 + timedelta(minutes=m))].close for t in range(tickers)
        }
        for m in range(minutes)
    }
    with contextlib.suppress(AssertionError):
        wait_until(
            lambda: (
                {r["ts"]: r["close"] for r in db[PORTFOLIO].find({}, {"ts": 1, "close": 1})} == expected_rows
            ),
            30,
            "every portfolio row",
        )
    inserted = list(db[PORTFOLIO].find({}))
    assert all(row["_id"] == minute_id(row["ts"]) for row in inserted)
    rows = portfolio_rows(db, T0, END)
    assert len(rows) == minutes
    for row in rows:
        minute = round((row["ts"] - T0) / timedelta(minutes=1))
        assert row["close"] == {f"T{t}": latest[(f"T{t}", row["ts"])].close for t in range(tickers)}, minute


def test_kill_9_mid_stream_then_restart_writes_every_bar_exactly_once(
    settings_factory: object, tmp_path: Path
) -> None:
    settings: Settings = settings_factory(sink={"batch_max": 100, "batch_ms": 200, "settle_s": SETTLE_S})  # type: ignore[operator]
    tickers, minutes = 20, 60
    bars = stream(tickers, minutes)
    produce(settings, bar_messages(bars))
    with make_client(settings) as client:
        db = database(client, settings)
        with service_process("sink", settings, tmp_path / "first.log") as first:
            wait_until(lambda: db[BARS].count_documents({}) >= 300, 60, "the first batches")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert db[BARS].count_documents({}) < tickers * minutes, "killed too late to test a replay"
        with service_process("sink", settings, tmp_path / "second.log"):
            wait_until(lambda: db[BARS].count_documents({}) == tickers * minutes, 90, "every bar")
            wait_until(lambda: "wrote batch" in log_text(tmp_path / "second.log"), 10, "a batch")
            time.sleep(1)  # a late duplicate write would show up now
            assert_exactly_latest(db, bars, tickers, minutes)


@pytest.mark.skipif(not FERRETDB.exists(), reason="the local FerretDB binary is installed by make stack-up")
def test_database_stopped_mid_stream_then_back_loses_nothing(
    settings_factory: object, tmp_path: Path
) -> None:
    port = free_port()
    settings_factory()  # type: ignore[operator]  # first made: the fixture drops test databases through it
    settings: Settings = settings_factory(  # type: ignore[operator]
        mongo={"uri": f"mongodb://127.0.0.1:{port}"},
        sink={"batch_max": 50, "batch_ms": 100, "settle_s": SETTLE_S},
    )
    tickers, minutes = 10, 40
    bars = stream(tickers, minutes)
    half = len(bars) // 2
    data_dir = tmp_path / "ferretdb"
    log_file = tmp_path / "sink.log"
    with own_ferretdb(data_dir, port) as ferret, service_process("sink", settings, log_file):
        produce(settings, bar_messages(bars[:half]))
        with make_client(settings) as client:
            wait_until(lambda: database(client, settings)[BARS].count_documents({}) >= 50, 60, "first bars")
        ferret.stop()
        produce(settings, bar_messages(bars[half:]))
        wait_until(lambda: "database write failed" in log_text(log_file), 60, "the sink to notice the outage")
        time.sleep(2)  # the sink keeps retrying (and must not commit) while the database is away
        with own_ferretdb(data_dir, port), make_client(settings) as client:
            db = database(client, settings)
            wait_until(
                lambda: db[BARS].count_documents({}) == tickers * minutes, 90, "every bar after the outage"
            )
            time.sleep(1)
            assert_exactly_latest(db, bars, tickers, minutes)
    shutil.rmtree(data_dir, ignore_errors=True)


def test_two_sinks_in_one_group_split_the_partitions_and_write_every_bar_once(
    settings_factory: object, tmp_path: Path
) -> None:
    settings: Settings = settings_factory(sink={"batch_max": 100, "batch_ms": 200, "settle_s": SETTLE_S})  # type: ignore[operator]
    tickers, minutes = 24, 40
    bars = stream(tickers, minutes)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    produce(settings, bar_messages(bars[:10]))  # creates the topics before both sinks subscribe
    with (
        make_client(settings) as client,
        service_process("sink", settings, logs[0]),
        service_process("sink", settings, logs[1]),
    ):
        wait_until(
            lambda: all("partitions assigned" in log_text(f) for f in logs),
            60,
            "both sinks to get partitions",
        )
        produce(settings, bar_messages(bars[10:]))
        db = database(client, settings)
        wait_until(lambda: db[BARS].count_documents({}) == tickers * minutes, 90, "every bar")
        time.sleep(1)
        assert_exactly_latest(db, bars, tickers, minutes)
        # Both held partitions. Which ones is the cooperative-sticky assignor's choice (it may give one
        # sink all the bars and the other all the predictions), and a revoke hands in-hand messages to
        # the new owner unwritten, so "both wrote bars" is not a property of the sink.
        assert all("partitions assigned: test-" in log_text(f) for f in logs), "one sink held nothing"
