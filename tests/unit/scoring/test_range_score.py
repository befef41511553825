"""One horizon's range figures, per ticker and pooled, on a case small enough to check by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from services.scoring.range_score import RangeScore, score_ranges
from shared.session import XNYS

OPEN = int(datetime(2026, 12, 1, 14, 30, tzinfo=UTC).timestamp()) // 60  # 09:30 EST


def _case(horizon: int) -> RangeScore:
    last = np.full((4, 2), 100.0)
    actual = np.array([[100.0, 100.0], [98.0, 100.0], [100.0, 100.0], [103.0, 100.0]])
    wide = (np.full((4, 2), 98.0), np.full((4, 2), 102.0))
    return score_ranges(
        horizon,
        OPEN + np.arange(4),
        last,
        np.full((4, 2), 99.0),
        np.full((4, 2), 101.0),
        actual,
        ["A", "B"],
        XNYS,
        {"ewma": wide},
    )


def test_coverage_kupiec_and_losses_by_hand() -> None:
    score = _case(1)
    assert (score.coverage["A"].inside, score.coverage["A"].below, score.coverage["A"].above) == (2, 1, 1)
    assert score.coverage["*"].inside == 6 and score.coverage["*"].n == 8
    # Pooled Kupiec, 6 of 8 at c = 0.8: -2 [6 ln(0.8/0.75) + 2 ln(0.2/0.25)] = 0.118112.
    lr, _ = score.kupiec["*"]
    assert lr == pytest.approx(0.118112, abs=1e-6)
    # Interval scores: A 0.02, 0.12, 0.02, 0.22; B 0.02 x 4 -> mean 0.46 / 8.
    assert score.interval_score == pytest.approx(0.0575)
    # Baseline [98, 102]: 0.04 each, 0.14 at 103 -> 0.42; ratio 0.46 / 0.42. Four minutes: no DM yet.
    ratio = score.versus["ewma"]["interval_score"]
    assert ratio.ratio == pytest.approx(0.46 / 0.42)
    assert ratio.dm_p is None
    assert score.buckets[0].n == 8


def test_transitions_are_counted_per_ticker_and_added_for_the_pool() -> None:
    score = _case(1)
    # A: misses 0101 -> n01 = 2, n10 = 1; B: n00 = 3. Pool (3, 2, 1, 0): π01 = 2/5, π11 = 0, π = 2/6.
    lr, _ = score.christoffersen["*"]
    restricted = 4 * np.log(4 / 6) + 2 * np.log(2 / 6)
    free = 3 * np.log(3 / 5) + 2 * np.log(2 / 5) + np.log(1.0)
    assert lr == pytest.approx(-2 * (restricted - free))
    assert score.christoffersen["B"] == (None, None)


def test_spaced_tests_read_ranges_a_horizon_apart() -> None:
    score = _case(2)
    # Rows 0 and 2 of each ticker: all four inside, so Kupiec's 4 of 4: LR = -8 ln 0.8.
    lr, _ = score.kupiec_spaced["*"]
    assert lr == pytest.approx(-8 * np.log(0.8))
