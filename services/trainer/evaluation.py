"""Scoring forecasts against the naive forecast (next close = last close). No I/O.

The MSE ratio is computed on relative errors ``(forecast - actual) / last close`` (that is, in return
space), so a pooled score is not dominated by the highest-priced ticker; MAE is in price units per ticker.
Directional accuracy counts only minutes whose close moved (naive has no direction) and carries a 95%
Wilson interval, so 52% on 200 moves is not mistaken for skill.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

Z95 = 1.959963984540054


def wilson_interval(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class Score:
    """Running sums; add forecasts as their actual closes become known, merge to pool."""

    n: int = 0
    sse_model: float = 0.0
    sse_naive: float = 0.0
    sae_model: float = 0.0
    sae_naive: float = 0.0
    moves: int = 0
    hits: int = 0

    def add(self, last: np.ndarray, forecast: np.ndarray, actual: np.ndarray) -> None:
        last, forecast, actual = (np.asarray(a, dtype=np.float64).ravel() for a in (last, forecast, actual))
        ok = np.isfinite(last) & np.isfinite(forecast) & np.isfinite(actual) & (last > 0)
        last, forecast, actual = last[ok], forecast[ok], actual[ok]
        self.n += len(last)
        self.sse_model += float(np.sum(((forecast - actual) / last) ** 2))
        self.sse_naive += float(np.sum(((last - actual) / last) ** 2))
        self.sae_model += float(np.sum(np.abs(forecast - actual)))
        self.sae_naive += float(np.sum(np.abs(last - actual)))
        moved = actual != last
        self.moves += int(np.sum(moved))
        self.hits += int(
            np.sum(np.sign(forecast[moved] - last[moved]) == np.sign(actual[moved] - last[moved]))
        )

    def merge(self, other: Score) -> Score:
        return Score(**{k: getattr(self, k) + getattr(other, k) for k in asdict(self)})

    @property
    def mse_ratio(self) -> float | None:
        """Model MSE / naive MSE: below 1 beats naive. None until there is something to compare."""
        if self.n == 0 or self.sse_naive == 0:
            return None
        return self.sse_model / self.sse_naive

    @property
    def directional_accuracy(self) -> float | None:
        return self.hits / self.moves if self.moves else None

    def summary(self) -> dict[str, float | int | None]:
        """Plain numbers (no NaN: FerretDB rejects it) for the log and the ``metrics`` collection."""
        low, high = wilson_interval(self.hits, self.moves)
        return {
            "n": self.n,
            "mse_ratio": self.mse_ratio,
            "mse_model": self.sse_model / self.n if self.n else None,
            "mse_naive": self.sse_naive / self.n if self.n else None,
            "mae_model": self.sae_model / self.n if self.n else None,
            "mae_naive": self.sae_naive / self.n if self.n else None,
            "directional_accuracy": self.directional_accuracy,
            "directional_n": self.moves,
            "directional_ci_low": low,
            "directional_ci_high": high,
        }

    def beats_naive(self) -> bool:
        """An honest claim: lower MSE than naive *and* a direction hit rate whose interval excludes 50%."""
        ratio = self.mse_ratio
        low, _ = wilson_interval(self.hits, self.moves)
        return ratio is not None and ratio < 1.0 and low > 0.5

    def state(self) -> dict[str, float | int]:
        return asdict(self)
