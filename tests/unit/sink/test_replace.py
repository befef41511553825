"""The delete and find filters of the late paths, shaped for FerretDB's per-document evaluation: the same
documents as a flat filter would match, found with a few comparisons per halving."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from services.sink.replace import LEAF, by_minute, whole_minutes
from testkit.bars import T0

Document = dict[str, Any]


class Evaluation:
    """MongoDB's semantics for the operators the filters use, evaluated as FerretDB does (keys in order, the
    first that fails ends it, ``$or`` branch by branch, ``$in`` value by value), counting comparisons."""

    def __init__(self) -> None:
        self.comparisons = 0

    def matches(self, doc: Document, query: Document) -> bool:
        return all(self._key(doc, key, condition) for key, condition in query.items())

    def _key(self, doc: Document, key: str, condition: Any) -> bool:
        if key == "$or":
            return any(self.matches(doc, branch) for branch in condition)
        value = doc[key]
        if not isinstance(condition, dict):
            return self._compare(value, condition) == 0
        return all(self._operator(value, op, operand) for op, operand in condition.items())

    def _operator(self, value: Any, op: str, operand: Any) -> bool:
        if op == "$in":
            return any(self._compare(value, v) == 0 for v in operand)
        order = self._compare(value, operand)
        # A bound of another type never matches (MongoDB's type bracketing).
        return order is not None and {"$lt": order < 0, "$gte": order >= 0, "$lte": order <= 0}[op]

    def _compare(self, a: Any, b: Any) -> int | None:
        self.comparisons += 1
        if type(a) is not type(b):
            return None
        return int(a > b) - int(a < b)


def documents(minutes: int, tickers: int) -> list[Document]:
    return [
        {"_id": f"T{t:03d}|{m}", "ts": T0 + timedelta(minutes=m), "ticker": f"T{t:03d}"}
        for m in range(minutes)
        for t in range(tickers)
    ]


def test_the_filter_matches_exactly_the_documents_asked_for_whatever_the_shape() -> None:
    rng = random.Random(7)
    stored = documents(minutes=40, tickers=50)
    for share in (0.01, 0.1, 0.5, 1.0):
        wanted = [d for d in stored if rng.random() < share] or stored[:1]
        by_ts: dict[datetime, list[Any]] = {}
        for d in wanted:
            by_ts.setdefault(d["ts"], []).append(d["_id"])
        for field, key in (("_id", "_id"), ("ticker", "ticker")):
            values = {
                ts: [next(w[key] for w in wanted if w["_id"] == i) for i in ids] for ts, ids in by_ts.items()
            }
            query = by_minute(values, field)
            assert next(iter(query)) == "ts"  # the range first: outside it, two comparisons
            found = {d["_id"] for d in stored if Evaluation().matches(d, query)}
            assert found == {d["_id"] for d in wanted}, (share, field)


def test_a_document_inside_the_range_meets_a_few_comparisons_per_halving() -> None:
    stored = documents(minutes=200, tickers=500)
    wanted = stored[::10]  # a backfill's 10% revised: 50 of each minute's 500
    by_ts: dict[datetime, list[Any]] = {}
    for d in wanted:
        by_ts.setdefault(d["ts"], []).append(d["_id"])
    evaluation = Evaluation()
    sample = stored[::97]
    assert [evaluation.matches(d, by_minute(by_ts, "_id")) for d in sample] == [d in wanted for d in sample]
    # A branch per minute and a value per id cost ~100 + ~50 comparisons a document here.
    assert evaluation.comparisons / len(sample) < 40


def test_values_of_other_types_are_compared_one_by_one() -> None:
    old = ObjectId()
    later = T0 + timedelta(minutes=1)
    ids = [f"T{t:03d}|1" for t in range(LEAF * 3)]
    query = by_minute({T0: ["A|0", old], later: ids}, "_id")
    evaluation = Evaluation()
    assert evaluation.matches({"_id": old, "ts": T0}, query)
    assert not evaluation.matches({"_id": ObjectId(), "ts": T0}, query)
    assert not evaluation.matches({"_id": old, "ts": later}, query)  # a string range never takes it
    assert all(evaluation.matches({"_id": i, "ts": later}, query) for i in ids)


def test_whole_minutes_are_found_by_runs_of_consecutive_minutes() -> None:
    stored = documents(minutes=30, tickers=3)
    asked = [T0 + timedelta(minutes=m) for m in (2, 3, 4, 5, 9, 20, 21)]
    query = whole_minutes(reversed(asked))
    assert next(iter(query)) == "ts"
    assert {d["_id"] for d in stored if Evaluation().matches(d, query)} == {
        d["_id"] for d in stored if d["ts"] in asked
    }
    # A backlog's late items fill consecutive minutes: one range, nothing else to compare.
    assert whole_minutes(asked[:4]) == {"ts": {"$gte": asked[0], "$lte": asked[3]}}
