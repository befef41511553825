"""The state a :class:`~services.trainer.forecaster.Forecaster` holds, declared once so the strategy and
checkpoint modules beside it (mixed into it) are typed. No behaviour here."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import torch

from services.scoring.walk_forward import Pending, WalkForward
from services.trainer.forecaster.records import Config, HoldoutResult
from services.trainer.intervals.calibration import Calibration
from services.trainer.intervals.running_sigma import RunningSigma
from services.trainer.model.ar_baseline import LinearAR
from services.trainer.model.network import ForecastLSTM
from services.trainer.model.scaling import Scaler
from services.trainer.model.series import TickerSeries
from services.trainer.model.training import FitReport
from services.trainer.model.windows import Examples
from services.trainer.serving.per_stock import PerStockServing


class ForecasterFields:
    config: Config
    seed: int
    on_epoch: Callable[[int, float], None] | None
    lock: threading.RLock
    series: dict[str, TickerSeries]
    scalers: dict[str, Scaler]
    columns: list[str]
    _model: ForecastLSTM | None
    _serving: PerStockServing | None
    _final: dict[str, bool]
    _trainee: ForecastLSTM | None
    _optimizer: torch.optim.Optimizer | None
    lineage: str
    updates: int
    trained_at: datetime | None
    pending: dict[str, dict[int, Pending]]
    walk_forward: WalkForward
    baseline: LinearAR | None
    calibration: Calibration | None
    running_sigma: RunningSigma | None
    _first_ready: int | None
    _newest_minute: int
    _updated_minute: int
    _lineage_minute: int
    _trained_changes: dict[str, int]
    _refresh: set[str]
    _rng: np.random.Generator

    def _new_network(self, columns: int) -> tuple[ForecastLSTM, torch.optim.Optimizer]:
        raise NotImplementedError

    def _fit(
        self,
        model: ForecastLSTM,
        optimizer: torch.optim.Optimizer,
        train: Examples,
        holdout: Examples,
        should_stop: Callable[[], bool] | None,
    ) -> FitReport:
        raise NotImplementedError

    def _install(self, trainee: ForecastLSTM, optimizer: torch.optim.Optimizer, *, new_lineage: bool) -> None:
        raise NotImplementedError

    def _score_holdout(self, prepared: dict[str, Any], report: FitReport | None) -> HoldoutResult:
        raise NotImplementedError

    def _baseline_prices(self, windows: np.ndarray, last: np.ndarray, scalers: list[Scaler]) -> np.ndarray:
        raise NotImplementedError
