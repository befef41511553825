"""One ticker's minutes as columns of machine numbers, sorted by minute: what the dashboard holds in memory.

500 tickers x 3,000 minutes are 1.5 M bars: as Python objects (a dict or a model per bar) that is over
400 MB; as ``array`` columns it is ~50 bytes a bar. Minutes arrive in order almost always (append); a late
one is inserted where it belongs (rare, O(n) at n <= a few thousand).
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence

Row = tuple[float | int, ...]


class MinuteSeries:
    """Rows keyed by epoch minute, one ``array`` per column (``typecodes``: name -> array typecode)."""

    __slots__ = ("_columns", "_minutes", "names")

    def __init__(self, typecodes: Mapping[str, str]) -> None:
        self.names = tuple(typecodes)
        self._minutes: array[int] = array("q")
        self._columns: list[array[float] | array[int]] = [array(code) for code in typecodes.values()]

    def __len__(self) -> int:
        return len(self._minutes)

    def first(self) -> int | None:
        return self._minutes[0] if self._minutes else None

    def last(self) -> int | None:
        return self._minutes[-1] if self._minutes else None

    def get(self, minute: int) -> Row | None:
        i = bisect_left(self._minutes, minute)
        if i < len(self._minutes) and self._minutes[i] == minute:
            return tuple(column[i] for column in self._columns)
        return None

    def put(self, minute: int, values: Sequence[float | int]) -> None:
        """Insert the row of ``minute``, or replace it when the minute is held."""
        minutes = self._minutes
        if not minutes or minute > minutes[-1]:
            minutes.append(minute)
            for column, value in zip(self._columns, values, strict=True):
                column.append(value)  # type: ignore[arg-type]
            return
        i = bisect_left(minutes, minute)
        if i < len(minutes) and minutes[i] == minute:
            for column, value in zip(self._columns, values, strict=True):
                column[i] = value  # type: ignore[assignment]
            return
        minutes.insert(i, minute)
        for column, value in zip(self._columns, values, strict=True):
            column.insert(i, value)  # type: ignore[arg-type]

    def keep_last(self, count: int, slack: int = 0) -> int:
        """Drop the oldest rows beyond ``count`` once there are more than ``count + slack`` (dropping in
        chunks: each drop moves every column). Returns how many were dropped."""
        extra = len(self._minutes) - count
        if extra <= slack:
            return 0
        del self._minutes[:extra]
        for column in self._columns:
            del column[:extra]
        return extra

    def count_from(self, minute: int) -> int:
        return len(self._minutes) - bisect_left(self._minutes, minute)

    def rows(self, since: int, until: int, last: int | None = None) -> Iterator[tuple[int, Row]]:
        """``(minute, row)`` for ``since <= minute <= until``, oldest first; the newest ``last`` of them."""
        lo = bisect_left(self._minutes, since)
        hi = bisect_right(self._minutes, until)
        if last is not None:
            lo = max(lo, hi - last)
        columns = [column[lo:hi] for column in self._columns]
        for offset, minute in enumerate(self._minutes[lo:hi]):
            yield minute, tuple(column[offset] for column in columns)

    def nbytes(self) -> int:
        """The bytes the columns hold (their allocations may be up to 1/8 larger)."""
        arrays = [self._minutes, *self._columns]
        return sum(a.itemsize * len(a) for a in arrays)


def nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else value
