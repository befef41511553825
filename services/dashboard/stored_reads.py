"""The dashboard's database reads: the window's one fill at start, and spans older than the window.

Both read history plus the items still in progress (``shared.layout``), as every reader does. A forecast's
key is (ticker, ts, horizon_min): documents written before the horizon was stored get it from
``ts - based_on_ts``.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timedelta
from typing import Any

from pymongo.database import Database

from services.dashboard.window import Window
from services.scoring.stored import stored_rows
from shared.layout import newest_bar_time
from shared.mongo import BARS, PREDICTIONS
from shared.schemas import BarV1, PredictionV1

logger = logging.getLogger(__name__)

Document = dict[str, Any]
BAR_FIELDS = ("ticker", "ts", "open", "high", "low", "close", "volume", "rev", "final")
PREDICTION_FIELDS = ("ticker", "ts", "based_on_ts", "horizon_min", "yhat", "q10", "q90", "model_version")
# A trading day has 390 minutes; a week 5 of them in 7 calendar days, and a few holidays a quarter.
_SESSION_MIN = 390
_HOLIDAY_DAYS = 4


def calendar_span(history: int) -> timedelta:
    """The calendar time that holds ``history`` trading minutes of bars (one query covers every ticker;
    each ticker is then cut to its own newest ``history`` minutes)."""
    sessions = math.ceil(history / _SESSION_MIN)
    return timedelta(days=math.ceil(sessions * 7 / 5) + _HOLIDAY_DAYS)


def horizon_of(doc: Document) -> int:
    horizon = doc.get("horizon_min")
    if isinstance(horizon, int) and horizon > 0:
        return horizon
    span: timedelta = doc["ts"] - doc["based_on_ts"]
    return max(1, round(span.total_seconds() / 60))


def read_bars(
    db: Database[Document], tickers: list[str] | None, since: datetime, until: datetime
) -> list[Document]:
    """Bars of ``[since, until]`` by (ticker, ts), oldest first; in-progress ones where history has none."""
    return stored_rows(db, BARS, tickers, since, until, list(BAR_FIELDS))


def read_predictions(
    db: Database[Document], tickers: list[str] | None, since: datetime, until: datetime
) -> list[Document]:
    """Forecasts of ``[since, until]`` by (ticker, ts, horizon_min), the in-progress ones included."""
    return [
        {k: doc.get(k) for k in PREDICTION_FIELDS} | {"horizon_min": horizon_of(doc)}
        for doc in stored_rows(db, PREDICTIONS, tickers, since, until, list(PREDICTION_FIELDS))
    ]


def stored_bar(doc: Document) -> BarV1:
    """A stored bar as the message it came from; not validated again (the sink validated it)."""
    values = doc | {
        "rev": doc.get("rev") or 0,
        "final": bool(doc.get("final")),
        "volume": doc.get("volume") or 0,
    }
    return BarV1.model_construct(**values, source="stored")


def fill(db: Database[Document], window: Window) -> dict[str, int]:
    """Fill ``window`` once from the database: the newest history of every ticker and their forecasts."""
    started = time.monotonic()
    newest = newest_bar_time(db)
    if newest is None:
        window.loaded_from(None)
        logger.info("nothing stored yet: the window fills from the stream")
        return window.counts()
    since = newest - calendar_span(window.history)
    # Before the rows arrive: the oldest minutes a ticker holds are only complete from here.
    window.loaded_from(since)
    for doc in read_bars(db, None, since, newest):
        window.add_bar(stored_bar(doc))
    for doc in read_predictions(db, None, since, newest + timedelta(days=1)):
        based_on = doc["based_on_ts"] or doc["ts"] - timedelta(minutes=doc["horizon_min"])
        window.add_prediction(PredictionV1.model_construct(**(doc | {"based_on_ts": based_on})))
    counts = window.counts()
    logger.info(
        "filled from the database in %.1f s: %d tickers, %d bars, %d forecasts, since %s",
        time.monotonic() - started,
        counts["tickers"],
        counts["bars"],
        counts["predictions"],
        since.isoformat(),
    )
    return counts
