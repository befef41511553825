"""Which items stay in progress (in ``latest``) and which are settled into history, decided without I/O.

History collections on FerretDB 1.24 can be inserted into cheaply (the unique index keeps it O(log n))
but every update or find scans them. So a bar or prediction is written to history once, when it settles:
a final bar at once; anything else once its ticker's newest item is ``SETTLE_AFTER`` minutes ahead, or
once untouched long enough (:func:`settle_idle`). Until then its revisions only rewrite its document in
the small ``<kind>_open`` collection.

``recent`` remembers the rank (``rev`` or ``trained_at``) and values of the last settled items of each
ticker, so a replay after a restart is recognised without reading history. An item history may already
hold that ``recent`` does not know (older than it, or a newer revision of a settled item) is settled
again: the repository inserts it and, on a duplicate key, compares it with the stored document.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.layout import dump_json, load_json

SETTLE_AFTER = timedelta(minutes=3)
RECENT_PER_TICKER = 5

Key = tuple[str, datetime, int]  # ticker, minute, horizon (0 for bars)
Series = tuple[str, int]  # ticker, horizon: items of one series settle on each other


@dataclass(frozen=True)
class Item:
    """A bar or a prediction as the planner sees it. ``values`` tells a real revision from a replay."""

    ticker: str
    ts: datetime
    rank: Any  # int rev, or datetime trained_at: a higher one replaces a lower one
    final: bool
    values: tuple[Any, ...]
    doc: dict[str, Any]  # the history document, without _id and ingested_at
    # Wall time the sink last changed it in progress: it settles once untouched for long enough.
    seen_at: datetime | None = None
    horizon: int = 0  # a prediction's horizon_min: predictions of each horizon are their own series

    @property
    def key(self) -> Key:
        return (self.ticker, self.ts, self.horizon)

    @property
    def series(self) -> Series:
        return (self.ticker, self.horizon)


@dataclass
class Remembered:
    rank: Any
    fingerprint: str  # of the values: tells a restarted producer's republished bar from a revision


def fingerprint(values: tuple[Any, ...]) -> str:
    return format(zlib.crc32(repr(values).encode()), "08x")


@dataclass
class PartitionState:
    """One partition's items in progress (its documents in ``<kind>_open``) and what it settled lately
    (its ``latest`` document)."""

    open: dict[Key, Item] = field(default_factory=dict)
    recent: dict[Key, Remembered] = field(default_factory=dict)
    # The open items as read: what differs from them at the end of a write is rewritten.
    loaded: dict[Key, Item] = field(default_factory=dict)
    recent_loaded: dict[Key, Remembered] = field(default_factory=dict)
    legacy: bool = False  # read from a ``latest`` document of the earlier layout (items as JSON)

    def open_changes(self) -> tuple[list[Key], list[Item]]:
        """Keys whose documents go (settled, or changed) and the items written anew (changed or new)."""
        written = [i for k, i in self.open.items() if self.loaded.get(k) is not i]
        gone = [k for k, i in self.loaded.items() if self.open.get(k) is not i]
        return gone, written


@dataclass
class Plan:
    settle: list[Item] = field(default_factory=list)  # to insert into history (or compare with it)
    replayed: list[Item] = field(default_factory=list)  # what history holds already (same rank or values)
    stale: int = 0
    changed: bool = False  # the latest document must be rewritten


def plan(state: PartitionState, items: Iterable[Item], now: datetime | None = None) -> Plan:
    """Apply ``items`` (one per key, any order) to ``state`` in place; return what history needs. Items
    kept in progress are stamped ``seen_at=now``."""
    result = Plan()
    items = [dataclasses.replace(i, seen_at=now) for i in items]
    touched: set[Series] = set()
    oldest_recent = _oldest_recent(state)
    for item in sorted(items, key=lambda i: i.ts):
        held = state.open.get(item.key)
        remembered = state.recent.get(item.key)
        if held is not None:
            if item.rank > held.rank:
                state.open[item.key] = item
                result.changed = True
                touched.add(item.series)
            elif item.rank < held.rank:
                result.stale += 1
        elif remembered is not None:
            if item.rank < remembered.rank:
                result.stale += 1
            elif item.rank == remembered.rank or fingerprint(item.values) == remembered.fingerprint:
                result.replayed.append(item)
            else:  # a revision after the item settled: rare, costs a look-up in history
                result.settle.append(item)
                state.recent[item.key] = Remembered(item.rank, fingerprint(item.values))
                result.changed = True
        elif item.series in oldest_recent and item.ts < oldest_recent[item.series]:
            result.settle.append(item)  # older than what we remember: history decides
        else:
            state.open[item.key] = item
            result.changed = True
            touched.add(item.series)
    for series in touched | {i.series for i in result.settle}:
        _settle_series(state, series, result)
    return result


def settle_idle(state: PartitionState, untouched_since: datetime | None, result: Plan) -> None:
    """Settle every open item not changed since ``untouched_since`` (all of them when None: a stop)."""
    for key, item in sorted(state.open.items(), key=lambda kv: kv[0][1]):
        if untouched_since is None or item.seen_at is None or item.seen_at <= untouched_since:
            del state.open[key]
            result.settle.append(item)
            state.recent[key] = Remembered(item.rank, fingerprint(item.values))
            result.changed = True


def _settle_series(state: PartitionState, series: Series, result: Plan) -> None:
    mine = sorted((k for k in state.open if (k[0], k[2]) == series), key=lambda k: k[1])
    # Newest of what is open or settled: a provisional minute followed only by final ones still settles.
    newest = max(k[1] for k in [*mine, *(k for k in state.recent if (k[0], k[2]) == series)])
    for key in mine:
        item = state.open[key]
        if item.final or key[1] <= newest - SETTLE_AFTER:
            del state.open[key]
            result.settle.append(item)
            state.recent[key] = Remembered(item.rank, fingerprint(item.values))
    kept = sorted((k for k in state.recent if (k[0], k[2]) == series), key=lambda k: k[1])
    for key in kept[:-RECENT_PER_TICKER]:
        del state.recent[key]


def _oldest_recent(state: PartitionState) -> dict[Series, datetime]:
    oldest: dict[Series, datetime] = {}
    for ticker, ts, horizon in state.recent:
        if (ticker, horizon) not in oldest or ts < oldest[(ticker, horizon)]:
            oldest[(ticker, horizon)] = ts
    return oldest


def state_to_doc(state: PartitionState) -> dict[str, Any]:
    """The partition's ``latest`` document: the sink's own bookkeeping, not data (items in progress are in
    ``<kind>_open``). One JSON string: a few thousand small fields decoded field by field made every read
    and rewrite of ``latest`` cost ~1 s on FerretDB (measured)."""
    return {
        "recent": dump_json(
            [
                {"ticker": ticker, "ts": ts, "horizon": h, "rank": r.rank, "fingerprint": r.fingerprint}
                for (ticker, ts, h), r in sorted(state.recent.items())
            ]
        ),
    }


def state_from_doc(
    doc: dict[str, Any] | None, open_docs: Iterable[dict[str, Any]], to_item: Any
) -> PartitionState:
    """The state of a partition from its ``latest`` document and its ``<kind>_open`` documents; ``to_item``
    turns an open document back into an :class:`Item`. Items a ``latest`` document of the earlier layout
    holds as JSON are taken over (and written to ``<kind>_open`` by the next write)."""
    state = PartitionState()
    for stored in open_docs:
        item = dataclasses.replace(to_item(stored), seen_at=stored.get("updated_at"))
        state.open[item.key] = state.loaded[item.key] = item
    if doc is None:
        return state
    for stored in load_json(doc.get("open")) if "open" in doc else []:
        item = dataclasses.replace(to_item(stored), seen_at=stored.get("updated_at"))
        state.open.setdefault(item.key, item)
        state.legacy = True
    for entry in load_json(doc.get("recent")):
        rank = entry["rank"]
        rank = datetime.fromisoformat(rank) if isinstance(rank, str) else rank
        # Entries of the earlier layout have no horizon: a replay of theirs is compared with history.
        key = (entry["ticker"], entry["ts"], int(entry.get("horizon", 0)))
        state.recent[key] = Remembered(rank, entry["fingerprint"])
    state.recent_loaded = dict(state.recent)
    return state


def group_by(items: Iterable[tuple[int, Item]]) -> dict[int, list[Item]]:
    grouped: dict[int, list[Item]] = defaultdict(list)
    for partition, item in items:
        grouped[partition].append(item)
    return dict(grouped)
