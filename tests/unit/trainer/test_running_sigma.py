"""The running σ̂: stepped bar by bar (filled minutes, a cut, provisional revisions, a clock change) it is
``VolatilityModel.sigma`` (pandas ``ewm``) over every row since the state was built; a provisional bar is
folded once; an irregular event rebuilds it to the tail form ``Calibration.bounds`` uses; and the forecaster
publishes intervals from it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pytest

from services.trainer.forecaster.records import BarIn
from services.trainer.intervals.calibration import Calibration, standardized_returns
from services.trainer.intervals.interval_rows import EwSums, close_bounds
from services.trainer.intervals.running_sigma import RunningSigma
from services.trainer.model.series import TickerSeries, regularize, to_minute
from shared.session import XNYS
from tests.unit.trainer.synthetic import sine_closes
from tests.unit.trainer.test_forecasting import START, trained
from tests.unit.trainer.test_interval_rows import FFILL, calibration

# 2026-03-06 14:30 UTC: a Friday's open; New York moves its clocks on Sunday 2026-03-08.
OPEN = to_minute(datetime(2026, 3, 6, 14, 30, tzinfo=UTC))
SCALE = 0.7


class Counted(RunningSigma):
    """Counts the tickers rebuilt from their tail (the slow path)."""

    rebuilt = 0

    def _rebuild(self, series: Sequence[TickerSeries], scales: np.ndarray) -> EwSums:
        self.rebuilt += len(series)
        return super()._rebuild(series, scales)


def reference(cal: Calibration, s: TickerSeries, scale: float, first: int = 0) -> float:
    """σ̂ at the newest bar with infinite memory: ``VolatilityModel.sigma`` over every row from point
    ``first`` of the series."""
    z, at = standardized_returns(regularize(s.minutes[first:], s.closes[first:], FFILL), scale)
    return float(cal.volatility.sigma(z[:, None], XNYS.minute_of(at))[-1, 0]) * scale


def walk(seed: int, points: int) -> list[tuple[int, float, int, bool]]:
    """Bars (minute, close, rev, final): mostly the next minute, some after filled minutes, a cut (the
    night, over the clock change), and provisional bars revised before they turn final."""
    rng = np.random.default_rng(seed)
    bars, minute, close = [], OPEN, 50.0
    for i in range(points):
        if rng.random() < 0.15:
            bars.append((minute, close * 1.002, 0, False))
            bars.append((minute, close * 0.999, 1, False))
            bars.append((minute, close, 2, True))
        else:
            bars.append((minute, close, 0, True))
        close *= float(np.exp(0.002 * rng.standard_normal()))
        roll = rng.random()
        minute += 1 + (int(rng.integers(1, FFILL + 1)) if roll < 0.1 else 0)
        if i == points // 2:
            minute += 2 * 1440 + 60  # a cut across the weekend's clock change
    return bars


def test_stepping_bar_by_bar_is_the_infinite_memory_volatility_model() -> None:
    cal = calibration()
    running = Counted(cal, FFILL)
    s = TickerSeries(capacity=3_000)
    tail_gap = 0.0
    for minute, close, rev, final in walk(7, 900):
        assert s.add(minute, close, rev)
        [sigma] = running.sigmas(["A"], [s], np.array([SCALE]), [final])
        assert sigma == pytest.approx(reference(cal, s, SCALE), rel=1e-12), (minute, rev)
        c = s.arrays()[1]
        tail = close_bounds(cal, c[-1:], np.array([sigma]), c[-1:])[0]
        one = cal.bounds(s.minutes, s.closes, SCALE, s.closes[-1], FFILL)
        assert tail is not None and one is not None
        tail_gap = max(tail_gap, abs(tail[1] / one[1] - 1))
    assert running.rebuilt == 1  # once, at the second bar; every other bar (fills, the cut) was stepped
    # The 400-point tail form drops the oldest weight: close to, not equal to, the running level.
    assert 1e-12 < tail_gap < 1e-3


def test_a_provisional_bar_then_its_final_revision_is_folded_once() -> None:
    cal = calibration()
    revised, direct = RunningSigma(cal, FFILL), RunningSigma(cal, FFILL)
    a, b = TickerSeries(capacity=600), TickerSeries(capacity=600)
    for i, close in enumerate(sine_closes(50)):
        for running, s in ((revised, a), (direct, b)):
            s.add(OPEN + i, float(close))
            running.sigmas(["A"], [s], np.array([SCALE]), [True])
    last = a.closes[-1]
    for rev, close in enumerate([last * 1.01, last * 0.98, last * 1.003]):
        a.add(OPEN + 50, close, rev)
        running_sigma = revised.sigmas(["A"], [a], np.array([SCALE]), [rev == 2])
    b.add(OPEN + 50, last * 1.003)
    assert running_sigma == pytest.approx(direct.sigmas(["A"], [b], np.array([SCALE]), [True]), rel=1e-15)
    row_a, row_b = revised._row["A"], direct._row["A"]
    assert revised.b[row_a] == pytest.approx(direct.b[row_b], rel=1e-15)
    assert revised.a[row_a] == pytest.approx(direct.a[row_b], rel=1e-15)
    assert revised.minute[row_a] == OPEN + 50


@pytest.mark.parametrize(
    "event", ["revised earlier", "late bar", "scale", "refresh", "unseen bars", "unseen revision"]
)
def test_an_irregular_event_rebuilds_the_state_to_the_tail_form(event: str) -> None:
    cal = calibration()
    running = Counted(cal, FFILL)
    s = TickerSeries(capacity=3_000)
    scale = SCALE
    bars = walk(3, 600)[:500]
    while not bars[-1][3]:
        bars.pop()  # end on a final bar: the state is at the newest
    for minute, close, rev, final in bars:
        s.add(minute, close, rev)
        running.sigmas(["A"], [s], np.array([scale]), [final])
    before = running.rebuilt
    if event == "revised earlier":
        s.add(s.minutes[-5], s.closes[-5] * 1.01, rev=9)
    elif event == "late bar":
        s.add(s.minutes[-1] - 1 if s.minutes[-2] != s.minutes[-1] - 1 else s.minutes[-3] + 1, s.closes[-1])
    elif event == "scale":
        scale = 1.1
    elif event == "unseen bars":  # ingested without a forecast in between
        s.add(s.minutes[-1] + 1, s.closes[-1] * 1.001)
        s.add(s.minutes[-1] + 1, s.closes[-1] * 0.999)
    elif event == "unseen revision":  # an earlier bar revised, then the next bar, without a forecast between
        s.add(s.minutes[-5], s.closes[-5] * 1.01, rev=9)
        s.add(s.minutes[-1] + 1, s.closes[-1] * 1.001)
    [sigma] = running.sigmas(["A"], [s], np.array([scale]), [True])
    assert running.rebuilt == before + 1
    forecast = s.closes[-1] * 1.0005
    [bounds] = close_bounds(cal, np.array(s.closes[-1:]), np.array([sigma]), np.array([forecast]))
    assert bounds == pytest.approx(cal.bounds(s.minutes, s.closes, scale, forecast, FFILL), rel=1e-12)
    # And stepping resumes from there.
    s.add(s.minutes[-1] + 1, s.closes[-1] * 1.001)
    running.sigmas(["A"], [s], np.array([scale]), [True])
    assert running.rebuilt == before + 1


def test_a_first_bar_has_the_training_level_and_a_forgotten_ticker_no_state() -> None:
    cal = calibration()
    running = RunningSigma(cal, FFILL, rows=1)
    one, two = TickerSeries(capacity=10), TickerSeries(capacity=10)
    one.add(OPEN, 10.0)
    two.add(OPEN, 10.0)
    two.add(OPEN + 1, 10.1)
    sigma = running.sigmas(["ONE", "TWO"], [one, two], np.array([1.0, 1.0]), [True, True])
    ahead = cal.volatility.pattern[0]  # the minute after the open
    assert sigma[0] == pytest.approx(ahead * cal.volatility.scale[0], rel=1e-15)
    assert "ONE" not in running and "TWO" in running
    running.forget(["TWO"])
    assert "TWO" not in running


def test_the_forecaster_publishes_intervals_from_the_running_state() -> None:
    forecaster = trained()
    closes = sine_closes(640)
    cal = forecaster.calibration
    assert cal is not None
    for i in range(600, 640):
        [fc] = forecaster.step([BarIn("SINE", START + i, float(closes[i]))])
        assert fc.q10 is not None and fc.q90 is not None
        scale = forecaster.scalers["SINE"].scale  # type: ignore[union-attr]
        # Built at the first forecast (bar 600) from the 399 points before it, stepped since.
        sigma = reference(cal, forecaster.series["SINE"], scale, first=600 - 399)
        expected = cal.interval.close_bounds(
            np.array([fc.last_close]), np.log(np.array([fc.yhat / fc.last_close])), np.array([sigma])
        )[0]
        assert (fc.q10, fc.q90) == pytest.approx(tuple(expected), rel=1e-9)
    assert forecaster.running_sigma is not None and "SINE" in forecaster.running_sigma
    forecaster.forget(["SINE"])
    assert "SINE" not in forecaster.running_sigma
