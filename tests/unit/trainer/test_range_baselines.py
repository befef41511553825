"""The range baselines of issue 18 on synthetic minutes whose volatility is known."""

from __future__ import annotations

import numpy as np
import pytest

from services.trainer.intervals.ewma_baseline import EwmaProfileBaseline
from services.trainer.intervals.mcs_garch import McsGarchBaseline
from services.trainer.intervals.seasonal import fit_profile, horizon_returns
from tests.unit.trainer.range_data import MINUTES, SCALES, closes_ahead, sessions, true_profile

TRAIN_SESSIONS = 30


def _coverage(low: np.ndarray, high: np.ndarray, actual: np.ndarray) -> float:
    ok = np.isfinite(low) & np.isfinite(actual)
    return float(np.mean((actual[ok] >= low[ok]) & (actual[ok] <= high[ok])))


def test_horizon_returns_stay_inside_a_session() -> None:
    returns = np.array([[np.nan], [0.01], [0.02], [np.nan], [0.03], [0.04]])
    minute = np.array([0, 1, 2, 0, 1, 2])
    np.testing.assert_allclose(
        horizon_returns(returns, minute, 2)[:, 0], [0.03, np.nan, np.nan, 0.07, np.nan, np.nan]
    )


def test_a_bucket_the_training_part_never_reaches_gets_the_mean_level() -> None:
    # Four 30-minute buckets; the rows reach the first two only (a few hours of a 24-hour session): the
    # others get the mean of the levels seen, not the last one seen (which widened every evening's ranges
    # on the synthetic market by the level of the training part's last half hour).
    minute = np.arange(60)
    z2 = np.where(minute < 30, 1.0, 3.0)[:, None]
    profile = fit_profile(z2, minute, 30, 120)
    np.testing.assert_allclose(profile, np.repeat([1.0, 3.0, 2.0, 2.0], 30) / 2.0)


def test_ewma_baseline_learns_the_profile_and_covers_80_percent_at_every_horizon() -> None:
    returns, minute, _ = sessions(60, seed=2)
    cut = TRAIN_SESSIONS * MINUTES
    model = EwmaProfileBaseline.fit(returns[:cut], minute[:cut])
    # 30-minute buckets of the true profile: the fitted one within 10% of each bucket's mean.
    truth = true_profile().reshape(13, 30).mean(axis=1)
    np.testing.assert_allclose(model.profile.reshape(13, 30)[:, 0], truth, rtol=0.1)
    np.testing.assert_allclose(model.scale, SCALES, rtol=0.05)
    # A constant-variance process: QLIKE wants a long memory.
    assert model.decay >= 0.99
    for h in (1, 5, 15, 30):
        last, actual = closes_ahead(returns, minute, h)
        low, high = model.predict_interval(last, returns, minute, h)
        assert _coverage(low[cut:], high[cut:], actual[cut:]) == pytest.approx(0.80, abs=0.03), h
        # Overlapping 30-minute ranges leave ~1,000 independent ones: ±0.03 is about 2.5 standard errors.
        # Gaussian returns: the standardized quantiles are ±1.2816.
        np.testing.assert_allclose(model.quantiles[h], [-1.2816, 1.2816], atol=0.08)


def test_ewma_sigma_matches_the_known_variance_over_the_horizon() -> None:
    returns, minute, variance = sessions(20, seed=2)
    model = EwmaProfileBaseline.fit(returns[: 10 * MINUTES], minute[: 10 * MINUTES])
    sigma = model.sigma(returns, minute, 5)
    true5 = np.sqrt(sum(np.roll(variance, -k, axis=0) for k in range(1, 6)))
    ok = np.isfinite(sigma)
    ratio = sigma[ok] / true5[ok]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.1)


def test_clustered_volatility_makes_qlike_choose_a_shorter_memory() -> None:
    returns, minute, _ = sessions(12, seed=3, garch=(0.05, 0.15, 0.8))
    model = EwmaProfileBaseline.fit(returns, minute)
    assert model.decay <= 0.97


def test_no_range_targets_a_minute_past_the_close() -> None:
    returns, minute, _ = sessions(3, seed=4)
    model = EwmaProfileBaseline.fit(returns, minute)
    last, _ = closes_ahead(returns, minute, 30)
    low, _ = model.predict_interval(last, returns, minute, 30)
    assert np.isnan(low[minute > MINUTES - 1 - 30]).all()
    assert np.isfinite(low[minute == MINUTES - 1 - 30]).all()


def test_a_range_uses_no_return_after_its_row() -> None:
    returns, minute, _ = sessions(4, seed=5)
    model = EwmaProfileBaseline.fit(returns[:MINUTES], minute[:MINUTES])
    last, _ = closes_ahead(returns, minute, 5)
    low, _ = model.predict_interval(last, returns, minute, 5)
    changed = returns.copy()
    changed[2 * MINUTES :] *= 3
    low2, _ = model.predict_interval(last, changed, minute, 5)
    np.testing.assert_array_equal(low[: 2 * MINUTES], low2[: 2 * MINUTES])


def test_mcs_garch_recovers_the_garch_parameters_and_covers_80_percent() -> None:
    omega, alpha, beta = 0.05, 0.15, 0.8
    returns, minute, _ = sessions(48, seed=6, garch=(omega, alpha, beta))
    cut = 24 * MINUTES
    model = McsGarchBaseline.fit(returns[:cut], minute[:cut])
    assert model.alpha == pytest.approx(alpha, abs=0.04)
    assert model.beta == pytest.approx(beta, abs=0.06)
    # Clustered, fat-tailed returns make bucket means noisier than in the constant-variance test above
    # (which holds the profile to 10%): 20% here.
    truth = true_profile().reshape(13, 30).mean(axis=1)
    np.testing.assert_allclose(model.profile.reshape(13, 30)[:, 0], truth, rtol=0.2)
    for h in (1, 5, 15, 30):
        last, actual = closes_ahead(returns, minute, h)
        low, high = model.predict_interval(last, returns, minute, h)
        assert _coverage(low[cut:], high[cut:], actual[cut:]) == pytest.approx(0.80, abs=0.03), h


def test_mcs_garch_one_minute_sigma_tracks_the_true_clustered_variance() -> None:
    returns, minute, variance = sessions(16, seed=7, garch=(0.05, 0.15, 0.8))
    cut = 8 * MINUTES
    model = McsGarchBaseline.fit(returns[:cut], minute[:cut])
    sigma = model.sigma(returns, minute, 1)[cut:-1]
    true_next = np.sqrt(variance[cut + 1 :])
    ok = np.isfinite(sigma)
    assert np.median(sigma[ok] / true_next[ok]) == pytest.approx(1.0, abs=0.1)
    # The GARCH level follows the clustering: log σ̂ and log σ correlate strongly.
    assert np.corrcoef(np.log(sigma[ok]), np.log(true_next[ok]))[0, 1] > 0.8


def test_mcs_garch_uses_no_return_after_its_row() -> None:
    returns, minute, _ = sessions(4, seed=8, garch=(0.05, 0.15, 0.8))
    model = McsGarchBaseline.fit(returns[: 2 * MINUTES], minute[: 2 * MINUTES])
    last, _ = closes_ahead(returns, minute, 15)
    low, _ = model.predict_interval(last, returns, minute, 15)
    changed = returns.copy()
    changed[3 * MINUTES :] *= 3
    low2, _ = model.predict_interval(last, changed, minute, 15)
    np.testing.assert_array_equal(low[: 3 * MINUTES], low2[: 3 * MINUTES])
