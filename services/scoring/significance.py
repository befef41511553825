"""The significance tests every score leans on. No I/O.

* :func:`wilson_interval`: the 95% Wilson interval of a share (direction hits, interval coverage).
* :func:`dm_test`: Diebold-Mariano's test of equal accuracy from running sums, with a Newey-West (Bartlett)
  long-run variance so the autocorrelation of minute errors does not fake significance.
* :func:`clark_west_test`: Clark & West (2007) for a model that nests naive (DM is undersized there): the
  same Newey-West t-statistic on the adjusted differential, one-sided.
* :func:`kupiec_test`, :func:`christoffersen_test`: an interval's coverage (Kupiec 1995, unconditional) and
  the independence of its misses (Christoffersen 1998, first-order Markov), both likelihood ratios on
  chi2(1), whose survival function :func:`chi2_1_sf` is written with ``math.erfc`` (no scipy here).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

Z95 = 1.959963984540054


def wilson_interval(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


# Newey-West lags: floor(4 (n/100)^(2/9)), capped so running sums stay a fixed size.
MAX_LAG = 10


def newey_west_lags(n: int) -> int:
    return 0 if n < 2 else min(MAX_LAG, int(4 * (n / 100) ** (2 / 9)), n - 1)


def dm_test(
    n: int, total: float, sum_sq: float, lagged: Iterable[float]
) -> tuple[float | None, float | None]:
    """(statistic, two-sided p-value) of "the series has mean zero" from its running sums: ``n`` terms,
    their sum, sum of squares and sums of lagged products (k = 1..MAX_LAG). None with fewer than 10 terms
    or no variance. A negative statistic: the model's squared errors are the smaller."""
    if n < 10:
        return None, None
    mean = total / n
    lags = newey_west_lags(n)
    products = list(lagged)
    # Lagged autocovariances from running sums: the mean correction uses all n terms (error O(k/n)).
    long_run = sum_sq / n - mean * mean
    long_run += 2 * sum(
        (1 - k / (lags + 1)) * (products[k - 1] / n - mean * mean) for k in range(1, lags + 1)
    )
    if not long_run > 0:
        return None, None
    stat = mean / math.sqrt(long_run / n)
    return stat, math.erfc(abs(stat) / math.sqrt(2))


def running_sums(values: Iterable[float]) -> tuple[int, float, float, list[float]]:
    """(n, sum, sum of squares, sums of lagged products k = 1..MAX_LAG) of a series in time order: what
    :func:`dm_test` and :func:`clark_west_test` read."""
    n, total, sum_sq = 0, 0.0, 0.0
    lagged = [0.0] * MAX_LAG
    tail: list[float] = []
    for value in values:
        n += 1
        total += value
        sum_sq += value * value
        for k, previous in enumerate(reversed(tail), start=1):
            lagged[k - 1] += value * previous
        tail = [*tail[-(MAX_LAG - 1) :], value]
    return n, total, sum_sq, lagged


def clark_west_test(
    n: int, total: float, sum_sq: float, lagged: Iterable[float]
) -> tuple[float | None, float | None]:
    """(statistic, one-sided p-value) of Clark-West from the running sums of the adjusted differentials
    ``f = e_naive² - (e_model² - (ŷ_model - ŷ_naive)²)``. Only a positive mean is evidence for the model
    (the null is "naive's MSPE is no larger"), hence one-sided; None as for :func:`dm_test`."""
    stat, _ = dm_test(n, total, sum_sq, lagged)
    if stat is None:
        return None, None
    return stat, 0.5 * math.erfc(stat / math.sqrt(2))


def chi2_1_sf(x: float) -> float:
    """P(X > x) for X ~ chi2(1): X = Z², so P(|Z| > sqrt(x)) = erfc(sqrt(x / 2))."""
    return 1.0 if x <= 0 else math.erfc(math.sqrt(x / 2))


def _xlogy(x: float, y: float) -> float:
    # 0 · log 0 = 0: a likelihood with no observations of an outcome does not depend on its probability.
    return 0.0 if x == 0 else x * math.log(y)


def kupiec_test(inside: int, n: int, coverage: float = 0.8) -> tuple[float | None, float | None]:
    """(LR_uc, p-value) of "the share of actuals inside is ``coverage``" from ``inside`` hits of ``n``:
    ``-2 ln[c^x (1-c)^(n-x) / p̂^x (1-p̂)^(n-x)]``, p̂ = x/n, on chi2(1). None with no forecasts."""
    if n == 0:
        return None, None
    share = inside / n
    restricted = _xlogy(inside, coverage) + _xlogy(n - inside, 1 - coverage)
    free = _xlogy(inside, share) + _xlogy(n - inside, 1 - share)
    lr = max(0.0, -2 * (restricted - free))
    return lr, chi2_1_sf(lr)


def transition_counts(inside: Iterable[bool], lag: int = 1) -> tuple[int, int, int, int]:
    """(n00, n01, n10, n11) of one series in time order, state 1 = a miss (actual outside): nij counts a
    state i followed ``lag`` forecasts later by j. Pools add counts per ticker, never a transition from one
    ticker to the next. An h-minute range overlaps the next h - 1 ones, so its misses cluster even when it
    is right: pass ``lag = h`` to compare ranges that do not overlap."""
    states = [0 if hit else 1 for hit in inside]
    counts = [0, 0, 0, 0]
    for before, after in zip(states, states[lag:], strict=False):
        counts[2 * before + after] += 1
    return counts[0], counts[1], counts[2], counts[3]


def christoffersen_test(counts: tuple[int, int, int, int]) -> tuple[float | None, float | None]:
    """(LR_ind, p-value) of "a miss is as likely after a miss as after a hit" from transition counts:
    ``-2 [ln L(π) - ln L(π01, π11)]``, π01 = n01/(n00+n01), π11 = n11/(n10+n11), π = (n01+n11)/N, on
    chi2(1). None with no transitions out of one of the states (the alternative is not identified)."""
    n00, n01, n10, n11 = counts
    if n00 + n01 == 0 or n10 + n11 == 0:
        return None, None
    pi01, pi11 = n01 / (n00 + n01), n11 / (n10 + n11)
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    restricted = _xlogy(n00 + n10, 1 - pi) + _xlogy(n01 + n11, pi)
    free = _xlogy(n00, 1 - pi01) + _xlogy(n01, pi01) + _xlogy(n10, 1 - pi11) + _xlogy(n11, pi11)
    lr = max(0.0, -2 * (restricted - free))
    return lr, chi2_1_sf(lr)
