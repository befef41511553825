"""The New York session clock, in one place: epoch minutes (UTC) to the minute of the regular session
(0 = the 09:30 bar), whatever the daylight-saving offset. Shared so the scorer (which never imports the
trainer) buckets minutes by the same clock the trainer forecasts with. No I/O."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

SESSION_TZ = "America/New_York"
SESSION_OPEN_MINUTE = 9 * 60 + 30
SESSION_MINUTES = 390
NEW_YORK = ZoneInfo(SESSION_TZ)


def session_minutes(minutes: np.ndarray) -> np.ndarray:
    """Epoch minutes -> minute of the New York session (0 = the 09:30 bar)."""
    local = pd.to_datetime(np.asarray(minutes, dtype=np.int64) * 60, unit="s", utc=True).tz_convert(
        SESSION_TZ
    )
    return np.asarray(local.hour * 60 + local.minute - SESSION_OPEN_MINUTE, dtype=np.int64)


def session_minutes_fast(minutes: np.ndarray) -> np.ndarray:
    """:func:`session_minutes` without pandas for a run of minutes under one UTC offset (a live tail)."""
    first, last = (
        datetime.fromtimestamp(int(m) * 60, NEW_YORK).utcoffset() for m in (minutes[0], minutes[-1])
    )
    if first != last or first is None:  # the tail spans a clock change
        return session_minutes(minutes)
    return (minutes + int(first.total_seconds()) // 60) % 1440 - SESSION_OPEN_MINUTE


# Cached: every ticker of a live minute asks for the same minute, and a minute's offset never changes.
@lru_cache(maxsize=8192)
def utc_offset_minutes(minute: int) -> int:
    """New York's UTC offset at an epoch minute, in minutes."""
    offset = datetime.fromtimestamp(minute * 60, NEW_YORK).utcoffset()
    assert offset is not None
    return int(offset.total_seconds()) // 60
