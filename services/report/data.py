"""Read what the pipeline stored in MongoDB into frames for the report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from pymongo.database import Database

from shared.mongo import BARS, PORTFOLIO, PREDICTIONS


def _time_filter(since: datetime, until: datetime) -> dict[str, Any]:
    return {"ts": {"$gte": since, "$lte": until}}


def load_closes(
    db: Database[dict[str, Any]], tickers: list[str] | None, since: datetime, until: datetime
) -> pd.DataFrame:
    query = _time_filter(since, until) | ({"ticker": {"$in": tickers}} if tickers else {})
    rows = list(db[BARS].find(query, {"_id": 0, "ticker": 1, "ts": 1, "close": 1, "final": 1}))
    frame = pd.DataFrame(rows, columns=["ticker", "ts", "close", "final"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame["final"] = frame["final"].astype(bool)
    return frame.sort_values(["ticker", "ts"]).reset_index(drop=True)


def load_predictions(
    db: Database[dict[str, Any]], tickers: list[str] | None, since: datetime, until: datetime
) -> pd.DataFrame:
    query = _time_filter(since, until) | ({"ticker": {"$in": tickers}} if tickers else {})
    fields = {"_id": 0, "ticker": 1, "ts": 1, "yhat": 1, "based_on_ts": 1, "model_version": 1, "target": 1,
              "q10": 1, "q90": 1}  # fmt: skip
    frame = pd.DataFrame(list(db[PREDICTIONS].find(query, fields)), columns=[k for k in fields if k != "_id"])
    for column in ("ts", "based_on_ts"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.sort_values(["ticker", "ts"]).reset_index(drop=True)


def load_portfolio(db: Database[dict[str, Any]], since: datetime, until: datetime) -> pd.DataFrame:
    """The merged portfolio as wide rows: one per minute, one column per ticker (NaN where it had no bar)."""
    rows = list(db[PORTFOLIO].find(_time_filter(since, until), {"_id": 0, "ts": 1, "close": 1}).sort("ts", 1))
    if not rows:
        return pd.DataFrame()
    wide = pd.DataFrame(
        [row.get("close", {}) for row in rows], index=pd.to_datetime([r["ts"] for r in rows], utc=True)
    )
    return wide.sort_index(axis=1)
