"""Per-ticker scalers, fitted on the training part only. No I/O.

* ``price`` target (the original recipe): MinMax on closes. It saturates once prices leave the training
  range, one reason the recipe is kept only for comparison.
* ``return`` target: log returns divided by their standard deviation on the training part, so tickers of
  very different prices and volatilities train together in one global model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A flat training series (a halted stock) would divide by zero; this keeps the transform finite.
_MIN_SPREAD = 1e-12


@dataclass(frozen=True)
class PriceScaler:
    low: float
    high: float

    @classmethod
    def fit(cls, train_closes: np.ndarray) -> PriceScaler:
        return cls(float(np.min(train_closes)), float(np.max(train_closes)))

    @property
    def spread(self) -> float:
        return max(self.high - self.low, _MIN_SPREAD * max(1.0, abs(self.high)))

    def transform(self, closes: np.ndarray) -> np.ndarray:
        return (closes - self.low) / self.spread

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        return scaled * self.spread + self.low


@dataclass(frozen=True)
class ReturnScaler:
    scale: float

    @classmethod
    def fit(cls, train_returns: np.ndarray) -> ReturnScaler:
        std = float(np.std(train_returns)) if len(train_returns) else 0.0
        return cls(max(std, 1e-6))

    def transform(self, returns: np.ndarray) -> np.ndarray:
        return returns / self.scale

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        return scaled * self.scale


Scaler = PriceScaler | ReturnScaler


def scaler_to_state(scaler: Scaler) -> dict[str, float | str]:
    if isinstance(scaler, PriceScaler):
        return {"kind": "price", "low": scaler.low, "high": scaler.high}
    return {"kind": "return", "scale": scaler.scale}


def scaler_from_state(state: dict[str, float | str]) -> Scaler:
    if state["kind"] == "price":
        return PriceScaler(float(state["low"]), float(state["high"]))
    return ReturnScaler(float(state["scale"]))
