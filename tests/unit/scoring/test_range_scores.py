"""Interval score, pinball loss, their ratio test and coverage per session bucket, by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from services.scoring.intervals import coverage_by_bucket, interval_score, loss_ratio, pinball_loss
from shared.session import XNYS


def test_interval_score_pays_the_width_and_ten_times_a_miss_relative_to_the_last_close() -> None:
    # [99, 101] around last close 100, alpha 0.2 (2/alpha = 10):
    # inside: 2 / 100; y = 98: (2 + 10·1) / 100; y = 103: (2 + 10·2) / 100.
    last = np.array([100.0, 100.0, 100.0])
    out = interval_score(last, np.full(3, 99.0), np.full(3, 101.0), np.array([100.0, 98.0, 103.0]))
    np.testing.assert_allclose(out, [0.02, 0.12, 0.22])


def test_pinball_loss_at_q10_and_q90_by_hand() -> None:
    last = np.full(3, 100.0)
    actual = np.array([100.0, 98.0, 103.0])
    # q10 = 99: (100-99)·0.1 = 0.1; (98-99)·(0.1-1) = 0.9; (103-99)·0.1 = 0.4 (all / 100).
    np.testing.assert_allclose(pinball_loss(last, np.full(3, 99.0), actual, 0.1), [0.001, 0.009, 0.004])
    # q90 = 101: (100-101)·(0.9-1) = 0.1; (98-101)·(-0.1) = 0.3; (103-101)·0.9 = 1.8.
    np.testing.assert_allclose(pinball_loss(last, np.full(3, 101.0), actual, 0.9), [0.001, 0.003, 0.018])


def test_interval_score_is_ten_times_the_two_pinball_losses() -> None:
    # Gneiting & Raftery: IS_alpha = (2/alpha)(pinball_{alpha/2}(l) + pinball_{1-alpha/2}(u)).
    rng = np.random.default_rng(0)
    last = 100 + rng.random(200)
    low, high = last - rng.random(200), last + rng.random(200)
    actual = last + 2 * rng.standard_normal(200)
    both = pinball_loss(last, low, actual, 0.1) + pinball_loss(last, high, actual, 0.9)
    np.testing.assert_allclose(interval_score(last, low, high, actual), 10 * both)


def test_unscorable_forecasts_are_nan() -> None:
    out = interval_score(
        np.array([0.0, 100.0]), np.array([99.0, np.nan]), np.array([101.0, 101.0]), np.full(2, 100.0)
    )
    assert np.isnan(out).all()


def test_loss_ratio_of_half_the_baseline_is_one_half_and_significant() -> None:
    # Per-forecast losses spread like real interval scores (a miss costs ten times its distance): the DM
    # variance from running sums needs a spread well above the mean's O(k/n) correction.
    base = np.random.default_rng(1).exponential(0.01, 600)
    minutes = np.repeat(np.arange(200), 3)  # three tickers a minute, summed before the test
    result = loss_ratio(minutes, 0.5 * base, base)
    assert result.n == 600
    assert result.ratio == pytest.approx(0.5)
    assert result.dm_stat is not None and result.dm_stat < 0
    assert result.better()


def test_loss_ratio_of_equal_losses_with_noise_is_not_a_win() -> None:
    rng = np.random.default_rng(2)
    base = rng.exponential(0.01, 600)
    model = base + 0.005 * rng.standard_normal(600)
    result = loss_ratio(np.repeat(np.arange(200), 3), model, base)
    assert result.dm_p is not None and result.dm_p > 0.05
    assert not result.better()


def test_coverage_per_30_minute_bucket_uses_the_new_york_session_clock() -> None:
    # 2026-12-01 is in EST (UTC-5): 14:30 UTC is the 09:30 bar.
    open_ = int(datetime(2026, 12, 1, 14, 30, tzinfo=UTC).timestamp()) // 60
    minutes = np.array([open_, open_ + 29, open_ + 30, open_ + 61, open_ + 389])
    actual = np.array([1.0, 5.0, 1.0, 1.0, 1.0])
    table = coverage_by_bucket(minutes, actual, np.zeros(5), np.full(5, 2.0), XNYS)
    assert sorted(table) == [0, 1, 2, 12]
    assert (table[0].n, table[0].inside, table[0].above) == (2, 1, 1)
    assert table[1].share == 1.0 and table[2].share == 1.0 and table[12].n == 1


def test_buckets_follow_daylight_saving() -> None:
    # 2026-07-01 is in EDT (UTC-4): 13:30 UTC is the 09:30 bar.
    open_ = int(datetime(2026, 7, 1, 13, 30, tzinfo=UTC).timestamp()) // 60
    table = coverage_by_bucket(np.array([open_, open_ + 30]), np.ones(2), np.zeros(2), np.full(2, 2.0), XNYS)
    assert sorted(table) == [0, 1]
