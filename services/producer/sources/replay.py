"""Bars from a CSV or Parquet file, replayed at a settable speed.

The file is long format, one row per (ticker, minute), with columns (any case) ``ticker`` (or ``symbol``),
``ts`` (or ``datetime``, ``date``, ``timestamp``; naive times are taken as UTC), ``open``, ``high``,
``low``, ``close``, ``volume``; ``recording`` reads it and says which rows it skips and why.
A yfinance download exports to it with
``df.stack(level="Ticker", future_stack=True).reset_index().to_csv("bars.csv", index=False)``.

The bars keep their own timestamps. The backfill is the file's first ``backfill_minutes`` minutes; then a
replay clock starts at the next minute and runs ``speed`` times as fast as the wall clock (0: as fast as
possible), and each fetch returns the minutes that clock has completed. Replayed bars are all final.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from services.producer.sources.base import Fetch, empty_bars
from services.producer.sources.recording import read_recording

logger = logging.getLogger(__name__)

# With speed 0, one fetch returns at most this many minutes: memory stays flat and the producer polls
# delivery reports between chunks.
CHUNK_MINUTES = 120


class ReplaySource:
    name = "replay"

    def __init__(self, path: Path, tickers: list[str], speed: float) -> None:
        self.path = path
        self.speed = speed
        self._bars, skipped = read_recording(path, tickers)
        # Naive datetime64 in UTC: fast searchsorted over the sorted times.
        self._ts = self._bars["ts"].dt.tz_localize(None).to_numpy()
        self._minutes = np.unique(self._ts)
        self._next = 0  # index into _minutes of the first minute not yet returned
        self._clock_origin: tuple[datetime, datetime] | None = None  # (wall, replay) when the clock started
        self._finished_logged = False
        logger.info(
            "replay of %s: %d bars (rows skipped: %s), %d minutes, %s to %s at speed %s",
            path,
            len(self._bars),
            skipped.summary(),
            len(self._minutes),
            self._minutes[0] if len(self._minutes) else None,
            self._minutes[-1] if len(self._minutes) else None,
            speed or "as fast as possible",
        )

    @property
    def remaining_minutes(self) -> int:
        return len(self._minutes) - self._next

    def is_open(self, now: datetime) -> bool:
        return True

    def backfill(self, minutes: int, now: datetime) -> Iterator[Fetch]:
        stop = min(minutes, len(self._minutes))
        while self._next < stop:
            yield self._take(min(self._next + CHUNK_MINUTES, stop))

    def fetch(self, since: datetime, now: datetime) -> Fetch:
        if self._next >= len(self._minutes):
            if not self._finished_logged:
                logger.info("replay of %s finished: every bar was returned", self.path)
                self._finished_logged = True
            return Fetch(empty_bars(), closed_before=now)
        if self._clock_origin is None:
            self._clock_origin = (now, pd.Timestamp(self._minutes[self._next], tz="UTC").to_pydatetime())
        if self.speed == 0:
            stop = min(self._next + CHUNK_MINUTES, len(self._minutes))
        else:
            wall, replay = self._clock_origin
            replay_now = np.datetime64(pd.Timestamp(replay + (now - wall) * self.speed).tz_localize(None))
            # Minutes whose end the replay clock has passed.
            ends = self._minutes + np.timedelta64(1, "m")
            stop = max(self._next, int(np.searchsorted(ends, replay_now, side="right")))
        fetch = self._take(stop)
        return Fetch(fetch.bars, fetch.closed_before, more=self.speed == 0 and self.remaining_minutes > 0)

    def _take(self, stop: int) -> Fetch:
        """The bars of minutes ``[_next, stop)``; all final."""
        if stop <= self._next:
            return Fetch(empty_bars(), closed_before=_as_datetime(self._minutes[self._next]))
        lo = np.searchsorted(self._ts, self._minutes[self._next], side="left")
        hi = np.searchsorted(self._ts, self._minutes[stop - 1], side="right")
        self._next = stop
        closed = _as_datetime(self._minutes[stop - 1]) + timedelta(minutes=1)
        return Fetch(self._bars.iloc[lo:hi].reset_index(drop=True), closed_before=closed)


def _as_datetime(value: np.datetime64) -> datetime:
    moment: datetime = pd.Timestamp(value, tz="UTC").to_pydatetime()
    return moment
