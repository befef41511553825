"""Every horizon of a minute's forecasts, from its one-minute forecasts: the range model's 80% ranges
(``intervals/range_state.py``) around the last close, and the point forecast carried to each horizon. No I/O.

The point forecast is the network's next close (the naive last close for a stand-in) at every horizon: no
return is predictable beyond a minute here, and hardly at one (docs/forecasting.md). A one-minute forecast
takes the range model's range where it has one (otherwise the calibration's interval, as before); a longer
horizon is forecast only when its target minute is in the same session and the range model has a range.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from services.trainer.forecaster.records import Forecast
from services.trainer.intervals.range_state import RangeState, fit_state, session_minute
from shared.session import SESSION_MINUTES

if TYPE_CHECKING:
    from services.trainer.forecaster.core import Forecaster


def fit_ranges(forecaster: Forecaster) -> None:
    """Fit the range model on the history held (training thread: off the lock but for the snapshot and
    the install), and fold into its state what arrived meanwhile."""
    with forecaster.lock:
        lineage = forecaster.lineage
        arrays = {
            t: (np.array(s.arrays()[0]), np.array(s.arrays()[1]))
            for t, s in forecaster.series.items()
            if s.minutes
        }
        variances = {t: dict(v) for t, v in forecaster.variances.items()}
    state = fit_state(arrays, variances, forecaster.config.horizons)
    with forecaster.lock:
        if state is not None:  # what arrived since the snapshot
            for t in state.column:
                series = forecaster.series.get(t)
                if series is None or not series.minutes:
                    continue
                minutes, closes = series.arrays()
                known = forecaster.variances.get(t, {})
                for k in range(int(np.searchsorted(minutes, state.last_folded(t), "right")), len(minutes)):
                    state.fold(t, int(minutes[k]), float(closes[k]), known.get(int(minutes[k]), math.nan))
        forecaster.range_state, forecaster.ranges_for = state, lineage


def with_horizons(forecaster: Forecaster, base: list[Forecast]) -> list[Forecast]:
    """``base`` (one-minute forecasts, lock held) with their ranges, each followed by its longer horizons."""
    if forecaster.lineage and forecaster.ranges_for != forecaster.lineage:
        fit_ranges(forecaster)  # a restored trainer: the range model is derived from the history
    sessions = {m: session_minute(m) for m in {fc.based_on for fc in base}}
    # The close's bar: the next minute is not the session's (a series off the session's clock keeps it).
    base = [fc for fc in base if sessions[fc.based_on] != SESSION_MINUTES - 1]
    state: RangeState | None = forecaster.range_state
    if state is None or not base:
        return base
    horizons = forecaster.config.horizons
    last = np.array([fc.last_close for fc in base])
    session = [sessions[fc.based_on] for fc in base]
    ranges = state.bounds([fc.ticker for fc in base], last, np.array(session, np.int64), horizons)
    lows = {h: lo.tolist() for h, (lo, _) in ranges.items()}
    highs = {h: hi.tolist() for h, (_, hi) in ranges.items()}
    out: list[Forecast] = []
    for i, fc in enumerate(base):
        ticker, based_on, _, yhat, last_close, version, trained_at, ar, q10, q90 = fc
        if 1 in lows and _ok(lows[1][i], highs[1][i]):
            q10, q90 = lows[1][i], highs[1][i]
        out.append(
            Forecast(ticker, based_on, based_on + 1, yhat, last_close, version, trained_at, ar, q10, q90)
        )
        for h in horizons:
            # A horizon without a range (no training session had room for it) is skipped like a bad range.
            if h == 1 or h not in lows or not 0 <= session[i] < SESSION_MINUTES - h:
                continue
            if not _ok(lows[h][i], highs[h][i]):
                continue
            out.append(
                Forecast(
                    ticker,
                    based_on,
                    based_on + h,
                    yhat,
                    last_close,
                    version,
                    trained_at,
                    ar,
                    lows[h][i],
                    highs[h][i],
                )
            )
    return out


def _ok(low: float, high: float) -> bool:
    return math.isfinite(low) and math.isfinite(high) and 0 < low <= high
