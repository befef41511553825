"""The forecaster's learning (:class:`Learner`): the cold start or a join when the strategy has tickers
ready, warm updates every ``update_every`` data minutes, and installing new weights (with the carried states
re-primed for them) for forecasting. Runs on the training thread only. No I/O.

``model_version`` is ``<mode>-<target>-<lineage>.<updates>``: the lineage changes at each cold start, the
count at each warm update, so a reader can trace any forecast back to the weights that made it.
"""

from __future__ import annotations

import copy
import logging
import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import torch

from services.scoring.panel import ScorePanels
from services.scoring.score import Score, add_to_panels, pool, pooled_series
from services.trainer.forecaster.horizons import adopt_ranges, prepare_ranges
from services.trainer.forecaster.records import CycleReport, HoldoutResult
from services.trainer.model.chunks import predict_windows
from services.trainer.model.network import ForecastLSTM
from services.trainer.model.training import FitReport, fit, make_optimizer, warm_update
from services.trainer.model.windows import Examples, input_length, to_price

if TYPE_CHECKING:
    from services.trainer.forecaster.core import Forecaster

logger = logging.getLogger(__name__)


class Learner:
    """The forecaster's learning, on the training thread. The mode's own steps are the strategy's."""

    def __init__(self, forecaster: Forecaster) -> None:
        self.f = forecaster

    def train_cycle(self, should_stop: Callable[[], bool] | None = None) -> CycleReport:
        """Cold-start (or join) when the strategy says so, otherwise warm-update on the newest windows of the
        tickers with fresh bars."""
        started = datetime.now(UTC)
        report = CycleReport()
        report.cold_start = self.f.strategy.cold_start(self._retrain_due(), should_stop)
        if report.cold_start is None and self.f.model is not None:
            report.updated_tickers, report.loss = self._warm_update()
        report.seconds = (datetime.now(UTC) - started).total_seconds()
        report.model_version = self.f.model_version
        return report

    def _retrain_due(self) -> bool:
        """A fresh cold start on the history held is due (``retrain_every`` data minutes after the last)."""
        every = self.f.config.retrain_every
        with self.f.lock:
            return bool(
                every and self.f.model is not None and self.f.newest_minute - self.f.lineage_minute >= every
            )

    def new_network(self, columns: int) -> tuple[ForecastLSTM, torch.optim.Optimizer]:
        torch.manual_seed(self.f.seed)
        model = ForecastLSTM(columns, self.f.config.units, self.f.config.layers)
        return model, make_optimizer(model, self.f.config.learning_rate)

    def fit(
        self,
        model: ForecastLSTM,
        optimizer: torch.optim.Optimizer,
        train: Examples,
        holdout: Examples,
        should_stop: Callable[[], bool] | None,
    ) -> FitReport:
        def between_batches() -> bool:
            self.f.pause()
            return should_stop is not None and should_stop()

        return fit(
            model, optimizer, train, holdout, window=self.f.config.window,
            max_epochs=self.f.config.max_epochs, patience=self.f.config.patience,
            batch_size=self.f.config.batch_size, seed=self.f.seed, should_stop=between_batches,
            epoch_windows=self.f.config.epoch_windows, on_epoch=self.f.on_epoch,
        )  # fmt: skip

    def install(
        self,
        trainee: ForecastLSTM,
        optimizer: torch.optim.Optimizer,
        *,
        new_lineage: bool,
        refresh: set[str] | None = None,
    ) -> None:
        """Publish the trainee's weights to forecasting, with the carried states recomputed for them: the
        states are primed here (training thread) from a snapshot, and weights and states are swapped in
        together under one short lock; so is a new lineage's range model, fitted here first, so that the
        lineage's first forecasts carry every horizon (fitted after the swap, the minutes in between had
        the next minute's only). ``refresh``: the tickers a cold start makes forecastable, forecast again
        by the polling thread at once; set here, not once the hold-out is scored (by then their next bars
        had been served with the new weights, and the refresh re-primed every one of them)."""
        model = copy.deepcopy(trainee).eval()
        ranges = prepare_ranges(self.f, self.f.pause) if new_lineage else None
        self.f.pause()
        primed = self.f.strategy.prime(model)
        calibration = self.f.calibration
        shift = calibration.drift(model) if calibration is not None and not new_lineage else None
        with self.f.lock:
            if calibration is not None and shift is not None:
                calibration.shift = shift  # see calibration.py: warm updates drift the output level
            self.f.trainee, self.f.optimizer = trainee, optimizer
            self.f.model, self.f.serving = model, primed.adopt() if primed is not None else None
            self.f.updated_minute = self.f.newest_minute
            if new_lineage:
                self.f.lineage_minute = self.f.newest_minute
                self.f.lineage, self.f.updates = uuid.uuid4().hex[:8], 0
                adopt_ranges(self.f, ranges, self.f.lineage)
            else:
                self.f.updates += 1
            self.f.trained_at = datetime.now(UTC)
            self.f.refresh |= refresh or set()

    def score_holdout(self, prepared: dict[str, Any], report: FitReport | None) -> HoldoutResult:
        # Runs on the training thread, the only one that changes weights: no lock needed to read them, and
        # forecasts (which only read) go on meanwhile.
        model, version = self.f.model, self.f.model_version
        assert model is not None and version is not None
        per_ticker: dict[str, Score] = {}
        baseline: dict[str, Score] = {}
        panel, base_panel = ScorePanels(), ScorePanels()
        for t, p in prepared.items():
            self.f.pause()
            columns = self.f.strategy.holdout_columns(t)
            x, last, actual = p.holdout.x, p.holdout.last, p.holdout.actual
            outputs = predict_windows(model, p.holdout, self.f.config.window) - self.f.strategy.output_offset(
                t
            )
            prices = to_price(outputs, last, p.scalers)
            base_prices = self.f.baseline_prices(x, last, p.scalers)
            for j, name in enumerate(columns):
                per_ticker[name], baseline[name] = Score(), Score()
                per_ticker[name].add(last[:, j], prices[:, j], actual[:, j])
                baseline[name].add(last[:, j], base_prices[:, j], actual[:, j])
                if pooled_series(name):  # the portfolio's value is scored on its own, never pooled
                    add_to_panels(panel, p.holdout.minute, last[:, j], prices[:, j], actual[:, j])
                    add_to_panels(base_panel, p.holdout.minute, last[:, j], base_prices[:, j], actual[:, j])
        pooled = pool((s for t, s in per_ticker.items() if pooled_series(t)), panel)
        pooled_base = pool((s for t, s in baseline.items() if pooled_series(t)), base_panel)
        return HoldoutResult(self.f.lineage, version, report, per_ticker, pooled, pooled_base)

    def _warm_update(self) -> tuple[int, float]:
        """A few optimizer steps on the windows that closed since the last update, for the tickers that got
        bars, once every ``update_every`` data minutes."""
        if self.f.config.update_steps <= 0 or self.f.trainee is None or self.f.optimizer is None:
            return 0, math.nan
        need = input_length(self.f.config.window, self.f.config.target)
        with self.f.lock:
            since = self.f.newest_minute - self.f.updated_minute
            if since < self.f.config.update_every:
                return 0, math.nan
            count = max(1, min(since, self.f.config.window))
            newest, fresh = self.f.strategy.newest_windows(need, count)
        if not len(newest):
            return 0, math.nan
        window, steps = self.f.config.window, self.f.config.update_steps
        loss = warm_update(self.f.trainee, self.f.optimizer, newest, window, steps)
        if not math.isfinite(loss):
            # A diverged step must not reach forecasting; the previous weights stay in service.
            logger.warning("warm update diverged (loss %s); weights not installed", loss)
            return 0, loss
        self.install(self.f.trainee, self.f.optimizer, new_lineage=False)
        with self.f.lock:
            for t, changes in fresh.items():
                self.f.trained_changes[t] = changes
        return len(fresh), loss
