"""Kupiec, Christoffersen and the chi2(1) tail against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from services.scoring.significance import chi2_1_sf, christoffersen_test, kupiec_test, transition_counts


def test_chi2_tail_matches_the_textbook_critical_values() -> None:
    # chi2(1) table: 2.705543 at 10%, 3.841459 at 5%, 6.634897 at 1%.
    assert chi2_1_sf(2.705543) == pytest.approx(0.10, abs=1e-6)
    assert chi2_1_sf(3.841459) == pytest.approx(0.05, abs=1e-6)
    assert chi2_1_sf(6.634897) == pytest.approx(0.01, abs=1e-6)
    assert chi2_1_sf(0.0) == 1.0


def test_kupiec_six_of_ten_inside_an_80_percent_interval() -> None:
    # LR = -2 [6 ln(0.8/0.6) + 4 ln(0.2/0.4)] = -2 [1.726092 - 2.772589] = 2.092993; chi2(1) tail 0.1480.
    lr, p = kupiec_test(6, 10, 0.8)
    assert lr == pytest.approx(2.092993, abs=1e-6)
    assert p == pytest.approx(0.14798, abs=1e-5)


def test_kupiec_exact_coverage_is_not_rejected_and_all_inside_uses_zero_log_zero() -> None:
    assert kupiec_test(8, 10) == (0.0, 1.0)
    # Ten of ten: p̂ = 1, so the free likelihood is 1 and LR = -20 ln 0.8 = 4.462871 (p 0.0346).
    lr, p = kupiec_test(10, 10)
    assert lr == pytest.approx(4.462871, abs=1e-6)
    assert p == pytest.approx(0.034639, abs=1e-6)
    assert kupiec_test(0, 0) == (None, None)


def test_transitions_are_counted_on_misses_within_one_series() -> None:
    inside = [True, True, False, False, True, True, False, False, True, True]
    # misses 0011001100: 00 at (1,2)(5,6)(9,10); 01 at (2,3)(6,7); 11 at (3,4)(7,8); 10 at (4,5)(8,9).
    assert transition_counts(inside) == (3, 2, 2, 2)
    assert transition_counts([]) == (0, 0, 0, 0)
    assert transition_counts([False]) == (0, 0, 0, 0)


def test_christoffersen_on_hand_counted_transitions() -> None:
    # π01 = 2/5, π11 = 2/4, π = 4/9. ln L(π) = 5 ln(5/9) + 4 ln(4/9) = -6.182654;
    # ln L(π01, π11) = 3 ln 0.6 + 2 ln 0.4 + 4 ln 0.5 = -6.137647; LR = 0.090014, chi2(1) tail 0.7642.
    lr, p = christoffersen_test((3, 2, 2, 2))
    assert lr == pytest.approx(0.090014, abs=1e-6)
    assert p == pytest.approx(0.76416, abs=1e-5)


def test_christoffersen_rejects_misses_that_come_in_a_cluster() -> None:
    inside = [True] * 50 + [False] * 10 + [True] * 40
    counts = transition_counts(inside)
    assert counts == (88, 1, 1, 9)
    lr, p = christoffersen_test(counts)
    # π01 = 1/89, π11 = 9/10, π = 10/99.
    restricted = 89 * math.log(89 / 99) + 10 * math.log(10 / 99)
    free = 88 * math.log(88 / 89) + math.log(1 / 89) + math.log(1 / 10) + 9 * math.log(9 / 10)
    assert lr == pytest.approx(-2 * (restricted - free))
    assert p is not None and p < 1e-6


def test_christoffersen_needs_both_states_to_have_left() -> None:
    assert christoffersen_test((9, 0, 0, 0)) == (None, None)


def test_transitions_at_a_lag_skip_the_overlapping_ranges_between() -> None:
    inside = [True, False, True, False, True, False]
    # lag 2 pairs (1,3)(2,4)(3,5)(4,6): hit->hit twice, miss->miss twice.
    assert transition_counts(inside, lag=2) == (2, 0, 0, 2)
    assert transition_counts(inside) == (0, 3, 2, 0)
