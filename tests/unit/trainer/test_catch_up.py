"""A backlog is forecast bar by bar, however it is cut into polls; the first cold start waits for every
ticker; a ticker that joins later is trained on before its forecasts are the model's."""

from __future__ import annotations

from services.trainer.forecaster.core import Forecaster
from services.trainer.forecaster.records import NAIVE_VERSION, BarIn
from tests.unit.trainer.synthetic import random_walk_closes, sine_closes, tiny_config

from .test_forecasting import START, trained


def clone(forecaster: Forecaster) -> Forecaster:
    """The same weights and history (a Forecaster holds a lock: no deepcopy)."""
    state = forecaster.state()
    assert state is not None
    twin = Forecaster(forecaster.config)
    assert twin.restore(state)
    for ticker, series in forecaster.series.items():
        for minute, close, rev in zip(series.minutes, series.closes, series.revs, strict=True):
            twin.ingest(ticker, minute, close, rev)
    return twin


def test_every_bar_of_a_backlog_is_forecast_the_same_in_any_poll_split() -> None:
    forecaster = trained("SINE", 400)
    forecaster.ingest("WALK", START, 50.0)
    closes = {"SINE": sine_closes(460)[400:], "WALK": random_walk_closes(60)}
    bars = [BarIn(t, START + 400 + i, float(closes[t][i])) for i in range(60) for t in ("SINE", "WALK")]
    whole = clone(forecaster).step(bars)
    polled = clone(forecaster)
    pieces = [polled.step(bars[i : i + k]) for i, k in zip(range(0, 120, 7), [7] * 18, strict=False)]
    assert len(whole) == 120  # one forecast per bar, not one per ticker and poll
    assert [(f.ticker, f.minute, f.yhat, f.model_version) for f in whole] == [
        (f.ticker, f.minute, f.yhat, f.model_version) for piece in pieces for f in piece
    ]
    assert {f.model_version for f in whole if f.ticker == "SINE"} == {forecaster.model_version}


def test_scoring_after_publishing_gives_the_scores_of_scoring_at_once() -> None:
    forecaster = trained("SINE", 400)
    closes = sine_closes(460)[400:]
    bars = [BarIn("SINE", START + 400 + i, float(closes[i])) for i in range(60)]
    at_once, later = clone(forecaster), clone(forecaster)
    scored = [at_once.step(bars[i : i + 6]) for i in range(0, 60, 6)]
    deferred = []
    for i in range(0, 60, 6):
        deferred.append(later.step(bars[i : i + 6], score=False))
        if i == 54:
            assert later.walk_forward.scores == {}  # nothing scored before score_settled
            later.score_settled()
    assert [f.yhat for p in scored for f in p] == [f.yhat for p in deferred for f in p]
    key = ("SINE", forecaster.lineage)
    assert later.walk_forward.scores[key].summary() == at_once.walk_forward.scores[key].summary()
    assert later.walk_forward.scores[key].n == 59  # every forecast whose minute came, once


def test_the_first_cold_start_waits_for_every_ticker_with_bars_or_a_bounded_wait() -> None:
    forecaster = Forecaster(tiny_config(max_epochs=2, min_history=100, cold_start_wait=50))
    for i, close in enumerate(sine_closes(100)):
        forecaster.ingest("FAST", START + i, float(close))
    forecaster.ingest("SLOW", START + 99, 20.0)
    assert forecaster.train_cycle().cold_start is None  # SLOW has bars but too little history
    for i, close in enumerate(sine_closes(40)):
        forecaster.ingest("FAST", START + 100 + i, float(close))
    assert forecaster.train_cycle().cold_start is None  # 40 minutes waited of 50
    for i, close in enumerate(sine_closes(20)):
        forecaster.ingest("FAST", START + 140 + i, float(close))
    cold = forecaster.train_cycle().cold_start
    assert cold is not None and set(cold.per_ticker) == {"FAST"}


def test_a_ticker_joining_later_is_trained_on_before_its_forecasts_are_the_models() -> None:
    forecaster = trained("SINE", 600)
    forecaster.ingest("LATE", START, 30.0)
    [naive] = forecaster.forecast(["LATE"])
    assert naive.model_version == NAIVE_VERSION
    before = forecaster.updates
    for i, close in enumerate(random_walk_closes(600)):
        forecaster.ingest("LATE", START + i, float(close))
    joined = forecaster.train_cycle().cold_start
    assert joined is not None and joined.joined and set(joined.per_ticker) == {"LATE"}
    assert forecaster.updates == before + 1  # one epoch on LATE's training part, installed first
    [fc] = forecaster.forecast(["LATE"])
    assert fc.model_version == forecaster.model_version
