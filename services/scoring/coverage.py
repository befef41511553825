"""How well forecast intervals are calibrated: the share of actual closes inside, per ticker and pooled,
with a Wilson interval, and how many fell below and above (a lopsided miss shows a biased interval). No I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from services.scoring.significance import wilson_interval


@dataclass(frozen=True)
class Coverage:
    n: int
    inside: int
    below: int
    above: int

    @property
    def share(self) -> float | None:
        return self.inside / self.n if self.n else None

    @property
    def interval95(self) -> tuple[float, float]:
        return wilson_interval(self.inside, self.n)

    def within(self, low: float = 0.78, high: float = 0.82) -> bool:
        """The goal's calibration test for an 80% interval: the pooled share inside [low, high]."""
        return self.share is not None and low <= self.share <= high


def coverage_of(actual: np.ndarray, low: np.ndarray, high: np.ndarray) -> Coverage:
    """Actuals inside ``[low, high]`` (any shapes that broadcast; a NaN anywhere is not counted)."""
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (actual, low, high)))
    actual, low, high = (a.ravel() for a in arrays)
    ok = np.isfinite(actual) & np.isfinite(low) & np.isfinite(high)
    actual, low, high = actual[ok], low[ok], high[ok]
    below, above = int(np.sum(actual < low)), int(np.sum(actual > high))
    return Coverage(len(actual), len(actual) - below - above, below, above)


def coverage(
    actual: np.ndarray, low: np.ndarray, high: np.ndarray, tickers: Sequence[str]
) -> dict[str, Coverage]:
    """Per ticker (columns of ``[minutes, tickers]`` arrays) and pooled under ``"*"``."""
    table = {t: coverage_of(actual[:, j], low[:, j], high[:, j]) for j, t in enumerate(tickers)}
    table["*"] = coverage_of(actual, low, high)
    return table
