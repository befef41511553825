"""Clark-West for a model that nests naive: the adjusted differential and its one-sided t-test, by hand."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from services.scoring.clark_west import clark_west, clark_west_terms
from services.scoring.significance import clark_west_test, running_sums


def test_adjusted_differential_by_hand() -> None:
    # last 100. forecast 101, actual 102: e_model -0.01, e_naive -0.02, gap 0.01 -> 4e-4 - (1e-4 - 1e-4).
    # forecast 101, actual 99: e_model 0.02, e_naive 0.01, gap 0.01 -> 1e-4 - (4e-4 - 1e-4) = -2e-4.
    f = clark_west_terms(np.full(2, 100.0), np.full(2, 101.0), np.array([102.0, 99.0]))
    np.testing.assert_allclose(f, [4e-4, -2e-4])
    # Naive itself: f = e² - e² + 0 = 0.
    assert clark_west_terms(np.array([100.0]), np.array([100.0]), np.array([97.0]))[0] == 0.0


def test_newey_west_t_statistic_by_hand() -> None:
    # f = 3, -1, 3, -1, ... (10 terms): mean 1; lags floor(4 (10/100)^(2/9)) = 2, Bartlett weights 2/3, 1/3.
    # γ0 = 50/10 - 1 = 4; γ1 = 9·(-3)/10 - 1 = -3.7; γ2 = (4·9 + 4·1)/10 - 1 = 3 (the scorer's running-sum
    # autocovariances). LRV = 4 + 2 (2/3 · -3.7 + 1/3 · 3) = 1.066667; t = 1 / sqrt(LRV / 10) = 3.061862;
    # one-sided p = Φ(-3.061862) = 0.0010998.
    stat, p = clark_west_test(*running_sums([3.0, -1.0] * 5))
    assert stat == pytest.approx(3.061862, abs=1e-6)
    assert p == pytest.approx(0.0010998, abs=1e-7)
    # A mean below zero is no evidence for the model: one-sided.
    stat, p = clark_west_test(*running_sums([-3.0, 1.0] * 5))
    assert stat == pytest.approx(-3.061862, abs=1e-6)
    assert p == pytest.approx(1 - 0.0010998, abs=1e-7)


def test_too_few_terms_give_no_verdict() -> None:
    assert clark_west_test(*running_sums([1.0] * 9)) == (None, None)


def _walk(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    closes = 100 * np.exp(np.cumsum(0.001 * rng.standard_normal(n + 1)))
    return closes[:-1], closes[1:]


def test_a_forecast_with_skill_beats_naive_and_pure_noise_does_not() -> None:
    last, actual = _walk(2_000, 3)
    skilled = clark_west(last, last + 0.3 * (actual - last), actual)
    assert skilled.beats_naive()
    noise = last * (1 + 2e-4 * np.random.default_rng(4).standard_normal(2_000))
    result = clark_west(last, noise, actual)
    assert result.p is not None and result.p > 0.05
    assert not result.beats_naive()


def test_a_pool_tests_per_minute_sums() -> None:
    last, actual = _walk(600, 5)
    minutes = np.repeat(np.arange(300), 2)
    pooled = clark_west(last, last + 0.3 * (actual - last), actual, minutes)
    assert pooled.n == 600 and pooled.beats_naive()


def test_importing_the_scorer_does_not_load_torch() -> None:
    code = (
        "import sys, services.scoring.clark_west, services.scoring.intervals; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
