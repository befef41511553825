from __future__ import annotations

import numpy as np

from services.trainer.model.series import TickerSeries, align, regularize


def test_revised_bar_replaces_earlier_close() -> None:
    s = TickerSeries(capacity=100)
    s.add(10, 1.0, rev=0)
    s.add(11, 2.0, rev=0)
    assert s.add(10, 1.5, rev=1)
    assert s.close_at(10) == 1.5


def test_stale_revision_is_ignored() -> None:
    s = TickerSeries(capacity=100)
    s.add(10, 1.0, rev=2)
    assert not s.add(10, 9.0, rev=1)
    assert s.close_at(10) == 1.0


def test_out_of_order_bar_is_inserted_in_time_order() -> None:
    s = TickerSeries(capacity=100)
    for minute in (10, 12, 11):
        s.add(minute, float(minute))
    assert s.minutes == [10, 11, 12]
    assert s.closes == [10.0, 11.0, 12.0]


def test_nan_or_non_positive_close_is_refused() -> None:
    s = TickerSeries(capacity=100)
    assert not s.add(10, float("nan"))
    assert not s.add(11, 0.0)
    assert s.minutes == []


def test_short_gap_is_forward_filled_and_long_gap_cuts_the_series() -> None:
    segments = regularize([0, 1, 4, 5, 20, 21], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], ffill_max=2)
    assert [seg.start for seg in segments] == [0, 20]
    np.testing.assert_array_equal(segments[0].closes, [1.0, 2.0, 2.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(segments[1].closes, [5.0, 6.0])


def test_no_forecast_window_spans_a_cut() -> None:
    s = TickerSeries(capacity=100)
    for minute in range(10):
        s.add(minute, 1.0 + minute)
    for minute in range(100, 103):  # the next morning
        s.add(minute, 2.0)
    assert s.tail(3, ffill_max=5) is not None
    assert s.tail(4, ffill_max=5) is None


def test_rolling_history_keeps_the_newest_minutes() -> None:
    s = TickerSeries(capacity=50)
    for minute in range(500):
        s.add(minute, 1.0)
    assert s.minutes[-1] == 499
    assert 50 <= len(s.minutes) <= 50 + 16


def test_portfolio_grid_has_no_nan_and_only_common_minutes() -> None:
    a, b = TickerSeries(100), TickerSeries(100)
    for minute in range(30):
        a.add(minute, 10.0 + minute)
    for minute in range(5, 40):
        if minute not in (12, 13):  # a short hole: forward-filled
            b.add(minute, 20.0 + minute)
    segments = align({"A": a, "B": b}, ["A", "B"], ffill_max=3)
    assert len(segments) == 1
    start, grid = segments[0]
    assert start == 5 and grid.shape == (25, 2)
    assert not np.isnan(grid).any()
    assert grid[12 - 5, 1] == grid[11 - 5, 1]
