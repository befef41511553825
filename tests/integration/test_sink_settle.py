"""Bounded staleness on the real stack: once the feed stops, everything is in the history collections within
``PORTFOLIO_SINK_SETTLE_S`` of wall time, and a SIGTERM settles what the sink holds before it exits."""

from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.layout import open_collection, open_items
from shared.mongo import BARS, PORTFOLIO, PREDICTIONS, database, make_client
from shared.schemas import encode
from shared.settings import Settings
from testkit.bars import T0, bar, prediction
from testkit.services import service_process
from testkit.waiting import poll_until, wait_until
from tests.integration.sink_support import bar_messages, produce

pytestmark = pytest.mark.integration

TICKERS, MINUTES = 3, 20


def feed(settings: Settings) -> None:
    """Bars in progress only (never final; the last 3 minutes of each ticker have no later bar to settle
    them) and one prediction per ticker (none later): what waited for newer data before."""
    bars = [bar(f"T{t}", m, rev=r) for m in range(MINUTES) for t in range(TICKERS) for r in (0, 1)]
    produce(settings, bar_messages(bars))
    predictions = [prediction(f"T{t}", minute=MINUTES) for t in range(TICKERS)]
    produce(settings, [(p.ticker, encode(p)) for p in predictions], topic=settings.kafka.predictions_topic)


def in_history(db: Any) -> tuple[int, int, int]:
    return (
        db[BARS].count_documents({}),
        db[PORTFOLIO].count_documents({}),
        db[PREDICTIONS].count_documents({}),
    )


EVERYTHING = (TICKERS * MINUTES, MINUTES, TICKERS)


def assert_complete(db: Any) -> None:
    assert in_history(db) == EVERYTHING
    for row in db[PORTFOLIO].find():
        minute = int((row["ts"] - T0) / timedelta(minutes=1))
        assert row["close"] == {f"T{t}": bar(f"T{t}", minute, rev=1).close for t in range(TICKERS)}
    assert {d["rev"] for d in db[BARS].find()} == {1}


def test_once_the_feed_stops_everything_is_in_history_within_the_settle_bound(
    settings_factory: Any, tmp_path: Path
) -> None:
    settle_s = 6.0
    settings = settings_factory(sink={"settle_s": settle_s})
    with (
        make_client(settings) as client,
        service_process("sink", settings, tmp_path / "sink.log", PORTFOLIO_SINK_SETTLE_S=str(settle_s)),
    ):
        db = database(client, settings)
        feed(settings)
        # The moment the sink has taken in the last messages: from here on nothing touches them.
        wait_until(
            lambda: any(d["ticker"] == "T0" and d["ts"] == T0 + timedelta(minutes=MINUTES) for d in
                        open_items(db, PREDICTIONS)) or in_history(db)[2] == TICKERS,
            60,
            "the sink to take in the feed",
            every=0.1,
        )  # fmt: skip
        last_touched = time.monotonic()
        poll_until(lambda: in_history(db) == EVERYTHING, settle_s + 5, every=0.2)
        assert in_history(db) == EVERYTHING, (in_history(db), list(db["latest"].find()))
        took = time.monotonic() - last_touched
        assert took <= settle_s, f"history complete {took:.1f} s after the last message (bound {settle_s} s)"
        assert_complete(db)


def test_sigterm_settles_what_the_sink_holds_before_it_exits(settings_factory: Any, tmp_path: Path) -> None:
    # A bound far beyond the test: only the stop can settle the items in progress.
    settings = settings_factory(sink={"settle_s": 3_000.0})
    with (
        make_client(settings) as client,
        service_process("sink", settings, tmp_path / "sink.log", PORTFOLIO_SINK_SETTLE_S="3000") as sink,
    ):
        db = database(client, settings)
        feed(settings)
        wait_until(
            lambda: len(list(open_items(db, PREDICTIONS))) == TICKERS, 60, "the predictions in progress"
        )
        wait_until(lambda: len(list(open_items(db, BARS))) == TICKERS * 3, 30, "the last bars in progress")
        assert in_history(db) != EVERYTHING
        # The minute in progress, as any client reads it: plain fields, queried and sorted by the server.
        doc = db[open_collection(BARS)].find_one({"ticker": "T1"}, sort=[("ts", -1)])
        assert doc is not None and doc["ts"] == T0 + timedelta(minutes=MINUTES - 1)
        assert (doc["close"], doc["rev"], doc["partition"]) == (
            bar("T1", MINUTES - 1, rev=1).close,
            1,
            doc["partition"],
        )
        assert doc["updated_at"].tzinfo is not None or isinstance(doc["updated_at"], datetime)
        # The documented FerretDB query for the newest bar of every ticker, the one in progress included.
        newest: dict[str, Any] = {}
        for b in [*db[BARS].find({"ts": {"$gte": T0}}), *db[open_collection(BARS)].find()]:
            if b["ticker"] not in newest or (b["ts"], b["rev"]) > (
                newest[b["ticker"]]["ts"],
                newest[b["ticker"]]["rev"],
            ):
                newest[b["ticker"]] = b
        assert {t: b["ts"] for t, b in newest.items()} == {
            f"T{t}": T0 + timedelta(minutes=MINUTES - 1) for t in range(TICKERS)
        }
        assert db[open_collection(PORTFOLIO)].count_documents({}) == 0  # rows complete: settled at once
        stopped_at = time.monotonic()
        sink.send_signal(signal.SIGTERM)
        assert sink.wait(settings.common.stop_timeout_s + 5) == 0
        took = time.monotonic() - stopped_at
        assert took <= settings.common.stop_timeout_s
        assert_complete(db)
        assert list(open_items(db, BARS)) == [] and list(open_items(db, PREDICTIONS)) == []
