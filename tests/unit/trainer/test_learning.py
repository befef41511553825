"""The model learns what can be learnt, and does not claim to beat naive on what cannot."""

from __future__ import annotations

import numpy as np

from services.trainer.forecaster.core import Forecaster
from tests.unit.trainer.synthetic import random_walk_closes, sine_closes, tiny_config


def feed(forecaster: Forecaster, ticker: str, closes: np.ndarray, start: int = 1_000) -> None:
    for i, close in enumerate(closes):
        forecaster.ingest(ticker, start + i, float(close))


def test_loss_falls_and_the_model_beats_naive_on_sine_plus_noise() -> None:
    forecaster = Forecaster(tiny_config())
    feed(forecaster, "SINE", sine_closes(800))
    report = forecaster.train_cycle()
    cold = report.cold_start
    assert cold is not None and cold.fit is not None
    assert cold.fit.train_losses[-1] < 0.5 * cold.fit.train_losses[0]
    score = cold.per_ticker["SINE"]
    assert score.mse_ratio is not None and score.mse_ratio < 0.5
    assert score.beats_naive()


def test_on_a_random_walk_it_does_not_claim_to_beat_naive() -> None:
    forecaster = Forecaster(tiny_config())
    feed(forecaster, "WALK", random_walk_closes(800))
    cold = forecaster.train_cycle().cold_start
    assert cold is not None
    score = cold.per_ticker["WALK"]
    assert score.mse_ratio is not None and score.mse_ratio > 0.95
    assert not score.beats_naive()


def test_price_target_scores_far_worse_than_the_return_target_on_the_same_series() -> None:
    # The original recipe: on price levels the forecast mostly hugs the last close (and MinMax saturates
    # as prices drift), so the same learnable series is forecast far worse than from returns.
    ratios = {}
    for target in ("price", "return"):
        forecaster = Forecaster(tiny_config(target=target))
        feed(forecaster, "SINE", sine_closes(800))
        cold = forecaster.train_cycle().cold_start
        assert cold is not None
        ratios[target] = cold.per_ticker["SINE"].mse_ratio
    assert ratios["price"] is not None and ratios["return"] is not None
    assert ratios["price"] > 3 * ratios["return"]


def test_warm_update_moves_the_weights_and_bumps_the_version_without_a_cold_start() -> None:
    forecaster = Forecaster(tiny_config())
    closes = sine_closes(700)
    feed(forecaster, "SINE", closes[:600])
    forecaster.train_cycle()
    version = forecaster.model_version
    assert version is not None and version.endswith(".0")
    before = [p.detach().clone() for p in forecaster.model.parameters()]  # type: ignore[union-attr]
    feed(forecaster, "SINE", closes[600:610], start=1_600)
    report = forecaster.train_cycle()
    assert report.cold_start is None and report.updated_tickers == 1
    assert forecaster.model_version == version[:-2] + ".1"
    after = list(forecaster.model.parameters())  # type: ignore[union-attr]
    assert any(not np.allclose(a.detach().numpy(), b.numpy()) for a, b in zip(after, before, strict=True))


def test_portfolio_mode_trains_one_multivariate_model_for_all_tickers() -> None:
    forecaster = Forecaster(tiny_config(mode="portfolio"))
    feed(forecaster, "A", sine_closes(600, seed=1))
    feed(forecaster, "B", sine_closes(600, seed=2, period=8))
    cold = forecaster.train_cycle().cold_start
    assert cold is not None and set(cold.per_ticker) == {"A", "B"}
    assert forecaster.columns == ["A", "B"]
    forecasts = forecaster.forecast(["A", "B"])
    assert [f.model_version.startswith("portfolio-return-") for f in forecasts] == [True, True]
    assert cold.pooled.mse_ratio is not None and cold.pooled.mse_ratio < 0.7
