"""The intervals of many tickers at once equal the per-ticker ``Calibration.bounds`` (float rounding), through
filled minutes, cuts, short histories, a clock change and a revised close; and the series' numpy mirror
stays equal to its lists."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from services.trainer.intervals.calibration import Calibration
from services.trainer.intervals.interval_rows import bounds_rows
from services.trainer.intervals.volatility import IntervalModel, VolatilityModel
from services.trainer.model.series import TickerSeries, to_minute

FFILL = 5
# 2026-03-06 14:30 UTC: a Friday's open; New York moves its clocks on Sunday 2026-03-08.
OPEN = to_minute(datetime(2026, 3, 6, 14, 30, tzinfo=UTC))


def calibration() -> Calibration:
    rng = np.random.default_rng(1)
    pattern = 0.5 + rng.random(39)
    return Calibration(
        {},
        VolatilityModel(np.array([1.3]), pattern, 10, 30.0),
        IntervalModel((0.1, 0.9), np.array([[-1.2, 1.4]])),
    )


def series(seed: int, points: int, start: int = OPEN) -> TickerSeries:
    """Bars with random gaps: mostly none, some filled (<= FFILL), some cuts (a halt, the night)."""
    rng = np.random.default_rng(seed)
    s = TickerSeries(capacity=600)
    minute, close = start, 50.0 + seed
    for _ in range(points):
        s.add(minute, close)
        close *= float(np.exp(0.002 * rng.standard_normal()))
        roll = rng.random()
        minute += 1 + (int(rng.integers(1, FFILL + 1)) if roll < 0.1 else 40 if roll < 0.12 else 0)
    return s


def test_bounds_of_many_tickers_equal_the_per_ticker_bounds() -> None:
    cal = calibration()
    tickers = [series(i, n) for i, n in enumerate([1, 2, 7, 60, 399, 400, 401, 700, 900])]
    tickers.append(series(50, 800, start=OPEN + 1440))  # its tail spans the clock change
    tickers[3].add(tickers[3].minutes[-1], tickers[3].closes[-1] * 1.01, rev=1)  # a revised newest close
    tickers[4].add(tickers[4].minutes[-3] + 1, tickers[4].closes[-3])  # a late bar (if the minute was empty)
    scales = np.linspace(0.5, 2.0, len(tickers))
    forecasts = np.array([s.closes[-1] * (1 + 0.001 * i) for i, s in enumerate(tickers)])
    rows = bounds_rows(cal, tickers, scales, forecasts, FFILL)
    for s, scale, forecast, row in zip(tickers, scales, forecasts, rows, strict=True):
        m, c = s.arrays()
        assert m.tolist() == s.minutes and c.tolist() == s.closes
        one = cal.bounds(s.minutes, s.closes, float(scale), float(forecast), FFILL)
        assert one is not None and row is not None
        assert row == pytest.approx(one, rel=1e-12)


def test_a_non_finite_interval_is_none() -> None:
    cal = calibration()
    s = series(3, 100)
    assert bounds_rows(cal, [s, s], np.array([1.0, 1.0]), np.array([np.nan, s.closes[-1]]), FFILL)[0] is None
    assert bounds_rows(cal, [], np.array([]), np.array([]), FFILL) == []
