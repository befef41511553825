"""Clark-West for a model that nests naive, inside the one scorer: the adjusted differential and its
one-sided t-test by hand, and the verdict it decides."""

from __future__ import annotations

import numpy as np
import pytest

from services.scoring.panel import ScorePanels
from services.scoring.score import Score, add_to_panels, clark_west_terms, pool
from services.scoring.significance import clark_west_test, running_sums


def test_adjusted_differential_by_hand() -> None:
    # last 100. forecast 101, actual 102: e_model -0.01, e_naive -0.02, gap 0.01 -> 4e-4 - (1e-4 - 1e-4).
    # forecast 101, actual 99: e_model 0.02, e_naive 0.01, gap 0.01 -> 1e-4 - (4e-4 - 1e-4) = -2e-4.
    f = clark_west_terms(np.array([-0.01, 0.02]), np.array([-0.02, 0.01]))
    np.testing.assert_allclose(f, [4e-4, -2e-4])
    # Naive itself: f = e² - e² + 0 = 0.
    assert clark_west_terms(np.array([0.03]), np.array([0.03]))[0] == 0.0


def test_the_scorer_sums_the_same_terms_one_at_a_time_and_all_at_once() -> None:
    last, actual = np.full(2, 100.0), np.array([102.0, 99.0])
    one, batch = Score(), Score()
    for i in range(2):
        one.add_one(float(last[i]), 101.0, float(actual[i]))
    batch.add(last, np.full(2, 101.0), actual)
    for score in (one, batch):
        assert score.cw_n == 2
        assert score.cw_sum == pytest.approx(2e-4)
        assert score.cw_sum_sq == pytest.approx(16e-8 + 4e-8)
        assert score.cw_lagged[0] == pytest.approx(4e-4 * -2e-4)


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
    score = Score()
    score.add(np.full(9, 100.0), np.full(9, 101.0), np.full(9, 102.0))
    assert score.clark_west() == (None, None) and score.verdict() == "not yet"


def _walk(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    closes = 100 * np.exp(np.cumsum(0.001 * rng.standard_normal(n + 1)))
    return closes[:-1], closes[1:]


def test_a_forecast_with_skill_beats_naive_and_pure_noise_does_not() -> None:
    last, actual = _walk(2_000, 3)
    skilled = Score()
    skilled.add(last, last + 0.3 * (actual - last), actual)
    assert skilled.beats_naive()
    noise = Score()
    noise.add(last, last * (1 + 2e-4 * np.random.default_rng(4).standard_normal(2_000)), actual)
    _, p = noise.clark_west()
    assert p is not None and p > 0.05
    assert not noise.beats_naive()


def test_clark_west_grants_a_small_real_gain_that_diebold_mariano_does_not() -> None:
    # A forecast with a little real skill plus estimation noise: its MSE is barely below naive's, so the
    # DM test cannot tell them apart, while Clark-West (noise added back) sees the skill. This is why the
    # verdict is Clark-West's: DM is undersized when naive is nested in the model.
    last, actual = _walk(20_000, 13)
    noise = 3.1e-4 * last * np.random.default_rng(102).standard_normal(20_000)
    score = Score()
    score.add(last, last + 0.05 * (actual - last) + noise, actual)  # MSE ratio 0.997
    _, dm_p = score.diebold_mariano()
    _, cw_p = score.clark_west()
    assert score.mse_ratio is not None and score.mse_ratio < 1
    assert dm_p is not None and dm_p > 0.05
    assert cw_p is not None and cw_p < 0.05 and score.verdict() == "beats naive"


def test_a_pool_tests_per_minute_sums() -> None:
    last, actual = _walk(600, 5)
    minutes = np.repeat(np.arange(300), 2)
    forecast = last + 0.3 * (actual - last)
    scores, panels = [], ScorePanels()
    for j in range(2):
        rows = slice(j, None, 2)
        score = Score()
        score.add(last[rows], forecast[rows], actual[rows])
        add_to_panels(panels, minutes[rows], last[rows], forecast[rows], actual[rows])
        scores.append(score)
    pooled = pool(scores, panels)
    f = clark_west_terms((forecast - actual) / last, (last - actual) / last)
    per_minute = f[0::2] + f[1::2]
    assert pooled.clark_west() == pytest.approx(clark_west_test(*running_sums(per_minute)))
    assert pooled.cw_n == 600 and pooled.beats_naive()
