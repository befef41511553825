"""The trainer's learning, mixed into :class:`~services.trainer.forecaster.Forecaster`: the cold start or a
join when tickers are ready, warm updates every ``update_every`` data minutes, and installing new weights
(with the carried states re-primed for them) for forecasting. Runs on the training thread only. No I/O.

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
from typing import Any

import torch

from services.scoring.panel import MinutePanel
from services.scoring.score import Score, add_to_panel, pool
from services.trainer.forecaster.per_stock import PerStockStrategy
from services.trainer.forecaster.portfolio import PortfolioStrategy
from services.trainer.forecaster.records import CycleReport, HoldoutResult
from services.trainer.model.chunks import predict_windows
from services.trainer.model.network import ForecastLSTM
from services.trainer.model.training import FitReport, fit, make_optimizer, warm_update
from services.trainer.model.windows import Examples, input_length, to_price
from services.trainer.serving.per_stock import PerStockServing

logger = logging.getLogger(__name__)


class Learning(PerStockStrategy, PortfolioStrategy):
    @property
    def model_version(self) -> str | None:
        if not self.lineage:
            return None
        return f"{self.config.mode}-{self.config.target}-{self.lineage}.{self.updates}"

    def train_cycle(self, should_stop: Callable[[], bool] | None = None) -> CycleReport:
        """Cold-start when the model does not exist yet (or portfolio mode has new tickers ready),
        otherwise warm-update on the newest windows of the tickers with fresh bars."""
        started = datetime.now(UTC)
        report = CycleReport()
        retrain = self._retrain_due()
        if self.config.mode == "portfolio":
            columns = self._portfolio_columns_ready()
            if columns and (columns != self.columns or retrain):
                report.cold_start = self._cold_start_portfolio(columns, should_stop)
        else:
            ready = self._per_stock_ready()
            if ready and self._model is None:
                report.cold_start = self._cold_start_per_stock(ready, should_stop)
            elif ready:
                report.cold_start = self._join_per_stock(ready)
            elif retrain:
                report.cold_start = self._cold_start_per_stock(self._per_stock_known(), should_stop)
        if report.cold_start is None and self._model is not None:
            report.updated_tickers, report.loss = self._warm_update()
        report.seconds = (datetime.now(UTC) - started).total_seconds()
        report.model_version = self.model_version
        return report

    def _retrain_due(self) -> bool:
        """A fresh cold start on the history held is due (``retrain_every`` data minutes after the last)."""
        every = self.config.retrain_every
        with self.lock:
            return bool(
                every and self._model is not None and self._newest_minute - self._lineage_minute >= every
            )

    def _new_network(self, columns: int) -> tuple[ForecastLSTM, torch.optim.Optimizer]:
        torch.manual_seed(self.seed)
        model = ForecastLSTM(columns, self.config.units, self.config.layers)
        return model, make_optimizer(model, self.config.learning_rate)

    def _fit(
        self,
        model: ForecastLSTM,
        optimizer: torch.optim.Optimizer,
        train: Examples,
        holdout: Examples,
        should_stop: Callable[[], bool] | None,
    ) -> FitReport:
        return fit(
            model, optimizer, train, holdout, window=self.config.window,
            max_epochs=self.config.max_epochs, patience=self.config.patience,
            batch_size=self.config.batch_size, seed=self.seed, should_stop=should_stop,
            epoch_windows=self.config.epoch_windows, on_epoch=self.on_epoch,
        )  # fmt: skip

    def _install(self, trainee: ForecastLSTM, optimizer: torch.optim.Optimizer, *, new_lineage: bool) -> None:
        """Publish the trainee's weights to forecasting, with the carried states recomputed for them: the
        states are primed here (training thread) from a snapshot, and weights and states are swapped in
        together under one short lock."""
        model = copy.deepcopy(trainee).eval()
        serving = old = None
        snapshots: dict[str, Any] = {}
        if self.config.mode == "per_stock":
            with self.lock:
                old = self._serving
                snapshots = old.snapshot(self.series) if old is not None else {}
                scalers = dict(self.scalers)
            serving = PerStockServing(model, self.config.window, self.config.ffill_max)
            if old is not None:
                serving = old.primed(model, snapshots, scalers)
        calibration = self.calibration
        shift = calibration.drift(model) if calibration is not None and not new_lineage else None
        with self.lock:
            if calibration is not None and shift is not None:
                calibration.shift = shift  # see calibration.py: warm updates drift the output level
            if serving is not None and old is not None:
                serving.adopt_moved(old, snapshots)
            self._trainee, self._optimizer = trainee, optimizer
            self._model, self._serving = model, serving
            self._updated_minute = self._newest_minute
            if new_lineage:
                self._lineage_minute = self._newest_minute
                self.lineage, self.updates = uuid.uuid4().hex[:8], 0
            else:
                self.updates += 1
            self.trained_at = datetime.now(UTC)

    def _score_holdout(self, prepared: dict[str, Any], report: FitReport | None) -> HoldoutResult:
        # Runs on the training thread, the only one that changes weights: no lock needed to read them, and
        # forecasts (which only read) go on meanwhile.
        model, version = self._model, self.model_version
        assert model is not None and version is not None
        per_ticker: dict[str, Score] = {}
        baseline: dict[str, Score] = {}
        panel, base_panel = MinutePanel(), MinutePanel()
        for t, p in prepared.items():
            columns = [t] if self.config.mode == "per_stock" else self.columns
            x, last, actual = p.holdout.x, p.holdout.last, p.holdout.actual
            outputs = predict_windows(model, p.holdout, self.config.window)
            if self.config.mode == "per_stock":
                outputs = outputs - self._offset(t)
            prices = to_price(outputs, last, p.scalers)
            base_prices = self._baseline_prices(x, last, p.scalers)
            for j, name in enumerate(columns):
                per_ticker[name], baseline[name] = Score(), Score()
                per_ticker[name].add(last[:, j], prices[:, j], actual[:, j])
                baseline[name].add(last[:, j], base_prices[:, j], actual[:, j])
                add_to_panel(panel, p.holdout.minute, last[:, j], prices[:, j], actual[:, j])
                add_to_panel(base_panel, p.holdout.minute, last[:, j], base_prices[:, j], actual[:, j])
        pooled, pooled_base = pool(per_ticker.values(), panel), pool(baseline.values(), base_panel)
        result = HoldoutResult(self.lineage, version, report, per_ticker, pooled, pooled_base)
        with self.lock:
            self._refresh |= set(self.columns if self.config.mode == "portfolio" else prepared)
        return result

    def _warm_update(self) -> tuple[int, float]:
        """A few optimizer steps on the windows that closed since the last update, for the tickers that got
        bars, once every ``update_every`` data minutes."""
        if self.config.update_steps <= 0 or self._trainee is None or self._optimizer is None:
            return 0, math.nan
        need = input_length(self.config.window, self.config.target)
        with self.lock:
            since = self._newest_minute - self._updated_minute
            if since < self.config.update_every:
                return 0, math.nan
            count = max(1, min(since, self.config.window))
            if self.config.mode == "portfolio":
                newest, fresh = self._newest_portfolio_windows(need, count)
            else:
                newest, fresh = self._newest_per_stock_windows(need, count)
        if not len(newest):
            return 0, math.nan
        window, steps = self.config.window, self.config.update_steps
        loss = warm_update(self._trainee, self._optimizer, newest, window, steps)
        if not math.isfinite(loss):
            # A diverged step must not reach forecasting; the previous weights stay in service.
            logger.warning("warm update diverged (loss %s); weights not installed", loss)
            return 0, loss
        self._install(self._trainee, self._optimizer, new_lineage=False)
        with self.lock:
            for t, changes in fresh.items():
                self._trained_changes[t] = changes
        return len(fresh), loss
