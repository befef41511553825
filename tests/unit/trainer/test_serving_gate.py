"""The training thread gives way to the minutes being served (services/trainer/serving/gate.py), and what a
cold start hands to the polling thread is ready when its weights are: every horizon's range model, every
ticker's carried state, the refresh."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from services.trainer.forecaster.core import Forecaster
from services.trainer.forecaster.records import Forecast
from services.trainer.serving import gate as gate_module
from services.trainer.serving.gate import ServingGate
from shared import heap
from tests.unit.trainer.synthetic import tiny_config
from tests.unit.trainer.test_horizons import HORIZONS, OPEN, by_horizon, market


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    gc.unfreeze()


def recording(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """``heap.settle`` replaced by a recorder of its calls."""
    settled: list[bool] = []

    def settle() -> int:
        settled.append(True)
        return 0

    monkeypatch.setattr(heap, "settle", settle)
    return settled


def giving_way(gate: ServingGate) -> threading.Thread:
    thread = threading.Thread(target=gate.give_way, daemon=True)
    thread.start()
    return thread


def test_the_training_thread_waits_while_a_minute_is_served_and_goes_on_when_it_is_over() -> None:
    gate = ServingGate(max_wait_s=60.0)
    assert not gate.busy
    gate.give_way()  # nothing served: no wait at all (the test would hang otherwise)
    gate.serving()
    waiting = giving_way(gate)
    waiting.join(0.2)
    assert waiting.is_alive()
    gate.quiet()
    waiting.join(5.0)
    assert not waiting.is_alive()


def test_a_long_busy_spell_does_not_hold_training_back() -> None:
    # A backlog keeps the polling thread busy poll after poll: the wait ends with the spell's max_wait_s.
    gate = ServingGate(max_wait_s=0.05)
    gate.serving()
    waiting = giving_way(gate)
    waiting.join(5.0)
    assert not waiting.is_alive()
    assert gate.busy
    gate.give_way()  # later calls in the same spell do not wait again


def test_a_cycles_garbage_is_collected_at_the_next_quiet_poll_not_during_a_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settled = recording(monkeypatch)
    gate = ServingGate()
    gate.serving()
    gate.settle_later()
    gate.serving()  # the minute's second poll
    assert settled == []
    gate.quiet()
    assert settled == [True]
    gate.quiet()
    assert settled == [True]  # once per request


def test_a_collection_overdue_runs_inside_a_busy_spell(monkeypatch: pytest.MonkeyPatch) -> None:
    settled = recording(monkeypatch)
    monkeypatch.setattr(gate_module, "SETTLE_OVERDUE_S", 0.0)
    gate = ServingGate()
    gate.serving()
    gate.settle_later()
    gate.serving()
    assert settled == [True]


def test_full_collections_are_left_to_settle() -> None:
    first, second, _ = gc.get_threshold()
    heap.defer_full_collections()
    assert gc.get_threshold()[:2] == (first, second)
    assert gc.get_threshold()[2] >= 2**31 - 1


def test_a_minute_served_between_a_cold_starts_install_and_its_hold_out_has_every_horizon() -> None:
    """The polling thread may serve a minute as soon as the new weights are in, while the training thread
    still scores the hold-out (it gives way there): that minute's forecasts are the model's, with their
    range model's every horizon, from states primed off the polling thread; the refresh is already set."""
    bars = market(7)
    forecaster = Forecaster(tiny_config(max_epochs=2))
    for bar in bars:
        if bar.minute < OPEN + 6 * 1440 + 100:
            forecaster.ingest(bar.ticker, bar.minute, bar.close, bar.rev, bar.final, bar.high, bar.low)
    tickers = forecaster.tickers()
    seen: dict[str, object] = {}

    def serve_a_minute() -> None:
        # Called by the training thread between its steps; the first call after the install serves a minute.
        if forecaster.model is None or seen:
            return
        assert forecaster.serving is not None
        seen["primed"] = set(forecaster.serving.states.states)
        seen["refresh"] = set(forecaster.refresh)
        seen["forecasts"] = forecaster.forecast(forecaster.take_refresh())

    forecaster.pause = serve_a_minute
    report = forecaster.train_cycle()
    assert report.cold_start is not None and report.cold_start.pooled.n > 0
    assert seen["primed"] == set(tickers)
    assert seen["refresh"] == set(tickers)
    forecasts = seen["forecasts"]
    assert isinstance(forecasts, list)
    for ticker in tickers:
        fcs: dict[int, Forecast] = by_horizon(forecasts, ticker)
        assert sorted(fcs) == list(HORIZONS)
        assert {fc.model_version for fc in fcs.values()} == {forecaster.model_version}


def test_a_range_model_fitted_on_the_polling_thread_does_not_give_way_to_itself() -> None:
    # A restored lineage's range model is fitted inside a forecast (lock held, the minute being served by
    # this very thread): waiting there would hold the minute up to the gate's bound.
    bars = market(7)
    forecaster = Forecaster(tiny_config(max_epochs=1))
    for bar in bars:
        if bar.minute < OPEN + 6 * 1440 + 100:
            forecaster.ingest(bar.ticker, bar.minute, bar.close, bar.rev, bar.final, bar.high, bar.low)
    assert forecaster.train_cycle().cold_start is not None
    forecaster.range_state, forecaster.ranges_for = None, ""  # as restored from a checkpoint without one

    def polling_thread_must_not_wait() -> None:
        raise AssertionError("the polling thread gave way to itself")

    forecaster.pause = polling_thread_must_not_wait
    forecasts = forecaster.forecast(forecaster.tickers())
    assert forecaster.ranges_for == forecaster.lineage
    assert sorted(by_horizon(forecasts, "T0")) == list(HORIZONS)


def test_the_refresh_is_taken_a_chunk_at_a_time_and_a_ticker_forecast_meanwhile_leaves_it() -> None:
    """The polling thread forecasts a cold start's refresh a chunk a poll (a minute's bars arriving meanwhile
    wait for one chunk, not for every ticker): what a chunk leaves is taken by the next, and a ticker whose
    new bar is forecast first is not forecast again."""
    bars = market(7)
    forecaster = Forecaster(tiny_config(max_epochs=1))
    cut = OPEN + 6 * 1440 + 100
    for bar in bars:
        if bar.minute < cut:
            forecaster.ingest(bar.ticker, bar.minute, bar.close, bar.rev, bar.final, bar.high, bar.low)
    assert forecaster.train_cycle().cold_start is not None
    tickers = sorted(forecaster.tickers())
    assert len(tickers) == 3 and sorted(forecaster.refresh) == tickers
    assert forecaster.take_refresh(1) == tickers[:1]
    assert sorted(forecaster.refresh) == tickers[1:]
    newest = [b for b in bars if b.minute == cut and b.ticker == tickers[2]]
    assert {fc.ticker for fc in forecaster.step(newest)} == {tickers[2]}
    assert forecaster.take_refresh(1) == tickers[1:2]
    assert forecaster.take_refresh(1) == [] and not forecaster.refresh
