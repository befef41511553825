"""Recent closes from the ``bars`` collection (written by the sink), so a restart does not depend on the
topic's retention.

One range query for all tickers, not two per ticker: on FerretDB 1.24 every query scans the whole
collection, so the number of queries, not their width, decides how long a start-up takes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from pymongo.database import Database

from shared.layout import newest_bar_time
from shared.mongo import BARS

BATCH = 10_000


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return None


def recent_bars(
    db: Database[dict[str, Any]], tickers: list[str], minutes: int
) -> Iterator[tuple[str, datetime, float, int, float, float]]:
    """``(ticker, ts, close, rev, high, low)`` (NaN for a missing high or low: the range model reads
    them) of the last ``minutes`` minutes before the newest stored bar of
    ``tickers``, oldest first. Relative to the newest bar, not to now: a replayed or weekend history is
    still recent."""
    if not tickers:
        return
    wanted = {"ticker": {"$in": sorted(tickers)}}
    newest_ts = newest_bar_time(db, tickers, in_progress=False)
    if newest_ts is None:
        return
    yield from _read(db, wanted | {"ts": {"$gt": newest_ts - timedelta(minutes=minutes)}})


def bars_after(
    db: Database[dict[str, Any]], tickers: list[str], after: datetime
) -> Iterator[tuple[str, datetime, float, int, float, float]]:
    """As :func:`recent_bars`, only the bars after ``after`` (a restored checkpoint's data time): one ranged
    read for all ``tickers``, however long the history stored before it. Not bounded by the newest stored
    bar (that would be a second scan where the sink's ``latest`` documents do not know it): a gap longer than
    the series hold is trimmed as it is ingested."""
    if tickers:
        # ``ts`` first: FerretDB evaluates the filter in Go on every stored document, keys in order, and
        # stops at the first that fails: the documents before ``after`` cost one comparison, not ~250.
        yield from _read(db, {"ts": {"$gt": after}, "ticker": {"$in": sorted(tickers)}})


def _read(
    db: Database[dict[str, Any]], query: dict[str, Any]
) -> Iterator[tuple[str, datetime, float, int, float, float]]:
    fields = {"_id": 0, "ticker": 1, "ts": 1, "close": 1, "rev": 1, "high": 1, "low": 1}
    rows = []
    # Sorted here, not by the server: FerretDB sorts a whole result in memory on its side too.
    for doc in db[BARS].find(query, fields, batch_size=BATCH):
        ts = _as_datetime(doc.get("ts"))
        close = doc.get("close")
        if ts is not None and isinstance(close, int | float):
            high, low = (doc.get(k) for k in ("high", "low"))
            rows.append(
                (ts, doc["ticker"], float(close), int(doc.get("rev", 0) or 0), _number(high), _number(low))
            )
    rows.sort()
    for ts, ticker, close, rev, high, low in rows:
        yield ticker, ts, close, rev, high, low


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan
