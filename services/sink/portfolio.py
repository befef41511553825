"""The merged ``portfolio`` rows, each written by exactly one sink.

A sink that settles a bar into history publishes its close to the internal topic ``<bars topic>.closes``
keyed by the minute. The sink group consumes that topic too, so every minute's closes reach the one
member that owns its partition, and only that member writes the row: no two writers ever race on a row
(FerretDB applies an update as an unlocked read-modify-write), so no repair pass is needed.

A row fills in ``portfolio_open`` (one plain document per row, rewritten by its owner) while its closes
come (rows hold 500 closes: an update of ``portfolio`` would scan every big row on FerretDB) and is
inserted once: when it holds every ticker the partition saw lately, when the partition has seen a minute
``ROW_SETTLE_AFTER`` later, or when untouched for half of ``PORTFOLIO_SINK_SETTLE_S``. Closes for rows
already inserted (rare but for a backfill) are gathered (``services.sink.late``) and merged into them
together when due (``services.sink.replace``). Rows carry
``rev.<TICKER>`` beside ``close.<TICKER>`` so a close replayed late never overwrites
a newer one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from pymongo.database import Database

from services.sink.inserts import WriteConflict, insert_new
from services.sink.late import LateItems
from services.sink.replace import Replacement, replace_documents, rewrite_open, whole_minutes
from shared.layout import dump_json, latest_id, load_json, minute_id, open_collection
from shared.mongo import LATEST, PORTFOLIO
from shared.schemas import Count, MessageError, MinuteTs, Price, Ticker, format_ts

# Later than a provisional bar settles (services.sink.open_items.SETTLE_AFTER) plus the closes' hop.
ROW_SETTLE_AFTER = timedelta(minutes=10)
RECENT_ROWS = 60
# A ticker without a close for this long (data time) is no longer waited for: a row lacking only such
# tickers is complete. Longer than ROW_SETTLE_AFTER, so a backlog drained unevenly across the bars
# partitions still waits (up to ROW_SETTLE_AFTER) for the tickers of the slower partitions.
TICKERS_SEEN_FOR = timedelta(minutes=60)
Document = dict[str, Any]


def closes_topic(bars_topic: str) -> str:
    return f"{bars_topic}.closes"


class CloseV1(BaseModel):
    """A settled bar's close on the internal closes topic. Key: the minute. Validated as strictly as
    bars (``shared.schemas``): a record there that is not one goes to the dead-letter topic."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    v: Literal[1] = 1
    ticker: Ticker
    ts: MinuteTs
    close: Price
    rev: Count


def encode_close(ticker: str, ts: datetime, close: float, rev: int) -> tuple[str, bytes]:
    """``(key, value)`` of the close message."""
    value = {"v": 1, "ticker": ticker, "ts": format_ts(ts), "close": close, "rev": rev}
    return minute_id(ts), json.dumps(value).encode()


def decode_close(value: bytes | None) -> CloseV1:
    if value is None:
        raise MessageError("not_json", "empty message (null value)")
    try:
        raw = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise MessageError("not_json", str(error)[:500]) from None
    try:
        return CloseV1.model_validate(raw, strict=True)
    except ValidationError as error:
        raise MessageError("invalid", str(error)[:500]) from None


@dataclass
class _Rows:
    """One closes partition's rows in progress, and the minutes it settled lately."""

    open: dict[datetime, dict[str, tuple[float, int]]] = field(default_factory=dict)
    settled: set[datetime] = field(default_factory=set)
    # Each ticker's newest minute with a close here: a row holding every ticker seen lately is complete.
    tickers: dict[str, datetime] = field(default_factory=dict)
    seen: dict[datetime, datetime | None] = field(default_factory=dict)  # wall time each row last changed
    dirty: set[datetime] = field(default_factory=set)  # rows changed or settled: their documents rewritten
    changed: bool = False  # the bookkeeping (``settled``, ``tickers``) changed

    @classmethod
    def of(cls, doc: Document | None, open_docs: Iterable[Document]) -> _Rows:
        """From the partition's ``latest`` document and its rows in ``portfolio_open`` (or, written by the
        earlier layout, as JSON in ``latest``: taken over and rewritten)."""
        rows = cls()
        legacy = load_json((doc or {}).get("open"))
        for row in [*open_docs, *legacy]:
            rows.open[row["ts"]] = {t: (c, int(row["rev"].get(t, -1))) for t, c in row["close"].items()}
            rows.seen[row["ts"]] = row.get("updated_at")
        rows.dirty = {row["ts"] for row in legacy}
        rows.changed = bool(legacy)
        rows.settled = {r["ts"] for r in load_json((doc or {}).get("settled"))}
        rows.tickers = {r["ticker"]: r["ts"] for r in load_json((doc or {}).get("tickers"))}
        return rows

    def document(self, partition: int) -> Document:
        """The ``latest`` document: bookkeeping, as JSON (see ``services.sink.open_items.state_to_doc``)."""
        return {
            "kind": PORTFOLIO,
            "partition": partition,
            "settled": dump_json([{"ts": ts} for ts in sorted(self.settled)]),
            "tickers": dump_json([{"ticker": t, "ts": ts} for t, ts in sorted(self.tickers.items())]),
        }

    def open_documents(self, partition: int) -> list[Document]:
        """The documents of the rows in progress changed since they were read."""
        return [
            {"_id": minute_id(ts)}
            | _row(ts, self.open[ts])
            | {"partition": partition, "updated_at": self.seen[ts]}
            for ts in sorted(self.dirty)
            if ts in self.open
        ]

    def complete(self, ts: datetime, newest: datetime) -> bool:
        """Whether the row of ``ts`` holds every ticker with a close here in the hour before ``newest``."""
        row = self.open[ts]
        return all(t in row for t, last in self.tickers.items() if last >= newest - TICKERS_SEEN_FOR)


def _row(ts: datetime, closes: dict[str, tuple[float, int]]) -> Document:
    ordered = sorted(closes.items())
    return {"ts": ts, "close": {t: c for t, (c, _) in ordered}, "rev": {t: r for t, (_, r) in ordered}}


@dataclass
class RowsWritten:
    written: int = 0  # rows inserted into ``portfolio`` or merged into there
    late: int = 0  # closes for stored rows gathered, merged when due


class PortfolioWriter:
    """Writes the rows of the closes partitions this sink owns: in ``portfolio_open`` while closes still
    come, inserted into ``portfolio`` once settled."""

    def __init__(self, db: Database[Document], late: LateItems) -> None:
        self.db = db
        self.portfolio = db[PORTFOLIO]
        self.latest = db[LATEST]
        self.late = late

    def write(
        self,
        closes: Iterable[tuple[int, CloseV1]],
        sweep: set[int],
        now: datetime,
        untouched_since: datetime | None,
        apply_now: bool = False,
    ) -> RowsWritten:
        """Merge ``(partition, close)`` pairs into their rows and settle the rows of those partitions and of
        ``sweep`` that are complete, far enough behind, or untouched since ``untouched_since`` (all when
        None); merge the gathered closes for stored rows when due."""
        by_partition: dict[int, list[CloseV1]] = {p: [] for p in sweep}
        for partition, close in closes:
            by_partition.setdefault(partition, []).append(close)
        if not by_partition:
            return RowsWritten(written=self._merge_late(now, apply_now or untouched_since is None))
        self.late.load(PORTFOLIO, by_partition)
        ids = {latest_id(PORTFOLIO, p): p for p in by_partition}
        stored = {doc["_id"]: doc for doc in self.latest.find({"_id": {"$in": sorted(ids)}})}
        open_docs: dict[int, list[Document]] = {p: [] for p in by_partition}
        for doc in self.db[open_collection(PORTFOLIO)].find({"partition": {"$in": sorted(by_partition)}}):
            open_docs[doc["partition"]].append(doc)
        states = {p: _Rows.of(stored.get(i), open_docs[p]) for i, p in ids.items()}
        settle: dict[datetime, dict[str, tuple[float, int]]] = {}
        owner: dict[datetime, int] = {}  # the closes partition of each row settled
        for partition, group in by_partition.items():
            _merge_closes(states[partition], group, settle, now)
            _settle_rows(states[partition], settle, untouched_since)
            owner |= {ts: partition for ts in settle if ts not in owner}
        result = self._settle(settle, owner, now)
        result.written += self._merge_late(now, apply_now or untouched_since is None)
        rewrite_open(
            self.db[open_collection(PORTFOLIO)],
            [minute_id(ts) for state in states.values() for ts in state.dirty],
            [doc for p, state in sorted(states.items()) for doc in state.open_documents(p)],
        )
        for key, partition in sorted(ids.items()):
            if states[partition].changed:
                self.latest.replace_one({"_id": key}, states[partition].document(partition), upsert=True)
        return result

    def _settle(
        self, rows: dict[datetime, dict[str, tuple[float, int]]], owner: dict[datetime, int], now: datetime
    ) -> RowsWritten:
        """Insert settled rows; the closes of a row already stored (a replay, a late close, the earlier
        layout) are gathered, to be merged into it when due."""
        if not rows:
            return RowsWritten()
        minutes = sorted(rows)
        documents = [{"_id": minute_id(ts)} | _row(ts, rows[ts]) for ts in minutes]
        clashing = insert_new(self.portfolio, documents)
        self.late.add(PORTFOLIO, [(owner[minutes[i]], documents[i]) for i in clashing], now)
        return RowsWritten(written=len(minutes) - len(clashing), late=len(clashing))

    def _merge_late(self, now: datetime, apply_now: bool) -> int:
        """When due, merge every gathered close into its stored row, keeping per
        ticker the close of the highest ``rev``: one find by ``ts`` (rows of the earlier layout have an
        ObjectId ``_id``) and one replacement of the rows that change."""
        due = self.late.due(PORTFOLIO, now, apply_now)
        if not due:
            return 0
        late: dict[datetime, dict[str, tuple[float, int]]] = {}
        for part in self.late.documents(PORTFOLIO, due):
            row = late.setdefault(part["ts"], {})
            for ticker, close in part["close"].items():
                rev = int(part["rev"].get(ticker, -1))
                if ticker not in row or rev >= row[ticker][1]:
                    row[ticker] = (close, rev)
        replacements = []
        found = self.portfolio.find(whole_minutes(late), batch_size=len(late) + 1)
        stored = {doc["ts"]: doc for doc in found}
        for ts, row in sorted(late.items()):
            doc = stored.get(ts)
            if doc is None:
                raise WriteConflict(f"{PORTFOLIO} {minute_id(ts)} vanished since it met the insert")
            revs = {t: int(r) for t, r in doc.get("rev", {}).items()}
            closes = dict(doc.get("close", {}))
            changed = False
            for ticker, (close, rev) in row.items():
                if ticker not in closes or rev > revs.get(ticker, -1):
                    closes[ticker], revs[ticker] = close, rev
                    changed = True
            if changed:
                merged = {"_id": minute_id(ts)} | _row(
                    ts, {t: (c, revs.get(t, -1)) for t, c in closes.items()}
                )
                replacements.append(Replacement(PORTFOLIO, doc["_id"], merged))
        replace_documents(self.db, replacements)
        self.late.clear(PORTFOLIO, due)
        return len(replacements)


def _merge_closes(
    state: _Rows, closes: list[CloseV1], settle: dict[datetime, dict[str, tuple[float, int]]], now: datetime
) -> None:
    oldest_settled = min(state.settled) if state.settled else None
    for close in sorted(closes, key=lambda c: (c.ts, c.rev)):
        entry = (close.close, close.rev)
        last = state.tickers.get(close.ticker)
        # Coarse (every ROW_SETTLE_AFTER), so the bookkeeping is not rewritten every minute.
        if last is None or close.ts >= last + ROW_SETTLE_AFTER:
            state.tickers[close.ticker] = close.ts
            state.changed = True
        row = state.open.get(close.ts)
        if row is None and (close.ts in state.settled or (oldest_settled and close.ts < oldest_settled)):
            late = settle.setdefault(close.ts, {})  # its row is in ``portfolio`` already: merge there
            if close.ticker not in late or close.rev >= late[close.ticker][1]:
                late[close.ticker] = entry
            continue
        if row is None:
            row = state.open[close.ts] = {}
        if close.ticker not in row or close.rev > row[close.ticker][1]:
            row[close.ticker] = entry
            state.seen[close.ts] = now
            state.dirty.add(close.ts)


def _settle_rows(
    state: _Rows, settle: dict[datetime, dict[str, tuple[float, int]]], untouched_since: datetime | None
) -> None:
    if not state.open:
        return
    newest = max(state.open)
    for ts in sorted(state.open):
        seen = state.seen.get(ts)
        idle = untouched_since is None or seen is None or seen <= untouched_since
        # Settled at once when complete, so a backlog's rows rarely get late closes (each a merge).
        if idle or ts <= newest - ROW_SETTLE_AFTER or state.complete(ts, newest):
            state.seen.pop(ts, None)
            state.dirty.add(ts)
            settle.setdefault(ts, {}).update(state.open.pop(ts))
            state.settled.add(ts)
            state.changed = True
    for ts in sorted(state.settled)[:-RECENT_ROWS]:
        state.settled.discard(ts)
    for ticker in [t for t, last in state.tickers.items() if last < newest - TICKERS_SEEN_FOR]:
        del state.tickers[ticker]
