"""Centred forecasts and their 80% interval on the live path: σ̂ as the research's volatility model computes
it, intervals published, kept through a restart, and nothing forecast at or before t depends on later bars."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from services.scoring.predictions import interval_coverage
from services.scoring.tables import rows_from_frames, table
from services.trainer.forecaster.core import Forecaster
from services.trainer.forecaster.records import NAIVE_VERSION, BarIn
from services.trainer.intervals.calibration import last_sigma
from services.trainer.intervals.volatility import VolatilityModel
from services.trainer.messages import prediction_message
from shared.schemas import decode_prediction, encode
from tests.unit.trainer.synthetic import sine_closes, tiny_config

from .test_forecasting import START, trained


def test_live_sigma_is_the_volatility_models_last_row() -> None:
    rng = np.random.default_rng(3)
    z = rng.standard_t(4, 300) * np.repeat([1.0, 2.5, 0.7], 100)
    z[[0, 150, 151]] = np.nan  # cuts: no return
    session = np.arange(300) % 390
    vol = VolatilityModel.fit(z[:, None] * 1.3, session, bucket=10, halflife=30)
    expected = vol.sigma(z[:, None], session)[:, 0]
    for end in (40, 152, 300):
        assert last_sigma(vol, z[:end], session[:end]) == pytest.approx(expected[end - 1], rel=1e-9)


def test_model_forecasts_carry_an_interval_kept_through_a_restart() -> None:
    forecaster = trained()
    assert forecaster.calibration is not None and "SINE" in forecaster.calibration.offsets
    [fc] = forecaster.forecast(["SINE"])
    assert fc.model_version != NAIVE_VERSION
    assert fc.q10 is not None and fc.q90 is not None
    assert 0 < fc.q10 < fc.q90 and abs(fc.q90 / fc.last_close - 1) < 0.05
    message = decode_prediction(encode(prediction_message(fc, "return")))
    assert (message.q10, message.q90) == (fc.q10, fc.q90)

    state = forecaster.state()
    assert state is not None
    resumed = Forecaster(forecaster.config)
    assert resumed.restore(state)
    for i, close in enumerate(sine_closes(600)):
        resumed.ingest("SINE", START + i, float(close))
    [again] = resumed.forecast(["SINE"])
    assert again.yhat == pytest.approx(fc.yhat, rel=1e-9)
    assert (again.q10, again.q90) == pytest.approx((fc.q10, fc.q90), rel=1e-9)

    # A stand-in (no model for this ticker) has no interval.
    forecaster.ingest("NEW", START + 600, 50.0)
    [standin] = forecaster.forecast(["NEW"])
    assert standin.model_version == NAIVE_VERSION and standin.q10 is None


def _run(bars: list[BarIn], forecaster: Forecaster) -> dict[tuple[int, int], tuple[float, float | None]]:
    out = {}
    for bar in bars:
        for fc in forecaster.step([bar]):
            out[(fc.based_on, fc.minute)] = (fc.yhat, fc.q90)
        forecaster.train_cycle()
    return out


def test_shifting_the_future_by_one_minute_changes_no_live_forecast_at_or_before_t() -> None:
    closes = sine_closes(700)
    forecaster = trained()
    state = forecaster.state()
    assert state is not None
    t = START + 640
    bars = [BarIn("SINE", START + i, float(closes[i])) for i in range(600, 680)]
    shifted = [b if b.minute <= t else BarIn("SINE", b.minute + 1, b.close * 1.001) for b in bars]
    runs = []
    for feed in (bars, shifted):
        twin = Forecaster(tiny_config(max_epochs=5))
        # A copy each: restoring shares the optimizer's moment tensors with the dict it was given.
        assert twin.restore(copy.deepcopy(state))
        for i in range(600):
            twin.ingest("SINE", START + i, float(closes[i]))
        runs.append(_run(feed, twin))
    known = {k: v for k, v in runs[0].items() if k[0] <= t}
    assert len(known) == t - (START + 600) + 1 and all(v[1] is not None for v in known.values())
    assert {k: v for k, v in runs[1].items() if k[0] <= t} == known
    assert {k: v for k, v in runs[1].items() if k[0] > t} != {k: v for k, v in runs[0].items() if k[0] > t}


def test_interval_coverage_is_scored_per_ticker_and_pooled_and_shown() -> None:
    ts = pd.date_range("2026-03-02 14:31", periods=10, freq="min", tz="UTC")
    closes = pd.DataFrame(
        {"ticker": ["A"] * 11 + ["B"] * 11, "ts": list(ts.insert(0, ts[0] - pd.Timedelta("1min"))) * 2,
         "close": [100.0] * 22, "final": True}
    )  # fmt: skip
    predictions = pd.DataFrame(
        {"ticker": ["A"] * 10 + ["B"] * 10, "ts": list(ts) * 2,
         "based_on_ts": list(ts - pd.Timedelta("1min")) * 2, "yhat": 100.0,
         "model_version": ["per_stock-return-abcd1234.0"] * 19 + [NAIVE_VERSION],
         "q10": [99.0] * 8 + [100.5, 101.0] + [99.0] * 10, "q90": [101.0] * 20}
    )  # fmt: skip
    predictions.loc[12, ["q10", "q90"]] = np.nan  # a forecast without an interval is not counted
    from services.scoring.predictions import score_predictions

    covers = interval_coverage(score_predictions(closes, predictions))
    assert (covers["A"].n, covers["A"].inside, covers["A"].above) == (10, 8, 0)
    assert (covers["A"].below, covers["B"].n, covers["B"].inside) == (2, 8, 8)  # stand-in and NaN left out
    assert covers["*"].share == pytest.approx(16 / 18)
    rows = rows_from_frames(closes, predictions)
    pooled = next(r for r in rows if r["ticker"] == "*" and r["forecaster"] == "model")
    assert pooled["in80"] == pytest.approx(16 / 18) and pooled["in80_ci_low"] < 16 / 18
    assert "in 80%" in table(rows) and "88.9%" in table(rows)
