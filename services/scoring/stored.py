"""Read what the pipeline stored in MongoDB, for scoring: frames of closes and predictions (the report and the
live view read them too), and the trainer's stored scores.

Closes and predictions come from history (``bars``, ``predictions``) plus the items still in progress
(``bars_open``, ``predictions_open``, ``portfolio_open``, see ``shared.layout``): one range query each,
whatever the number of tickers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from pymongo.database import Database

from shared.layout import in_range, open_items, portfolio_rows
from shared.mongo import BARS, METRICS, PREDICTIONS


def _time_filter(since: datetime, until: datetime) -> dict[str, Any]:
    return {"ts": {"$gte": since, "$lte": until}}


def stored_rows(
    db: Database[dict[str, Any]],
    collection: str,
    tickers: list[str] | None,
    since: datetime,
    until: datetime,
    fields: list[str],
    horizon_min: int | None = None,
) -> list[dict[str, Any]]:
    """History rows of the range (of one horizon, if given), and the in-progress ones (``<collection>_open``)
    for keys history lacks, oldest first per key. Every reader of ``bars`` and ``predictions`` goes through
    here, so the minute in progress is read the same way everywhere. A prediction is one of a (ticker, ts)
    per horizon (issue 18; a document of the earlier form is the next minute's); a bar has no horizon."""
    query = _time_filter(since, until) | ({"ticker": {"$in": tickers}} if tickers else {})
    if horizon_min is not None:
        query["horizon_min"] = horizon_min
    rows = {
        (d["ticker"], d["ts"], d.get("horizon_min") or 1): d
        for d in db[collection].find(query, dict.fromkeys(fields, 1) | {"_id": 0})
    }
    for doc in in_range(open_items(db, collection), since, until, tickers):
        key = (doc["ticker"], doc["ts"], doc.get("horizon_min") or 1)
        if horizon_min is None or key[2] == horizon_min:
            rows.setdefault(key, {k: doc.get(k) for k in fields})
    return [rows[key] for key in sorted(rows)]


def load_closes(
    db: Database[dict[str, Any]], tickers: list[str] | None, since: datetime, until: datetime
) -> pd.DataFrame:
    columns = ["ticker", "ts", "close", "final"]
    frame = pd.DataFrame(stored_rows(db, BARS, tickers, since, until, columns), columns=columns)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame["final"] = frame["final"].astype(bool)
    return frame.sort_values(["ticker", "ts"]).reset_index(drop=True)


def load_predictions(
    db: Database[dict[str, Any]],
    tickers: list[str] | None,
    since: datetime,
    until: datetime,
    horizon_min: int | None = None,
) -> pd.DataFrame:
    """Stored predictions, every horizon (``horizon_min``: those stored before horizons came are 1-minute
    ones), or only those of ``horizon_min``."""
    columns = ["ticker", "ts", "yhat", "based_on_ts", "model_version", "target", "q10", "q90", "horizon_min"]
    rows = stored_rows(db, PREDICTIONS, tickers, since, until, columns, horizon_min)
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("ts", "based_on_ts"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.sort_values(["ticker", "ts"]).reset_index(drop=True)


def load_portfolio(db: Database[dict[str, Any]], since: datetime, until: datetime) -> pd.DataFrame:
    """The merged portfolio as wide rows: one per minute, one column per ticker (NaN where it had no bar)."""
    rows = portfolio_rows(db, since, until)
    if not rows:
        return pd.DataFrame()
    wide = pd.DataFrame(
        [row.get("close", {}) for row in rows], index=pd.to_datetime([r["ts"] for r in rows], utc=True)
    )
    return wide.sort_index(axis=1)


def read_metrics(db: Database[dict[str, Any]], kind: str, lineage: str | None = None) -> list[dict[str, Any]]:
    query: dict[str, Any] = {"kind": kind}
    if lineage:
        query["lineage"] = lineage
    return list(db[METRICS].find(query, {"_id": 0}))
