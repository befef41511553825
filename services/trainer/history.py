"""Recent closes from the ``bars`` collection (written by the sink), so a restart does not depend on the
topic's retention."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from pymongo import DESCENDING
from pymongo.database import Database

from shared.mongo import BARS


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def recent_bars(
    db: Database[dict[str, Any]], tickers: list[str], minutes: int
) -> Iterator[tuple[str, datetime, float, int]]:
    """``(ticker, ts, close, rev)`` of the last ``minutes`` minutes before each ticker's newest stored bar,
    oldest first. Relative to the newest bar, not to now: a replayed or weekend history is still recent."""
    for ticker in tickers:
        newest = db[BARS].find_one({"ticker": ticker}, {"ts": 1}, sort=[("ts", DESCENDING)])
        newest_ts = _as_datetime(newest["ts"]) if newest else None
        if newest_ts is None:
            continue
        since = newest_ts - timedelta(minutes=minutes)
        cursor = (
            db[BARS]
            .find({"ticker": ticker, "ts": {"$gt": since}}, {"_id": 0, "ts": 1, "close": 1, "rev": 1})
            .sort("ts", 1)
        )
        for doc in cursor:
            ts = _as_datetime(doc.get("ts"))
            close = doc.get("close")
            if ts is not None and isinstance(close, int | float):
                yield ticker, ts, float(close), int(doc.get("rev", 0) or 0)
