"""Insert-first writes: the one kind of write FerretDB 1.24 does without scanning the collection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, PyMongoError

DUPLICATE_KEY = 11000
Document = dict[str, Any]


class WriteConflict(PyMongoError):
    """Another writer changed a document between our read and our update: the batch is written again."""


def insert_new(collection: Collection[Document], documents: Sequence[Document]) -> list[int]:
    """Insert ``documents`` unordered; return the indexes of those whose key already exists.

    Any error other than a duplicate key is raised, and the caller writes the whole batch again.
    """
    if not documents:
        return []
    try:
        collection.insert_many(documents, ordered=False)
    except BulkWriteError as error:
        others = [e for e in error.details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]
        if others or error.details.get("writeConcernErrors"):
            raise
        return sorted(e["index"] for e in error.details["writeErrors"])
    return []
