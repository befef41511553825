"""Late paths gathered across batches: revisions of stored bars and predictions, closes for stored portfolio
rows, applied together in one find and one replacement per history collection when they are due.

On FerretDB 1.24 every find and delete scans its whole collection, whatever it matches: a backlog whose
every batch revised stored bars paid two scans of ``bars`` per batch. Here a batch only inserts what it
brought into ``late_<kind>_<partition>`` (O(log n), like any insert) and keeps it in memory. Everything
gathered of a kind is compared with history in one find and replaced in one delete and one insert
(:mod:`services.sink.replace`), and the collections dropped (a drop costs nothing; a delete would scan
them), when: the oldest item has waited half of ``PORTFOLIO_SINK_SETTLE_S`` (an item untouched that long
settles, as in progress; or as long as the last application took, where that is longer); the sink has caught
up (a batch short of ``PORTFOLIO_SINK_BATCH_MAX``: live, late items are rare and applied at once); the sink
stops; or ``LATE_MAX`` items are held.

Written before the batch's offsets are committed (and before ``latest`` forgets the items), the entries
make the batch durable: a crash replays only what was never gathered, and a restarted sink (or the new
owner of a partition) reads the entries of its partitions back before it writes them. One collection per
partition of the topic the items came from: only that partition's owner writes, applies and drops it, one
writer per document as everywhere in the sink (a former owner's write still in flight commits nothing,
so what it gathers is read again from Kafka by the new owner).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.database import Database

from services.sink.inserts import WriteConflict
from services.sink.open_items import Item, Key
from services.sink.replace import Replacement, replace_documents

LATE = "late"
# Gathered items of one kind that force an application before they are due: what the memory and one
# redo log may hold (a bar is ~1 kB in memory). A 390-minute backfill of 500 tickers is 195,000.
LATE_MAX = 200_000
Document = dict[str, Any]
Scope = tuple[str, int]  # kind (history collection), partition


@dataclass
class Applied:
    updated: int = 0  # replaced a stored document of a lower rank
    replayed: int = 0  # what history holds already (same rank, or same values)
    stale: int = 0  # older than what history holds


class LateItems:
    """The late items of the partitions this sink writes, in memory and in ``late``."""

    def __init__(self, db: Database[Document], idle: timedelta) -> None:
        self.db = db
        self.idle = idle
        self.held: dict[Scope, list[Document]] = {}
        self.oldest: dict[Scope, datetime] = {}
        # How long the last application of each kind took (due to clear), and when the current one began.
        self.spent: dict[str, timedelta] = {}
        self.started: dict[str, float] = {}
        # ``forget`` runs on the loop's thread (a rebalance) while a write may be clearing.
        self.lock = threading.Lock()

    def load(self, kind: str, partitions: Iterable[int]) -> None:
        """Read back the entries of partitions not held yet (after a start or a rebalance): one find of
        their collections, none when every partition is held."""
        new = sorted({p for p in partitions if (kind, p) not in self.held})
        if not new:
            return
        existing = set(self.db.list_collection_names())
        for p in new:
            self.held[(kind, p)] = []
            if late_collection(kind, p) in existing:
                for entry in self.db[late_collection(kind, p)].find():
                    self._hold((kind, p), entry["document"], entry["gathered_at"])

    def forget(self, kind: str, partitions: Iterable[int]) -> None:
        """Partitions gone to another member: their entries are its to apply (read back if they return)."""
        with self.lock:
            for p in partitions:
                self.held.pop((kind, p), None)
                self.oldest.pop((kind, p), None)

    def add(self, kind: str, items: list[tuple[int, Document]], now: datetime) -> None:
        """Gather ``(partition, document)`` pairs: one insert per partition, before anything forgets them."""
        by_partition: dict[int, list[Document]] = {}
        for p, document in items:
            by_partition.setdefault(p, []).append(document)
        for p, documents in sorted(by_partition.items()):
            entries = [{"gathered_at": now, "document": d} for d in documents]
            self.db[late_collection(kind, p)].insert_many(entries, ordered=False)
            for document in documents:
                self._hold((kind, p), document, now)

    def _hold(self, scope: Scope, document: Document, gathered_at: datetime) -> None:
        self.held.setdefault(scope, []).append(document)
        if scope not in self.oldest or gathered_at < self.oldest[scope]:
            self.oldest[scope] = gathered_at

    def due(self, kind: str, now: datetime, apply_now: bool) -> list[int]:
        """The partitions whose items are applied now: every one holding items of ``kind`` (all of them
        this sink's: a partition handed over is forgotten), when one waited ``idle`` (or the last
        application's time), when they reach ``LATE_MAX``, or with ``apply_now`` (a stop, or the sink caught
        up: a batch short of the maximum, so no backlog left to gather across; whatever partitions that batch
        held); else none. Partitions returned mark an application's start: :meth:`clear` times it."""
        with self.lock:
            mine = sorted(p for (k, p), held in self.held.items() if k == kind and held)
        if not mine:
            return []
        # Spaced by the last application's own time too: where one outlasts the bound (on FerretDB, a scan
        # of a long history), back-to-back applications would leave a backlog nothing but scans, and the
        # bound is out of reach either way; spaced, at most half of a backlog's time goes to them.
        wait = max(self.idle, self.spent.get(kind, timedelta()))
        waited = min(self.oldest[(kind, p)] for p in mine) <= now - wait
        full = sum(len(self.held[(kind, p)]) for p in mine) >= LATE_MAX
        if apply_now or waited or full:
            self.started[kind] = time.monotonic()
            return mine
        return []

    def documents(self, kind: str, partitions: list[int]) -> list[Document]:
        return [d for p in partitions for d in self.held.get((kind, p), [])]

    def apply(
        self,
        kind: str,
        from_stored: Callable[[Any], Item],
        key_query: Callable[[Iterable[Item]], Document],
        now: datetime,
        apply_now: bool,
    ) -> Applied:
        """When due, compare every gathered item of ``kind`` (bars or predictions) with history (one find
        by ``key_query``) and replace the stored documents they outrank (one delete, one insert), then
        clear them."""
        result = Applied()
        partitions = self.due(kind, now, apply_now)
        if not partitions:
            return result
        newest: dict[Key, Item] = {}
        documents: dict[Key, Document] = {}
        for document in self.documents(kind, partitions):
            item = from_stored(document)
            held = newest.get(item.key)
            if held is None or item.rank >= held.rank:
                newest[item.key], documents[item.key] = item, document
        found = self.db[kind].find(key_query(newest.values()), batch_size=len(newest) + 1)
        stored = {key: doc for doc in found if (key := from_stored(doc).key) in newest}
        replacements = []
        for key, item in newest.items():
            doc = stored.get(key)
            if doc is None:
                raise WriteConflict(f"{kind} {key} vanished since it met the insert")
            held = from_stored(doc)
            if item.rank > held.rank and item.values != held.values:
                # A revision after the item settled, guarded by the rank just read: an older one never
                # overwrites a newer one.
                replacements.append(Replacement(kind, doc["_id"], documents[key]))
                result.updated += 1
            elif item.rank >= held.rank:
                result.replayed += 1
            else:
                result.stale += 1
        replace_documents(self.db, replacements)
        self.clear(kind, partitions)
        return result

    def clear(self, kind: str, partitions: list[int]) -> None:
        """Applied: the partitions' collections dropped, but of a partition handed to another member
        meanwhile (``forget``, under the same lock, waits for the drop): its new owner applies them again."""
        with self.lock:
            for p in partitions:
                if (kind, p) in self.held:
                    self.db.drop_collection(late_collection(kind, p))
                    self.held[(kind, p)] = []
                self.oldest.pop((kind, p), None)
        if kind in self.started:
            self.spent[kind] = timedelta(seconds=time.monotonic() - self.started.pop(kind))


def late_collection(kind: str, partition: int) -> str:
    """``late_bars_3``: the late items of ``kind`` from partition 3, while there are any."""
    return f"{LATE}_{kind}_{partition}"
