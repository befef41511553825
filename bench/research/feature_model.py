"""The fitted feature model of the research bench (``bench/forecast_models.py``): per-ticker scalers of
the inputs and targets built by ``features.py``, fitted on training rows only. No I/O."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.research.features import (
    _MIN_STD,
    FeatureSpec,
    Panel,
    _nanmean,
    forward_returns,
    raw_features,
    volume_profile,
)


@dataclass
class TickerScaler:
    """Per ticker and column mean and standard deviation, ``[tickers, columns]``, fitted on training rows."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray) -> TickerScaler:
        """``values`` ``[minutes, tickers, columns]`` (NaN ignored): the training rows only."""
        mean = np.nan_to_num(_nanmean(values, axis=0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            std = np.nan_to_num(np.nanstd(values, axis=0))
        return cls(mean, np.maximum(std, _MIN_STD))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        return scaled * self.std + self.mean


@dataclass
class FeatureModel:
    """The fitted inputs and targets: build with ``fit`` on a panel and its training rows, then call
    ``inputs``/``targets`` on any panel of the same tickers (training, validation, test, live)."""

    spec: FeatureSpec
    tickers: tuple[str, ...]
    profile: np.ndarray
    features: TickerScaler
    target: TickerScaler
    # Columns passed through unscaled (already on a fixed scale).
    unscaled: tuple[int, ...] = field(default=())

    @classmethod
    def fit(cls, train: Panel, spec: FeatureSpec | None = None) -> FeatureModel:
        """Fit every statistic on ``train`` (the training rows, e.g. ``panel.rows(panel.session < k)``)."""
        spec = spec or FeatureSpec()
        profile = volume_profile(train, spec.volume_bucket)
        raw = raw_features(train, spec, profile)
        unscaled = tuple(i for i, n in enumerate(spec.names) if n.startswith("session_"))
        scaler = TickerScaler.fit(raw)
        scaler.mean[:, list(unscaled)], scaler.std[:, list(unscaled)] = 0.0, 1.0
        target = TickerScaler.fit(np.stack([forward_returns(train, h) for h in spec.horizons], axis=-1))
        return cls(spec, train.tickers, profile, scaler, target, unscaled)

    def _check(self, panel: Panel) -> None:
        if panel.tickers != self.tickers:
            raise ValueError(f"panel tickers {panel.tickers} differ from the fitted {self.tickers}")

    def inputs(self, panel: Panel) -> np.ndarray:
        """Scaled inputs ``[minutes, tickers, features]`` float32; unknown values (a lag before the session,
        a ticker with no bar yet) read 0, the training mean."""
        self._check(panel)
        scaled = self.features.transform(raw_features(panel, self.spec, self.profile))
        return np.nan_to_num(scaled, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    def targets(self, panel: Panel) -> np.ndarray:
        """Standardized, de-meaned forward returns ``[minutes, tickers, horizons]`` float32 (NaN: none)."""
        self._check(panel)
        raw = np.stack([forward_returns(panel, h) for h in self.spec.horizons], axis=-1)
        return self.target.transform(raw).astype(np.float32)

    def to_return(self, scaled: np.ndarray, keep_training_drift: bool = False) -> np.ndarray:
        """Model outputs ``[..., tickers, horizons]`` back to log returns. The training mean (a few sessions'
        drift, mostly noise) is added back only on request: by default a forecast is the model's signal
        around zero, so a drift the training days happened to have does not become a standing bias."""
        out = np.asarray(scaled, dtype=np.float64) * self.target.std
        return out + self.target.mean if keep_training_drift else out

    def to_close(
        self, scaled: np.ndarray, last_close: np.ndarray, keep_training_drift: bool = False
    ) -> np.ndarray:
        """Forecast closes ``last_close * exp(r̂)``; ``last_close`` ``[..., tickers]``."""
        r = self.to_return(scaled, keep_training_drift)
        return np.asarray(last_close)[..., None] * np.exp(r)

    def state(self) -> dict[str, Any]:
        """Plain lists and numbers, for a checkpoint."""
        return {
            "spec": {**self.spec.__dict__, "horizons": list(self.spec.horizons)},
            "tickers": list(self.tickers),
            "profile": self.profile.tolist(),
            "features": [self.features.mean.tolist(), self.features.std.tolist()],
            "target": [self.target.mean.tolist(), self.target.std.tolist()],
            "unscaled": list(self.unscaled),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> FeatureModel:
        spec = dict(state["spec"])
        feats, target = state["features"], state["target"]
        return cls(
            FeatureSpec(**{**spec, "horizons": tuple(spec["horizons"])}),
            tuple(state["tickers"]),
            np.asarray(state["profile"]),
            TickerScaler(np.asarray(feats[0]), np.asarray(feats[1])),
            TickerScaler(np.asarray(target[0]), np.asarray(target[1])),
            tuple(state["unscaled"]),
        )
