"""The delete and find filters of the late paths, shaped for FerretDB's per-document evaluation."""

from __future__ import annotations

from datetime import timedelta

from services.sink.replace import by_minute
from testkit.bars import T0


def test_a_ts_range_comes_first_then_one_branch_per_minute_with_its_values_once() -> None:
    later = T0 + timedelta(minutes=7)
    query = by_minute({later: ["B|7", "A|7", "B|7"], T0: ["A|0"]}, "_id")
    # FerretDB stops at the first key that fails: documents outside the range cost two comparisons.
    assert list(query) == ["ts", "$or"]
    assert query["ts"] == {"$gte": T0, "$lte": later}
    assert query["$or"] == [
        {"ts": T0, "_id": {"$in": ["A|0"]}},
        {"ts": later, "_id": {"$in": ["A|7", "B|7"]}},
    ]
