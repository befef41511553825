"""The linear autoregressive baseline: the model's scaled inputs, its last ``LAGS`` values, least squares.

Fitted at each cold start on the same training windows as the LSTM, and forecast beside it on every bar, so
every table shows whether the network earns its cost over a cheap, strong baseline. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LAGS = 5


@dataclass(frozen=True)
class LinearAR:
    """``y = intercept + coef · (the last LAGS values, oldest first)``, shared by every column."""

    coef: tuple[float, ...]
    intercept: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, lags: int = LAGS) -> LinearAR:
        """Least squares on windows ``x`` [n, window, columns] -> targets ``y`` [n, columns]."""
        lags = min(lags, x.shape[1])
        columns = x.shape[2]
        inputs = np.concatenate([x[:, -lags:, j] for j in range(columns)]).astype(np.float64)
        targets = np.concatenate([y[:, j] for j in range(columns)]).astype(np.float64)
        design = np.hstack([inputs, np.ones((len(inputs), 1))])
        # A little ridge keeps a flat or tiny training set solvable.
        gram = design.T @ design + 1e-6 * np.eye(design.shape[1])
        solution = np.linalg.solve(gram, design.T @ targets)
        return cls(tuple(float(c) for c in solution[:-1]), float(solution[-1]))

    def predict(self, recent: np.ndarray) -> np.ndarray:
        """Scaled forecasts [n, columns] from the last values ``recent`` [n, >=lags, columns]."""
        lags = len(self.coef)
        weights = np.asarray(self.coef, dtype=np.float64)
        result: np.ndarray = np.einsum("nlc,l->nc", recent[:, -lags:, :].astype(np.float64), weights)
        return result + self.intercept

    def state(self) -> dict[str, object]:
        return {"coef": list(self.coef), "intercept": self.intercept}

    @classmethod
    def from_state(cls, state: dict[str, object]) -> LinearAR:
        return cls(tuple(float(c) for c in state["coef"]), float(state["intercept"]))  # type: ignore[attr-defined, arg-type]
