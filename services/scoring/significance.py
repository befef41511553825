"""The significance tests every score leans on. No I/O.

* :func:`wilson_interval`: the 95% Wilson interval of a share (direction hits, interval coverage).
* :func:`dm_test`: Diebold-Mariano's test of equal accuracy from running sums, with a Newey-West (Bartlett)
  long-run variance so the autocorrelation of minute errors does not fake significance.
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
