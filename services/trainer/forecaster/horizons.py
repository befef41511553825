"""Every horizon of a minute's forecasts, from its one-minute forecasts: the range model's 80% ranges
(``intervals/range_state.py``) around the last close, and the point forecast carried to each horizon. No I/O.

The point forecast is the network's next close (the naive last close for a stand-in) at every horizon: no
return is predictable beyond a minute here, and hardly at one (docs/forecasting.md). A one-minute forecast
takes the range model's range where it has one (otherwise the calibration's interval, as before); a longer
horizon is forecast only when its target minute is in the same session and the range model has a range.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from services.trainer.forecaster.records import Forecast
from services.trainer.intervals.horizon_ranges import no_pause
from services.trainer.intervals.range_state import RangeState, fit_state

if TYPE_CHECKING:
    from services.trainer.forecaster.core import Forecaster

# Per ticker, (q10, q90) of its next close, or None: a strategy's interval (Strategy.intervals).
Intervals = dict[str, tuple[float, float] | None]


def fit_ranges(forecaster: Forecaster) -> None:
    """Fit the range model on the history held and install it for the current lineage (a restored trainer:
    :func:`with_horizons`, ``checkpoint_state.py``; on the polling thread, so without giving way)."""
    adopt_ranges(forecaster, prepare_ranges(forecaster, no_pause), forecaster.lineage)


def prepare_ranges(forecaster: Forecaster, pause: Callable[[], None]) -> RangeState | None:
    """The range model fitted on the history held, off the lock but for the snapshot (training thread, at a
    cold start: it is installed together with the new weights, :func:`adopt_ranges`), calling ``pause``
    between its steps (``Forecaster.pause``: giving way to the minutes being served)."""
    with forecaster.lock:
        arrays = {
            t: (np.array(s.arrays()[0]), np.array(s.arrays()[1]))
            for t, s in forecaster.series.items()
            if s.minutes
        }
        variances = {t: dict(v) for t, v in forecaster.variances.items()}
    return fit_state(arrays, variances, forecaster.config.horizons, forecaster.config.session, pause=pause)


def adopt_ranges(forecaster: Forecaster, state: RangeState | None, lineage: str) -> None:
    """Install ``state`` (from :func:`prepare_ranges`) for ``lineage``, folding into it the bars that arrived
    since its snapshot (lock held here: a few minutes' bars at most)."""
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
            # What the fit's last minutes teach, learnt here rather than inside the first minute served.
            state.recalibration.learn()
        forecaster.range_state, forecaster.ranges_for = state, lineage


def with_horizons(
    forecaster: Forecaster, base: list[Forecast], fallback: Callable[[list[str]], Intervals]
) -> list[Forecast]:
    """``base`` (one-minute forecasts without a range, lock held) with their ranges, each followed by its
    longer horizons. A model forecast the range model gives no one-minute range takes ``fallback``'s (the
    strategy's interval; asked only for those: at 500 tickers it cost ~1 ms of every minute for ranges the
    range model then replaced, issue 18)."""
    if forecaster.lineage and forecaster.ranges_for != forecaster.lineage:
        fit_ranges(forecaster)  # a restored trainer: the range model is derived from the history
    clock = forecaster.config.session
    sessions = {m: clock.minute_at(m) for m in {fc.based_on for fc in base}}
    # The close's bar: the next minute is not the session's (a series off the session's clock keeps it).
    base = [fc for fc in base if sessions[fc.based_on] != clock.length - 1]
    state: RangeState | None = forecaster.range_state
    if state is None or not base:
        return _with_fallback(base, fallback, [True] * len(base))
    horizons = forecaster.config.horizons
    last = np.array([fc.last_close for fc in base])
    session = [sessions[fc.based_on] for fc in base]
    ranges = state.bounds([fc.ticker for fc in base], last, np.array(session, np.int64), horizons)
    # Per horizon, whether each forecast gets it: a finite, positive range (all rows at once) and,
    # beyond the next minute, a target inside the session.
    lows: dict[int, list[float]] = {}
    highs: dict[int, list[float]] = {}
    given: dict[int, list[bool]] = {}
    at = np.array(session, np.int64)
    for h, (lo, hi) in ranges.items():
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(lo) & np.isfinite(hi) & (lo > 0) & (lo <= hi)
        if h != 1:
            ok &= (at >= 0) & (at < clock.length - h)
        lows[h], highs[h], given[h] = lo.tolist(), hi.tolist(), ok.tolist()
    longer = [h for h in horizons if h != 1 and h in given]  # a horizon without weights gets none
    base = _with_fallback(base, fallback, [not ok for ok in given.get(1, [False] * len(base))])
    out: list[Forecast] = []
    for i, fc in enumerate(base):
        ticker, based_on, _, yhat, last_close, version, trained_at, ar, _, _ = fc
        if 1 in given and given[1][i]:
            fc = Forecast(*fc[:8], lows[1][i], highs[1][i])  # noqa: PLW2901 (with the range model's range)
        out.append(fc)
        out.extend(
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
            for h in longer
            if given[h][i]
        )
    return out


def _with_fallback(
    base: list[Forecast], fallback: Callable[[list[str]], Intervals], wanted: list[bool]
) -> list[Forecast]:
    """``base`` with ``fallback``'s interval on the forecasts ``wanted`` (where it gives one)."""
    asked = [fc.ticker for fc, want in zip(base, wanted, strict=True) if want]
    intervals = fallback(asked) if asked else {}
    if not intervals:
        return base
    out = []
    for fc in base:
        q = intervals.get(fc.ticker)
        out.append(fc if q is None else Forecast(*fc[:8], q[0], q[1]))
    return out
