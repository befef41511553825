"""The storage layout the sink writes and the readers share: document ids and the items in progress.

* ``bars`` / ``predictions`` (history): one document per (ticker, minute) / (ticker, minute, horizon),
  ``_id`` = :func:`item_id` / :func:`prediction_id`,
  inserted once when the item settles (final, a few minutes behind its ticker's newest, or untouched for
  half of ``PORTFOLIO_SINK_SETTLE_S``).
* ``portfolio``: one document per minute, ``_id`` = :func:`minute_id`, inserted once it settles.
* ``bars_open`` / ``predictions_open`` / ``portfolio_open`` (:func:`open_collection`): the items still in
  progress, one plain document per item with the fields of its history document (same ``_id``) plus
  ``partition`` (its writer's Kafka partition) and ``updated_at`` (when a message last changed it). Small.
* ``latest``: the sink's own bookkeeping per Kafka partition (``_id`` = ``"bars|3"``); not data.

Documents written by earlier versions (ObjectId ``_id``; items in progress as JSON in ``latest``) are read
too: readers never rely on ``_id``, and the sink resolves conflicts by the unique keys.
See docs/architecture.md ("The sink's data model") for the whole model and why.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.database import Database

from shared.mongo import BARS, LATEST, PORTFOLIO

Document = dict[str, Any]


def minute_id(ts: datetime) -> str:
    """``2026-11-25T14:31Z``: the minute in UTC, the ``_id`` of a portfolio row."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def item_id(ticker: str, ts: datetime) -> str:
    """``AAPL|2026-11-25T14:31Z``: the ``_id`` of a bar or a prediction."""
    return f"{ticker}|{minute_id(ts)}"


def prediction_id(ticker: str, ts: datetime, horizon_min: int) -> str:
    """``AAPL|2026-11-25T14:32Z|5m``: the ``_id`` of a prediction of ``ts`` made ``horizon_min`` minutes
    ahead. Predictions stored before horizons came (issue 18) have :func:`item_id` and ``horizon_min`` 1."""
    return f"{item_id(ticker, ts)}|{horizon_min}m"


def latest_id(kind: str, partition: int) -> str:
    return f"{kind}|{partition}"


def open_collection(kind: str) -> str:
    """``bars_open``: the items of ``kind`` (``bars``, ``predictions``, ``portfolio``) in progress."""
    return f"{kind}_open"


SINK_FIELDS = {"_id": 0, "partition": 0, "updated_at": 0}


DATE_FIELDS = ("ts", "based_on_ts", "trained_at", "updated_at")


def dump_json(value: Any) -> str:
    """``latest`` keeps its bookkeeping as one JSON string each: FerretDB decodes a document field by field,
    and a few hundred kB of small fields made every read and rewrite of ``latest`` cost ~1 s (measured)."""
    return json.dumps(value, default=_iso, separators=(",", ":"))


def load_json(text: str | None) -> list[Document]:
    """The list :func:`dump_json` wrote, with the date fields (``DATE_FIELDS``) as datetimes again."""
    items: list[Document] = json.loads(text or "[]")
    for item in items:
        for name in DATE_FIELDS:
            if isinstance(item.get(name), str):
                item[name] = datetime.fromisoformat(item[name])
    return items


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in latest")


def open_items(db: Database[Document], kind: str) -> Iterator[Document]:
    """The in-progress documents of ``kind`` (``bars`` or ``predictions``), same fields as in history.

    One read of a small collection whatever the history's size (plus, for a database the earlier layout
    wrote, the JSON its ``latest`` documents hold until the sink rewrites them)."""
    yield from db[open_collection(kind)].find({}, SINK_FIELDS)
    for doc in db[LATEST].find({"kind": kind, "open": {"$exists": True}}, {"open": 1}):
        yield from load_json(doc.get("open"))


def newest_bar_time(
    db: Database[Document], tickers: list[str] | None = None, in_progress: bool = True
) -> datetime | None:
    """The newest bar's minute (of ``tickers``, all when None; the minute in progress included unless
    ``in_progress`` is False). From small collections when they know it: ``bars_open`` and the ``recent``
    entries of the sink's ``latest`` documents, which keep each ticker's last settled bars. Only a database
    without them (one the earlier layout or another writer filled) pays one sorted query of ``bars``, a
    scan on FerretDB (over the 120 s socket timeout at 1M bars under load: measured)."""
    wanted = set(tickers) if tickers else None
    known = [
        entry["ts"]
        for doc in db[LATEST].find({"kind": BARS}, {"recent": 1})
        for entry in load_json(doc.get("recent"))
        if wanted is None or entry["ticker"] in wanted
    ]
    if in_progress:
        known += [d["ts"] for d in open_items(db, BARS) if wanted is None or d.get("ticker") in wanted]
    if not known:
        query: Document = {"ticker": {"$in": sorted(wanted)}} if wanted else {}
        doc = db[BARS].find_one(query, {"_id": 0, "ts": 1}, sort=[("ts", DESCENDING)])
        known = [doc["ts"]] if doc else []
    stamps = [datetime.fromisoformat(ts) if isinstance(ts, str) else ts for ts in known]
    return max((ts if ts.tzinfo else ts.replace(tzinfo=UTC) for ts in stamps), default=None)


def portfolio_rows(db: Database[Document], since: datetime, until: datetime) -> list[Document]:
    """Portfolio rows (``ts``, ``close``) of ``[since, until]``, oldest first: those inserted into
    ``portfolio`` and those still filling in ``portfolio_open`` (the last minutes)."""
    window = {"ts": {"$gte": since, "$lte": until}}
    rows = {doc["ts"]: doc for doc in db[PORTFOLIO].find(window, {"_id": 0, "ts": 1, "close": 1})}
    filling = list(db[open_collection(PORTFOLIO)].find(window, {"_id": 0, "ts": 1, "close": 1}))
    for doc in db[LATEST].find({"kind": PORTFOLIO, "open": {"$exists": True}}, {"open": 1}):
        filling += [row for row in load_json(doc.get("open")) if since <= row["ts"] <= until]
    for row in filling:
        held = rows.setdefault(row["ts"], {"ts": row["ts"], "close": {}})
        held["close"] = row["close"] | held["close"]
    return [rows[ts] for ts in sorted(rows)]


def in_range(
    docs: Iterator[Document], since: datetime, until: datetime, tickers: list[str] | None
) -> list[Document]:
    wanted = set(tickers) if tickers else None
    return [d for d in docs if since <= d["ts"] <= until and (wanted is None or d["ticker"] in wanted)]
