"""The storage design before issue 9, kept only as the benchmark's baseline: every revision an update of
the ``bars`` document found by (ticker, ts), every close a ``$set`` on the portfolio row found by ts.

Condensed from services/sink/repository.py at commit ee623db (single sink, so no repair pass). Its
guarded updates are sent one statement per command here: the original sent them in one ``bulk_write``,
which on FerretDB 1.24 can hang the server once about 100 statements match (and the server is shared).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo.database import Database

from services.sink.inserts import insert_new
from services.sink.writes import bar_document, bar_ohlcv, bar_values, latest_bars
from shared.mongo import BARS, PORTFOLIO
from shared.schemas import BarV1


def write_original(db: Database[dict[str, Any]], batch: Sequence[BarV1], deadline: float) -> float:
    """Write ``batch`` as the original did; stop at ``deadline`` (``time.perf_counter``). Returns the
    share of the batch's bars written (1.0 unless the time box ran out inside it)."""
    bars = latest_bars(batch).items
    now = datetime.now(UTC)
    conflicts = [bars[i] for i in insert_new(db[BARS], [bar_document(b, now) for b in bars])]
    current = [b for b in bars if b not in set(conflicts)]
    if conflicts:
        keys = {(b.ticker, b.ts) for b in conflicts}
        query = {
            "ticker": {"$in": sorted({t for t, _ in keys})},
            "ts": {"$in": sorted({ts for _, ts in keys})},
        }
        stored = {(d["ticker"], d["ts"]): d for d in db[BARS].find(query) if (d["ticker"], d["ts"]) in keys}
        for n, b in enumerate(conflicts):
            if time.perf_counter() > deadline:
                return (len(bars) - len(conflicts) + n) / len(bars)
            doc = stored.get((b.ticker, b.ts))
            values = (
                (doc["open"], doc["high"], doc["low"], doc["close"], doc["volume"], doc["final"])
                if doc
                else None
            )
            if doc is None or (b.rev > doc["rev"] and bar_ohlcv(b) != values):
                db[BARS].update_one(
                    {"ticker": b.ticker, "ts": b.ts, "rev": {"$lt": b.rev}}, {"$set": bar_values(b, now)}
                )
                current.append(b)
            elif b.rev >= doc["rev"]:
                current.append(b)
    rows: dict[datetime, dict[str, float]] = defaultdict(dict)
    for b in current:
        rows[b.ts][b.ticker] = b.close
    minutes = sorted(rows)
    existing = [
        minutes[i] for i in insert_new(db[PORTFOLIO], [{"ts": ts, "close": rows[ts]} for ts in minutes])
    ]
    for ts in existing:
        db[PORTFOLIO].update_one({"ts": ts}, {"$set": {f"close.{t}": c for t, c in sorted(rows[ts].items())}})
    return 1.0


def load_history_original(db: Database[dict[str, Any]], tickers: list[str], minutes: int) -> int:
    """Today's trainer loader: two queries per ticker (newest ts, then the range). Returns bars read."""
    from datetime import timedelta

    count = 0
    for ticker in tickers:
        newest = db[BARS].find_one({"ticker": ticker}, {"ts": 1}, sort=[("ts", -1)])
        if newest is None:
            continue
        since = newest["ts"] - timedelta(minutes=minutes)
        count += sum(
            1
            for _ in db[BARS]
            .find({"ticker": ticker, "ts": {"$gt": since}}, {"_id": 0, "ts": 1})
            .sort("ts", 1)
        )
    return count
