"""The session clocks: epoch minutes (UTC) to the minute of a trading session (0 = its first bar), whatever
the daylight-saving offset. Shared so the scorer (which never imports the trainer) buckets minutes by the
same clock the trainer forecasts with. No I/O.

A clock is a value, passed to what needs it (and carried by what is fitted with it): ``XNYS`` is the New
York regular session (09:30-16:00 America/New_York, 390 minutes), ``UTC_DAY`` a session per UTC day
(1,440 minutes) for a market that trades around the clock (the synthetic source). ``PORTFOLIO_SESSION``
picks one (``Settings.session()``); :func:`clock_named` turns the name into the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

DAY_MINUTES = 1440


@dataclass(frozen=True)
class SessionClock:
    """A daily session: it opens ``open_minute`` minutes after local midnight in ``zone`` and lasts
    ``length`` minutes. A minute of the session outside ``[0, length)`` is outside the session (the night)."""

    name: str
    zone: str
    open_minute: int
    length: int

    def minute_of(self, minutes: np.ndarray) -> np.ndarray:
        """Epoch minutes -> minute of the session (0 = the opening bar)."""
        m = np.asarray(minutes, dtype=np.int64)
        if self.zone == "UTC":  # no offset to look up
            return m % DAY_MINUTES - self.open_minute
        local = pd.to_datetime(m * 60, unit="s", utc=True).tz_convert(self.zone)
        return np.asarray(local.hour * 60 + local.minute - self.open_minute, dtype=np.int64)

    def minute_of_tail(self, minutes: np.ndarray) -> np.ndarray:
        """:meth:`minute_of` without pandas for a run of minutes under one UTC offset (a live tail)."""
        first, last = self.utc_offset(int(minutes[0])), self.utc_offset(int(minutes[-1]))
        if first != last:  # the tail spans a clock change
            return self.minute_of(minutes)
        return (np.asarray(minutes, dtype=np.int64) + first) % DAY_MINUTES - self.open_minute

    def minute_at(self, minute: int) -> int:
        """:meth:`minute_of` of one epoch minute, without numpy (the live path asks for every bar)."""
        return (minute + self.utc_offset(minute)) % DAY_MINUTES - self.open_minute

    def utc_offset(self, minute: int) -> int:
        """The zone's UTC offset at an epoch minute, in minutes."""
        return 0 if self.zone == "UTC" else _utc_offset(self.zone, minute)


# Cached: every ticker of a live minute asks for the same minute, and a minute's offset never changes.
@lru_cache(maxsize=8192)
def _utc_offset(zone: str, minute: int) -> int:
    offset = datetime.fromtimestamp(minute * 60, ZoneInfo(zone)).utcoffset()
    assert offset is not None
    return int(offset.total_seconds()) // 60


XNYS = SessionClock("XNYS", "America/New_York", 9 * 60 + 30, 390)
UTC_DAY = SessionClock("24h", "UTC", 0, DAY_MINUTES)
CLOCKS = {clock.name: clock for clock in (XNYS, UTC_DAY)}


def clock_named(name: str) -> SessionClock:
    """The clock a ``PORTFOLIO_SESSION`` value names."""
    try:
        return CLOCKS[name]
    except KeyError:
        raise ValueError(f"no such session: {name} ({', '.join(CLOCKS)})") from None


def clock_for(minutes: np.ndarray) -> SessionClock:
    """The clock that fits a recording (its bars' epoch minutes): New York's when most of them fall in its
    regular session, else a session per UTC day (a market that trades around the clock, where New York's
    clock would leave most minutes outside the session)."""
    session = XNYS.minute_of(minutes)
    inside = (session >= 0) & (session < XNYS.length)
    return XNYS if len(inside) and float(np.mean(inside)) >= 0.5 else UTC_DAY
