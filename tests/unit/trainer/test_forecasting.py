"""Forecasts: naive until a model exists, the v1 schema, walk-forward scoring, checkpoint and resume."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from services.trainer.forecaster.core import Forecaster
from services.trainer.forecaster.records import NAIVE_VERSION
from services.trainer.messages import prediction_message
from services.trainer.model.series import to_minute
from services.trainer.model.windows import Target
from services.trainer.stores.checkpoints import DirectoryStore
from shared.schemas import decode_prediction, encode
from tests.unit.trainer.synthetic import sine_closes, tiny_config

START = to_minute(datetime(2026, 3, 2, 14, 30, tzinfo=UTC))


def trained(ticker: str = "SINE", n: int = 600, **config: object) -> Forecaster:
    forecaster = Forecaster(tiny_config(**({"max_epochs": 5} | config)))
    for i, close in enumerate(sine_closes(n)):
        forecaster.ingest(ticker, START + i, float(close))
    assert forecaster.train_cycle().cold_start is not None
    return forecaster


def test_a_ticker_without_a_model_gets_a_labelled_naive_forecast() -> None:
    forecaster = Forecaster(tiny_config())
    forecaster.ingest("AAPL", START, 187.5)
    [forecast] = forecaster.forecast(["AAPL"])
    assert forecast.model_version == NAIVE_VERSION
    assert forecast.yhat == 187.5 and forecast.minute == START + 1


@pytest.mark.parametrize("target", ["return", "price"])
def test_prediction_message_is_valid_v1_and_forecasts_the_next_minute(target: Target) -> None:
    forecaster = trained()
    [forecast] = forecaster.forecast(["SINE"])
    message = decode_prediction(encode(prediction_message(forecast, target)))
    assert message.v == 1 and message.ticker == "SINE" and message.target == target
    assert message.ts > message.based_on_ts
    assert (message.ts - message.based_on_ts).total_seconds() == 60 * message.horizon_min
    assert to_minute(message.based_on_ts) == START + 599  # the newest bar
    assert message.model_version == forecaster.model_version
    assert np.isfinite(message.yhat) and message.yhat > 0


def test_forecast_is_scored_when_its_minutes_final_bar_arrives() -> None:
    forecaster = trained()
    [forecast] = forecaster.forecast(["SINE"])
    forecaster.ingest("SINE", forecast.minute, forecast.last_close * 1.01, final=False)
    assert not forecaster.walk_forward.scores  # the minute is still open
    forecaster.ingest("SINE", forecast.minute, forecast.last_close * 1.002, rev=1, final=True)
    [(key, score)] = forecaster.walk_forward.scores.items()
    assert key == ("SINE", forecaster.lineage)
    assert score.n == 1
    expected = ((forecast.yhat - forecast.last_close * 1.002) / forecast.last_close) ** 2
    assert score.sse_model == pytest.approx(expected)


def test_restart_resumes_from_the_checkpoint_without_a_cold_start(tmp_path: object) -> None:
    from pathlib import Path

    forecaster = trained()
    forecaster.train_cycle()
    store = DirectoryStore(Path(str(tmp_path)) / "ckpt")
    state = forecaster.state()
    assert state is not None
    store.save("trainer", state)

    restarted = Forecaster(tiny_config(max_epochs=5))
    loaded = store.load("trainer")
    assert loaded is not None and restarted.restore(loaded)
    assert restarted.model_version == forecaster.model_version
    for i, close in enumerate(sine_closes(620)):
        restarted.ingest("SINE", START + i, float(close))
    report = restarted.train_cycle()
    assert report.cold_start is None and report.updated_tickers == 1
    assert restarted.lineage == forecaster.lineage and restarted.updates == forecaster.updates + 1
    [fc] = restarted.forecast(["SINE"])
    assert fc.model_version == restarted.model_version


def test_checkpoint_of_another_architecture_is_ignored() -> None:
    state = trained().state()
    assert state is not None
    other = Forecaster(tiny_config(units=16))
    assert not other.restore(state)
    assert other.model_version is None


def test_warm_updates_follow_update_every_and_retrains_follow_retrain_every() -> None:
    forecaster = trained("SINE", 600, update_every=5, retrain_every=30)
    first, closes = forecaster.lineage, sine_closes(700)
    updates, lineages = [], []
    for i in range(600, 640):
        forecaster.ingest("SINE", START + i, float(closes[i]))
        report = forecaster.train_cycle()
        updates.append(report.updated_tickers)
        lineages.append(forecaster.lineage)
    # A warm update every 5 data minutes (none in between); 30 minutes after the cold start a fresh one (a
    # new lineage, its update count from 0), and warm updates every 5 minutes after that.
    assert [i for i, u in enumerate(updates) if u] == [4, 9, 14, 19, 24, 34, 39]
    assert lineages[:29] == [first] * 29 and set(lineages[29:]) == {forecaster.lineage} != {first}
    assert forecaster.updates == 2


def test_a_resumed_trainer_counts_its_retrain_period_from_the_resume() -> None:
    forecaster = trained("SINE", 600, retrain_every=30)
    resumed = Forecaster(forecaster.config)
    state = forecaster.state()
    assert state is not None and resumed.restore(state)
    closes = sine_closes(620)
    for i in range(600, 620):
        resumed.ingest("SINE", START + i, float(closes[i]))
        assert resumed.train_cycle().cold_start is None
    assert resumed.lineage == forecaster.lineage
