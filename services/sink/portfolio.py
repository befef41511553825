"""The merged ``portfolio`` rows, each written by exactly one sink.

A sink that settles a bar into history publishes its close to the internal topic ``<bars topic>.closes``
keyed by the minute. The sink group consumes that topic too, so every minute's closes reach the one
member that owns its partition, and only that member writes the row: no two writers ever race on a row
(FerretDB applies an update as an unlocked read-modify-write), so no repair pass is needed.

Rows carry ``rev.<TICKER>`` beside ``close.<TICKER>`` so a close replayed late never overwrites a newer
one. The owner caches the rows it wrote (it is their only writer while it owns the partition; the cache
is dropped on every rebalance) so a row filled over several batches is read from the database once.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pymongo.collection import Collection

from services.sink.inserts import WriteConflict, insert_new
from shared.layout import minute_id
from shared.schemas import MessageError, MinuteTs, format_ts

CACHED_ROWS = 4_096
Document = dict[str, Any]


def closes_topic(bars_topic: str) -> str:
    return f"{bars_topic}.closes"


class CloseV1(BaseModel):
    """A settled bar's close on the internal closes topic. Key: the minute."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    v: int = 1
    ticker: str
    ts: MinuteTs
    close: float
    rev: int


def encode_close(ticker: str, ts: datetime, close: float, rev: int) -> tuple[str, bytes]:
    """``(key, value)`` of the close message."""
    value = {"v": 1, "ticker": ticker, "ts": format_ts(ts), "close": close, "rev": rev}
    return minute_id(ts), json.dumps(value).encode()


def decode_close(value: bytes | None) -> CloseV1:
    try:
        return CloseV1.model_validate_json(value or b"")
    except ValidationError as error:
        raise MessageError("invalid", str(error)[:500]) from error


@dataclass
class _Row:
    stored_id: Any
    closes: dict[str, float]
    revs: dict[str, int]


class PortfolioWriter:
    """Writes the rows of the closes partitions this sink owns."""

    def __init__(self, collection: Collection[Document]) -> None:
        self.collection = collection
        self._rows: OrderedDict[datetime, _Row] = OrderedDict()

    def forget(self) -> None:
        """Partitions moved: another sink may have written rows meanwhile."""
        self._rows.clear()

    def write(self, closes: Iterable[CloseV1]) -> int:
        """Merge ``closes`` into their rows; return how many rows were written."""
        best: dict[datetime, dict[str, CloseV1]] = {}
        for close in closes:
            held = best.setdefault(close.ts, {}).get(close.ticker)
            if held is None or close.rev >= held.rev:
                best[close.ts][close.ticker] = close
        if not best:
            return 0
        self._load([ts for ts in best if ts not in self._rows])
        new: list[Document] = []
        updates: list[tuple[datetime, dict[str, Any]]] = []
        for ts, by_ticker in sorted(best.items()):
            row = self._rows.get(ts)
            changed = {
                t: c
                for t, c in by_ticker.items()
                if row is None or t not in row.closes or c.rev > row.revs.get(t, -1)
            }
            if not changed:
                continue
            if row is None:
                new.append(
                    {
                        "_id": minute_id(ts),
                        "ts": ts,
                        "close": {t: c.close for t, c in sorted(changed.items())},
                        "rev": {t: c.rev for t, c in sorted(changed.items())},
                    }
                )
            else:
                fields = {f"close.{t}": c.close for t, c in changed.items()}
                updates.append((ts, fields | {f"rev.{t}": c.rev for t, c in changed.items()}))
        if insert_new(self.collection, new):
            # A row we did not know: written by an earlier version or before a rebalance. Read it again.
            self.forget()
            raise WriteConflict("a portfolio row existed already; the batch is written again")
        for doc in new:
            self._remember(doc["ts"], _Row(doc["_id"], dict(doc["close"]), dict(doc["rev"])))
        # One update command per row: FerretDB 1.24 can hang on large multi-statement update batches.
        for ts, fields in updates:
            row = self._rows[ts]
            self.collection.update_one({"_id": row.stored_id}, {"$set": fields})
            for name, value in fields.items():
                kind, ticker = name.split(".", 1)
                if kind == "close":
                    row.closes[ticker] = float(value)
                else:
                    row.revs[ticker] = int(value)
        return len(new) + len(updates)

    def _load(self, minutes: list[datetime]) -> None:
        if not minutes:
            return
        # By ts, not _id: rows of the earlier layout have an ObjectId; one query for the whole batch.
        for doc in self.collection.find({"ts": {"$in": minutes}}):
            self._remember(doc["ts"], _Row(doc["_id"], dict(doc.get("close", {})), dict(doc.get("rev", {}))))

    def _remember(self, ts: datetime, row: _Row) -> None:
        self._rows[ts] = row
        self._rows.move_to_end(ts)
        while len(self._rows) > CACHED_ROWS:
            self._rows.popitem(last=False)


Publish = Callable[[str, bytes], None]
