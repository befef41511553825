"""The storage layout the sink writes and the readers share: document ids and the in-progress items.

* ``bars`` / ``predictions`` (history): one document per (ticker, minute), ``_id`` = :func:`item_id`,
  inserted once when the item is settled (a final bar, or one a few minutes behind its ticker's newest).
* ``latest``: one small document per Kafka partition the sink reads (``_id`` = ``"bars|3"``), holding the
  items still in progress (``open``) and what was recently settled (``recent``). Its owner rewrites it.
* ``portfolio``: one document per minute, ``_id`` = :func:`minute_id`, inserted once its closes stopped
  coming; until then the row fills in the ``latest`` document of its closes partition.

Documents written by earlier versions (ObjectId ``_id``) are read the same way: readers never rely on
``_id``, and the sink resolves conflicts by the unique (ticker, ts) / ts keys.
See docs/architecture.md ("The sink's data model") for the whole model and why.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pymongo.database import Database

from shared.mongo import LATEST, PORTFOLIO

Document = dict[str, Any]


def minute_id(ts: datetime) -> str:
    """``2026-11-25T14:31Z``: the minute in UTC, the ``_id`` of a portfolio row."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def item_id(ticker: str, ts: datetime) -> str:
    """``AAPL|2026-11-25T14:31Z``: the ``_id`` of a bar or a prediction."""
    return f"{ticker}|{minute_id(ts)}"


def latest_id(kind: str, partition: int) -> str:
    return f"{kind}|{partition}"


DATE_FIELDS = ("ts", "based_on_ts", "trained_at")


def dump_json(value: Any) -> str:
    """``latest`` keeps its lists as one JSON string each: FerretDB decodes a document field by field,
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

    ``latest`` holds one document per partition, so this is one small read whatever the history's size.
    """
    for doc in db[LATEST].find({"kind": kind}, {"open": 1}):
        yield from load_json(doc.get("open"))


def portfolio_rows(db: Database[Document], since: datetime, until: datetime) -> list[Document]:
    """Portfolio rows (``ts``, ``close``) of ``[since, until]``, oldest first: those inserted into
    ``portfolio`` and those still filling in ``latest`` (the last few minutes)."""
    window = {"ts": {"$gte": since, "$lte": until}}
    rows = {doc["ts"]: doc for doc in db[PORTFOLIO].find(window, {"_id": 0, "ts": 1, "close": 1})}
    for doc in db[LATEST].find({"kind": PORTFOLIO}, {"open": 1}):
        for row in load_json(doc.get("open")):
            if since <= row["ts"] <= until:
                held = rows.setdefault(row["ts"], {"ts": row["ts"], "close": {}})
                held["close"] = row["close"] | held["close"]
    return [rows[ts] for ts in sorted(rows)]


def in_range(
    docs: Iterator[Document], since: datetime, until: datetime, tickers: list[str] | None
) -> list[Document]:
    wanted = set(tickers) if tickers else None
    return [d for d in docs if since <= d["ts"] <= until and (wanted is None or d["ticker"] in wanted)]
