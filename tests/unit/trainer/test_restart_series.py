"""A checkpoint carries the held series: a trainer restored from it, fed the bars that came after, forecasts
what one that never stopped forecasts (every horizon); a checkpoint without series still restores."""

from __future__ import annotations

import pytest

from services.trainer.forecaster import checkpoint_state
from services.trainer.forecaster.core import Forecaster
from services.trainer.forecaster.records import Forecast
from services.trainer.stores.checkpoints import from_bytes, to_bytes
from shared.session import UTC_DAY
from tests.unit.trainer.synthetic import tiny_config
from tests.unit.trainer.test_horizons import OPEN, market, trained


def key(fc: Forecast) -> tuple[str, int, int]:
    return fc.ticker, fc.based_on, fc.minute


@pytest.mark.parametrize("mode", ["per_stock", "portfolio"])
def test_a_trainer_restored_with_its_series_forecasts_as_one_that_never_stopped(mode: str) -> None:
    bars = market(7)
    before = [b for b in bars if b.minute < OPEN + 6 * 1440]
    after = [b for b in bars if b.minute >= OPEN + 6 * 1440]
    uninterrupted = trained(before, mode=mode)
    # Checkpointed a while after the cold start: the series, the carried states and the range model's rows
    # have all moved on since.
    stop = 3 * 120
    uninterrupted.step(after[:stop])
    state = uninterrupted.state()
    assert state is not None
    saved = from_bytes(to_bytes(state))  # as stored: torch.load(weights_only=True) accepts it
    assert checkpoint_state.reached(saved) == after[stop - 1].minute
    after = after[stop:]

    restarted = Forecaster(uninterrupted.config)
    assert restarted.restore(saved)
    assert sorted(restarted.tickers()) == sorted(uninterrupted.tickers())
    expected, got = [], []
    for i in range(0, len(after), 3):  # a minute's three tickers at a time, as polls bring them
        expected += uninterrupted.step(after[i : i + 3])
        got += restarted.step(after[i : i + 3])
    assert {fc.minute - fc.based_on for fc in expected} == {1, 5, 15, 30}
    assert [key(fc) for fc in got] == [key(fc) for fc in expected]
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.model_version == theirs.model_version
        values = mine.yhat, mine.q10, mine.q90
        assert values == pytest.approx((theirs.yhat, theirs.q10, theirs.q90), rel=1e-9)


def test_a_checkpoint_without_series_restores_the_model_and_leaves_the_history_to_be_read() -> None:
    forecaster = trained([b for b in market(3) if b.minute < OPEN + 2 * 1440])
    state = forecaster.state()
    assert state is not None
    del state["series"]  # as written before checkpoints carried them
    restarted = Forecaster(forecaster.config)
    assert restarted.restore(state)
    assert restarted.model_version == forecaster.model_version
    assert restarted.tickers() == [] and checkpoint_state.reached(state) is None


def test_a_checkpoint_made_on_another_session_clock_is_not_restored() -> None:
    # Its range model's profile and its calibration's pattern are minutes of that session.
    made = {"mode": "per_stock", "target": "return", "layers": 1, "units": 8, "window": 10}
    on_utc_day = Forecaster(tiny_config(session=UTC_DAY))
    for config in ({**made, "session": "XNYS"}, made):  # one written before the setting was New York's
        assert not checkpoint_state.restore(on_utc_day, {"format": 1, "config": config})
    assert on_utc_day.trainee is None
