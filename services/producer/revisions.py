"""Revision detection: which bars are new or changed since they were last published, and their ``rev``.

Pure (no I/O). Remembers the last published values of each (ticker, minute) inside the fetch window and
forgets minutes older than it, so memory stays bounded by tickers × window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

Values = tuple[float, float, float, float, int]


@dataclass(frozen=True)
class Publication:
    """A bar to publish: its values, its revision number and whether its minute is closed."""

    ticker: str
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int
    rev: int
    final: bool
    # First publication of this minute (its ``rev`` is the process's base, not 0: see restart_safe_rev_base).
    new: bool = False


@dataclass
class _Published:
    values: Values
    rev: int
    final: bool


def restart_safe_rev_base(now: datetime) -> int:
    """The first ``rev`` of a producer started at ``now``: its start in milliseconds, times 1,000.

    A restarted producer forgets what it published, yet its revisions must rank above the ones it
    published before (or the sink would keep a stale in-progress bar over the closing one). Starting
    each process above every earlier process's numbers does that without any stored state; the
    1,000 revisions of room per minute and process are far more than a minute ever gets, and the
    numbers stay below 2**53, exact in every JSON reader.
    """
    return int(now.timestamp() * 1000) * 1000


class RevisionTracker:
    """The last values published per (ticker, minute).

    A minute seen for the first time is published with ``rev`` = ``rev_base``; one whose values (or
    closed state) changed is published again with ``rev + 1``; an unchanged one is not published.
    ``final`` is true once the minute is before the fetch's ``closed_before``.
    """

    def __init__(self, rev_base: int = 0) -> None:
        self._rev_base = rev_base
        self._published: dict[tuple[str, int], _Published] = {}
        self._horizon_ns: int | None = None

    def __len__(self) -> int:
        return len(self._published)

    def forget_before(self, horizon: datetime) -> None:
        """Drop minutes before ``horizon`` (the start of the fetch window); later fetches never
        return them, and a row before it that still comes is ignored rather than republished as rev 0."""
        horizon_ns = pd.Timestamp(horizon).as_unit("ns").value
        if self._horizon_ns is not None and horizon_ns <= self._horizon_ns:
            return
        self._horizon_ns = horizon_ns
        for key in [key for key in self._published if key[1] < horizon_ns]:
            del self._published[key]

    def oldest_open(self) -> datetime | None:
        """The earliest minute published as not final yet (it must be fetched again to close it)."""
        open_minutes = [key[1] for key, item in self._published.items() if not item.final]
        if not open_minutes:
            return None
        oldest: datetime = pd.Timestamp(min(open_minutes), tz=UTC).to_pydatetime()
        return oldest

    def changes(self, bars: pd.DataFrame, closed_before: datetime) -> list[Publication]:
        """The publications ``bars`` (validated, see ``validation.split_valid``) call for, in input order."""
        if bars.empty:
            return []
        closed_ns = pd.Timestamp(closed_before).as_unit("ns").value
        horizon = self._horizon_ns
        out: list[Publication] = []
        # A fetch holds few distinct minutes: convert each to a datetime once, not once per row.
        minutes: dict[int, datetime] = {}
        ts_ns = pd.DatetimeIndex(bars["ts"]).as_unit("ns").asi8
        columns = zip(
            bars["ticker"].tolist(),
            ts_ns.tolist(),
            bars["open"].tolist(),
            bars["high"].tolist(),
            bars["low"].tolist(),
            bars["close"].tolist(),
            bars["volume"].tolist(),
            strict=True,
        )
        for ticker, ts, open_, high, low, close, volume in columns:
            if horizon is not None and ts < horizon:
                continue
            values: Values = (open_, high, low, close, int(volume))
            final = ts < closed_ns
            key = (ticker, ts)
            seen = self._published.get(key)
            if seen is None:
                rev = self._rev_base
            elif seen.values == values and (seen.final or not final):  # noqa: PD011 (a field, not pandas)
                # Unchanged; and a final bar seen again as in progress (clock skew) stays final.
                continue
            else:
                rev = seen.rev + 1
                final = final or seen.final
            self._published[key] = _Published(values, rev, final)
            moment = minutes.get(ts)
            if moment is None:
                moment = minutes[ts] = pd.Timestamp(ts, tz=UTC).to_pydatetime()
            out.append(
                Publication(
                    ticker,
                    moment,
                    open_,
                    high,
                    low,
                    close,
                    int(volume),
                    rev,
                    final,
                    seen is None,
                )
            )
        return out
