"""When the exchange trades, from ``exchange-calendars`` (holidays and early closes included)."""

from __future__ import annotations

from datetime import datetime, timedelta

import exchange_calendars as xcals
import pandas as pd

from shared.settings import SettingsError


class MarketHours:
    def __init__(self, calendar_name: str) -> None:
        try:
            self._calendar = xcals.get_calendar(calendar_name)
        except xcals.errors.InvalidCalendarName:
            raise SettingsError(
                f"exchange_calendar (PORTFOLIO_EXCHANGE_CALENDAR): unknown calendar {calendar_name!r}, "
                "e.g. XNYS, XNAS, XLON"
            ) from None
        self.name = calendar_name

    def is_open(self, now: datetime) -> bool:
        return bool(self._calendar.is_open_on_minute(pd.Timestamp(now).floor("min")))

    def next_open(self, now: datetime) -> datetime:
        opened: datetime = self._calendar.next_open(pd.Timestamp(now).floor("min")).to_pydatetime()
        return opened

    def start_of_last(self, minutes: int, now: datetime) -> datetime:
        """The start of the last ``minutes`` trading minutes before ``now`` (a Monday-morning backfill
        reaches back into Friday)."""
        end = pd.Timestamp(now).floor("min")
        # Ten calendar days hold at least 5 sessions; look further only for longer backfills.
        span = timedelta(days=10 + minutes // 390 * 2)
        trading = self._calendar.minutes_in_range(
            max(end - span, self._calendar.first_minute), min(end, self._calendar.last_minute)
        )
        if len(trading) == 0:
            start: datetime = (end - timedelta(minutes=minutes)).to_pydatetime()
            return start
        first: datetime = trading[max(0, len(trading) - minutes)].to_pydatetime()
        return first
