"""The session clocks: New York's across a clock change, a UTC day's at midnight, the live paths equal to
the array form, and the setting that picks one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import get_args

import numpy as np
import pytest

from services.trainer.intervals.seasonal import session_ids
from shared.session import CLOCKS, UTC_DAY, XNYS, clock_for, clock_named
from shared.settings import CommonSettings, load_settings
from shared.settings.services import SESSION_LENGTH_MIN


def minute(year: int, month: int, day: int, hour: int, minute: int) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()) // 60


def test_new_york_opens_at_09_30_local_on_both_sides_of_the_clock_change() -> None:
    # The US clock moved on Sunday 2026-03-08 (07:00Z): Friday opens at 14:30Z (EST), Monday at 13:30Z (EDT).
    friday, monday = minute(2026, 3, 6, 14, 30), minute(2026, 3, 9, 13, 30)
    at = np.array([friday, friday + 389, friday + 390, monday - 1, monday, monday + 60])
    np.testing.assert_array_equal(XNYS.minute_of(at), [0, 389, 390, -1, 0, 60])
    assert [XNYS.minute_at(int(m)) for m in at] == [0, 389, 390, -1, 0, 60]
    assert XNYS.utc_offset(friday) == -300 and XNYS.utc_offset(monday) == -240
    # 14:30Z on Monday is an hour into the session, not its open.
    assert XNYS.minute_at(minute(2026, 3, 9, 14, 30)) == 60


def test_a_live_tail_across_the_clock_change_gets_the_array_form() -> None:
    change = minute(2026, 3, 8, 7, 0)
    for tail in (np.arange(change - 300, change + 300), np.arange(change - 300, change - 10)):
        np.testing.assert_array_equal(XNYS.minute_of_tail(tail), XNYS.minute_of(tail))


def test_a_utc_day_is_one_session_of_1440_minutes_from_midnight() -> None:
    midnight = minute(2026, 3, 9, 0, 0)
    at = np.arange(midnight - 3, midnight + 3)
    np.testing.assert_array_equal(UTC_DAY.minute_of(at), [1437, 1438, 1439, 0, 1, 2])
    np.testing.assert_array_equal(UTC_DAY.minute_of_tail(at), [1437, 1438, 1439, 0, 1, 2])
    assert [UTC_DAY.minute_at(int(m)) for m in at] == [1437, 1438, 1439, 0, 1, 2]
    # Midnight starts a new session (no return, no range spans it); New York's clock change is not its.
    assert session_ids(UTC_DAY.minute_of(at)).tolist() == [0, 0, 0, 1, 1, 1]
    assert UTC_DAY.minute_at(minute(2026, 3, 9, 13, 30)) == 13 * 60 + 30
    day = np.arange(midnight, midnight + UTC_DAY.length)
    assert ((UTC_DAY.minute_of(day) >= 0) & (UTC_DAY.minute_of(day) < UTC_DAY.length)).all()


def test_the_clock_that_fits_a_recording() -> None:
    friday = minute(2026, 3, 6, 14, 30)
    assert clock_for(np.arange(friday, friday + 390)) is XNYS
    assert clock_for(np.arange(friday - 600, friday + 840)) is UTC_DAY  # around the clock
    assert clock_named("24h") is UTC_DAY and clock_named("XNYS") is XNYS
    with pytest.raises(ValueError, match="no such session"):
        clock_named("XLON")


def test_the_setting_names_every_clock_and_knows_its_length() -> None:
    assert {c.name: c.length for c in CLOCKS.values()} == SESSION_LENGTH_MIN
    field = CommonSettings.model_fields["session"].annotation
    assert set(get_args(get_args(field)[0])) == set(CLOCKS)


def test_unset_the_session_follows_the_producers_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTFOLIO_SESSION", raising=False)
    assert load_settings(producer={"source": "synthetic"}).session() == "24h"
    assert load_settings(producer={"source": "yfinance"}).session() == "XNYS"
    monkeypatch.setenv("PORTFOLIO_SESSION", "XNYS")
    assert load_settings(producer={"source": "synthetic"}).session() == "XNYS"
    monkeypatch.setenv("PORTFOLIO_SESSION", "")
    assert load_settings(producer={"source": "synthetic"}).session() == "24h"
