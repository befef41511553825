"""The span of the newest data: views default to it, not to the wall clock, so a replay of last year
looks like a live day."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.database import Database

from shared.mongo import BARS


def newest_bar_time(db: Database[dict[str, Any]], tickers: list[str] | None = None) -> datetime | None:
    query: dict[str, Any] = {"ticker": {"$in": tickers}} if tickers else {}
    doc = db[BARS].find_one(query, {"_id": 0, "ts": 1}, sort=[("ts", DESCENDING)])
    if doc is None:
        return None
    ts = doc["ts"]
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
