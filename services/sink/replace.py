"""Stored documents (history, items in progress) replaced in a constant number of commands, whatever their
count, crash-safe.

On FerretDB 1.24 every update by ``_id`` scans its collection (~0.3 s at 100k bars): 5,000 late revisions
one by one would take ~25 minutes. One ``delete_many`` by ``_id`` ``$in`` and one ``insert_many`` is two
scans for any number. Between the two a crash would leave the documents deleted: a replayed batch settles
bars and predictions again whole, but a portfolio row merged from late closes would come back holding only
those closes. So the new documents are first written to the small ``replacing`` collection, a redo log
that every write completes before doing anything else (:func:`finish_replacements`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database

from services.sink.inserts import WriteConflict, insert_new

REPLACING = "replacing"
Document = dict[str, Any]


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
    entries = [
        {
            "_id": f"{r.collection}|{r.document['_id']}",
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
        # Deduplicated (old and new ids are the same but for the earlier layouts): on FerretDB each id of a
        # long $in list costs per stored document (500 more ids: ~1 s more at 100k bars, measured).
        ids = list(dict.fromkeys([e["old_id"] for e in group] + [e["document"]["_id"] for e in group]))
        db[name].delete_many({"_id": {"$in": ids}})
        if insert_new(db[name], [e["document"] for e in group]):
            # Only a second writer of these documents gets here (partition ownership rules it out): the log
            # stays, and the next write (a retry of this batch) applies it again.
            raise WriteConflict(f"{name}: a replaced document was written again meanwhile")
    db[REPLACING].delete_many({"_id": {"$in": [e["_id"] for e in entries]}})


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
