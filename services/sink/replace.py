"""Stored documents (history, items in progress) replaced in a constant number of commands, whatever their
count, crash-safe.

On FerretDB 1.24 every update by ``_id`` scans its collection (~0.3 s at 100k bars): 5,000 late revisions
one by one would take ~25 minutes. One ``delete_many`` and one ``insert_many`` is one scan for any number.
Between the two a crash would leave the documents deleted: a portfolio row merged from late closes would
come back holding only those closes. So the new documents are first written to the small ``replacing``
collection, a redo log that every write completes before doing anything else (:func:`finish_replacements`).

The delete's filter is shaped for FerretDB, which evaluates it in Go on every stored document, keys in
order, stopping at the first that fails, an ``$or`` branch after branch and an ``$in`` value after value
(about a microsecond per comparison here). A flat ``_id`` ``$in`` costs a comparison per id per stored
document (5,000 ids over 100k bars: 53 s against 11 s for a ``ts`` range). So: a ``ts`` range first (two
comparisons for the documents outside it), then a search tree written as nested ``$or`` (:func:`by_minute`):
a document inside the range meets a few comparisons per halving instead of one branch per minute and one
per id of its minute (a 200-minute backfill over 150k bars: a find and a delete of ``bars`` 48 and 42 s
with a branch per minute). MongoDB serves the range from its ``ts`` index and tests the rest on the
documents inside it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from pymongo.collection import Collection
from pymongo.database import Database

from services.sink.inserts import WriteConflict, insert_new

REPLACING = "replacing"
Document = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class Replacement:
    """``document`` (with its ``_id``) takes the place of the stored document ``old_id`` in ``collection``
    (the ids differ for documents of an earlier layout: ObjectId, or a prediction without its horizon)."""

    collection: str
    old_id: Any
    document: Document


def replace_documents(db: Database[Document], replacements: Sequence[Replacement]) -> None:
    """Logged (one insert), applied (one delete and one insert per collection), then the log cleared."""
    if not replacements:
        return
    # One tag per call: the log is cleared by it, not by a list of ids the filter would compare one by one.
    tag = uuid.uuid4().hex
    entries = [
        {
            "_id": f"{r.collection}|{r.document['_id']}",
            "tag": tag,
            "collection": r.collection,
            "old_id": r.old_id,
            "document": r.document,
        }
        for r in replacements
    ]
    db[REPLACING].insert_many(entries, ordered=False)
    _apply(db, entries)


def finish_replacements(db: Database[Document]) -> int:
    """Apply what a write that died half-way left in the log (one small find when there is none)."""
    entries = list(db[REPLACING].find())
    if entries:
        _apply(db, entries)
    return len(entries)


def _apply(db: Database[Document], entries: list[Document]) -> None:
    by_collection: dict[str, list[Document]] = defaultdict(list)
    for entry in entries:
        by_collection[entry["collection"]].append(entry)
    for name, group in sorted(by_collection.items()):
        ids: dict[datetime, list[Any]] = defaultdict(list)
        for e in group:
            ids[e["document"]["ts"]] += [e["old_id"], e["document"]["_id"]]
        db[name].delete_many(by_minute(ids, "_id"))
        if insert_new(db[name], [e["document"] for e in group]):
            # Only a second writer of these documents gets here (partition ownership rules it out): the log
            # stays, and the next write (a retry of this batch) applies it again.
            raise WriteConflict(f"{name}: a replaced document was written again meanwhile")
    # Entries written before tags came are cleared by id.
    tags = sorted({e["tag"] for e in entries if "tag" in e})
    untagged = [e["_id"] for e in entries if "tag" not in e]
    db[REPLACING].delete_many({"$or": [{"tag": {"$in": tags}}, {"_id": {"$in": untagged}}]})


def by_minute(values: dict[datetime, list[Any]], field: str) -> Document:
    """Documents of the minutes in ``values`` whose ``field`` is one of that minute's values: a ``ts``
    range, then a search tree over the minutes and, inside a minute, over its values (module's note)."""
    minutes = sorted(values)
    # Deduplicated (old and new ids are the same but for documents of earlier layouts).
    leaves = [(ts, _sorted_values(values[ts])) for ts in minutes]

    def one_minute(part: list[tuple[datetime, list[Any]]]) -> Document | None:
        if len(part) > 1:
            return None
        ts, minute_values = part[0]
        return {"ts": ts} | _search_tree(minute_values, field, lambda v: v, partial(_few, field))

    tree = _search_tree(leaves, "ts", lambda leaf: leaf[0], one_minute)
    return {"ts": {"$gte": minutes[0], "$lte": minutes[-1]}} | tree


# Values compared one by one at a leaf: below this, another halving costs more comparisons than it saves.
LEAF = 8
MINUTE = timedelta(minutes=1)


def _sorted_values(values: list[Any]) -> list[Any]:
    unique = list(dict.fromkeys(values))
    # Strings are split by range below, which needs their order; anything else (an ObjectId of an earlier
    # layout) keeps a plain ``$in``, in a stable order.
    return sorted(unique) if all(isinstance(v, str) for v in unique) else sorted(unique, key=str)


def _few(field: str, values: list[Any]) -> Document | None:
    """A minute's values compared one by one, when few, or when not all strings: a string bound never
    matches another BSON type, so a minute holding an ObjectId is not split by range."""
    if len(values) <= LEAF or not all(isinstance(v, str) for v in values):
        return {field: {"$in": values}}
    return None


def whole_minutes(minutes: Iterable[datetime]) -> Document:
    """Every document of ``minutes``: a ``ts`` range, then a search tree over the runs of consecutive
    minutes. For finds that keep what they need in Python: measured on FerretDB (100k bars, 100 minutes
    of 500 tickers asked for), a range costs 1.2 bare scans with the 50k documents sent back, the tree by
    ticker 2.2 and a branch per minute 3.2; a backlog's late items fill whole minutes, one run."""
    ordered = sorted(set(minutes))
    runs: list[tuple[datetime, datetime]] = []
    for ts in ordered:
        if runs and ts - runs[-1][1] <= MINUTE:
            runs[-1] = (runs[-1][0], ts)
        else:
            runs.append((ts, ts))

    def one_run(part: list[tuple[datetime, datetime]]) -> Document | None:
        if len(part) > 1:
            return None
        first, last = part[0]
        return {"ts": first if first == last else {"$gte": first, "$lte": last}}

    tree = _search_tree(runs, "ts", lambda run: run[0], one_run)
    return {"ts": {"$gte": ordered[0], "$lte": ordered[-1]}} | tree


def _search_tree(
    items: list[T], field: str, bound: Callable[[T], Any], leaf: Callable[[list[T]], Document | None]
) -> Document:
    """A search tree written as nested ``$or`` over ``items`` (in the order of ``bound``): halves told
    apart by a bound on ``field``, down to what ``leaf`` compares exactly (None: halve again)."""
    exact = leaf(items)
    if exact is not None:
        return exact
    mid = len(items) // 2
    pivot = bound(items[mid])
    halves = (({"$lt": pivot}, items[:mid]), ({"$gte": pivot}, items[mid:]))
    branches = []
    for condition, half in halves:
        node = _search_tree(half, field, bound, leaf)
        # The bound goes in front of an inner node only: a leaf compares exactly already, and merged with
        # it the bound would clash on its key.
        branches.append({field: condition} | node if list(node) == ["$or"] else node)
    return {"$or": branches}


def rewrite_open(collection: Collection[Document], gone: list[Any], documents: list[Document]) -> None:
    """Items in progress rewritten by their one writer: those gone or changed deleted (with any copy of a
    new one, say under a partition it had before the topic grew), the current ones inserted. Two commands
    whatever the count; a crash between them is repaired by the replay of the batch, which holds every
    message that changed them."""
    ids = list(dict.fromkeys(gone + [d["_id"] for d in documents]))
    if ids:
        collection.delete_many({"_id": {"$in": ids}})
    if documents:
        collection.insert_many(documents, ordered=False)
