"""The trainer's forecast from carried states equals one full pass of the installed weights over the returns
from the anchor, through warm updates (re-primed states), filled minutes, a provisional bar and a cut."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from services.trainer.forecaster.core import Forecaster
from services.trainer.forecaster.records import NAIVE_VERSION, BarIn
from services.trainer.model.windows import scale, to_price
from services.trainer.serving.stream import anchor_of
from tests.unit.trainer.oracles import full_pass
from tests.unit.trainer.synthetic import sine_closes

from .test_forecasting import START, trained


def reference(forecaster: Forecaster, ticker: str) -> float:
    """A full pass over the current segment's returns from its anchor, with the installed weights, centred
    by the ticker's output offset (calibration.py)."""
    series, scaler = forecaster.series[ticker], forecaster.scalers[ticker]
    segment = series.segments(forecaster.config.ffill_max)[-1]
    count = len(segment.closes) - 1
    closes = segment.closes[anchor_of(count, forecaster.config.window) :]
    model = forecaster.model
    assert model is not None
    out = full_pass(model, scale(closes[:, None], [scaler])[None]) - forecaster.strategy.output_offset(ticker)
    return float(to_price(out, closes[-1:][:, None], [scaler])[0, 0])


def test_carried_state_forecasts_equal_a_full_pass_through_updates_gaps_and_a_cut() -> None:
    forecaster = trained("SINE", 600, update_every=1)  # new weights at every cycle below
    closes = sine_closes(900)
    minute, checked = START + 600, 0
    for i in range(600, 760):
        if i == 650:
            minute += 2  # two missing minutes: forward-filled, stepped with the filled close
        if i == 700:
            minute += 30  # a cut: naive until the new segment holds a window of returns
        [fc] = forecaster.step([BarIn("SINE", minute, float(closes[i]), final=False)])
        [fc] = forecaster.step([BarIn("SINE", minute, float(closes[i]) * 1.0001, rev=1, final=True)])
        if 700 <= i < 700 + forecaster.config.window:
            assert fc.model_version == NAIVE_VERSION
        else:
            assert fc.model_version == forecaster.model_version
            assert fc.yhat == pytest.approx(reference(forecaster, "SINE"), rel=1e-6), i
            checked += 1
        if i % 7 == 0:
            forecaster.train_cycle()  # new weights (a warm update), states re-primed
        minute += 1
    assert checked > 100 and forecaster.updates > 15
    assert np.isfinite(fc.yhat)


def test_a_ticker_stepped_while_new_weights_were_primed_is_caught_up_at_install() -> None:
    forecaster = trained("SINE", 600)
    closes = sine_closes(700)
    forecaster.step([BarIn("SINE", START + 600, float(closes[600]))])
    old = forecaster.serving
    assert old is not None
    with forecaster.lock:  # what _install does first (training thread)
        snapshots, scalers = old.snapshot(forecaster.series), dict(forecaster.scalers)
    # Meanwhile the polling thread steps a bar, then one after two missing (forward-filled) minutes.
    forecaster.step([BarIn("SINE", START + 601, float(closes[601]))])
    forecaster.step([BarIn("SINE", START + 604, float(closes[602]))])
    model = copy.deepcopy(forecaster.model)
    assert model is not None
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.01)  # other weights, as after a warm update
    fresh = old.primed(model, snapshots, scalers)
    fresh.adopt_moved(old, snapshots)
    assert fresh.states.states["SINE"].minute == START + 604  # caught up, not dropped
    forecaster.model, forecaster.serving = model, fresh
    [fc] = forecaster.step([BarIn("SINE", START + 605, float(closes[603]))])
    assert fc.model_version == forecaster.model_version
    assert fc.yhat == pytest.approx(reference(forecaster, "SINE"), rel=1e-6)
