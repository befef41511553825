"""The small interface every bar source implements, and the one frame shape they all return."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import pandas as pd

# Long format, one row per (ticker, minute): what every source returns and the rest of the producer reads.
COLUMNS = ("ticker", "ts", "open", "high", "low", "close", "volume")
PRICES = ("open", "high", "low", "close")


def empty_bars() -> pd.DataFrame:
    frame = pd.DataFrame({name: pd.Series(dtype="float64") for name in COLUMNS})
    frame["ticker"] = frame["ticker"].astype(object)
    frame["ts"] = pd.Series(dtype="datetime64[ns, UTC]")
    return frame


class FetchError(Exception):
    """A fetch that returned nothing usable. ``kind`` (``rate_limit``, ``network``, ``source``) labels
    the metric; the producer backs off and tries again, it never crashes on one."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Fetch:
    """What one fetch returned.

    ``bars`` has :data:`COLUMNS` (``ts`` tz-aware UTC, the start of the minute; NaN where a value is
    missing). Bars with ``ts < closed_before`` are complete (published with ``final=true``); later ones are
    still filling. ``errors`` maps a ticker to why it returned nothing (the source only logged it);
    ``rate_limited`` asks the producer to wait longer before the next fetch. ``more`` says that the
    source has more ready now (replay as fast as possible): fetch again without waiting.
    """

    bars: pd.DataFrame
    closed_before: datetime
    errors: dict[str, str] = field(default_factory=dict)
    rate_limited: bool = False
    more: bool = False


class Source(Protocol):
    """A source of 1-minute bars for a fixed list of tickers."""

    #: The ``source`` field of the published bars.
    name: str

    def backfill(self, minutes: int, now: datetime) -> Iterator[Fetch]:
        """The last ``minutes`` minutes of history before ``now``, in chunks (for a progress bar)."""
        ...

    def fetch(self, since: datetime, now: datetime) -> Fetch:
        """Bars from ``since`` (inclusive) up to ``now``, the minute in progress included.

        Raise :class:`FetchError` when nothing could be fetched.
        """
        ...

    def is_open(self, now: datetime) -> bool:
        """Whether there is anything to poll for at ``now`` (False while the exchange is closed)."""
        ...
