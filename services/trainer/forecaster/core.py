"""The trainer's state and its three jobs — ingest bars, forecast, train — with no I/O.

Two threads use one :class:`Forecaster`: the polling thread calls :meth:`step` (ingest, score, forecast:
one batched recurrent step per bar), the training worker calls :meth:`train_cycle`. Training runs on a
private copy of the network (``_trainee``) without holding the lock; installing new weights (with the
carried states re-primed for them) is the only part under it, so a long cold start never delays a forecast
nor the consumer's poll. Learning (``learning.py``), the mode's strategy (``per_stock.py`` or
``portfolio.py``, chosen once here) and the checkpoint state (``checkpoint_state.py``) live beside it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch

from services.scoring.walk_forward import Pending, WalkForward
from services.trainer.forecaster import checkpoint_state
from services.trainer.forecaster.horizons import with_horizons
from services.trainer.forecaster.learning import Learner
from services.trainer.forecaster.per_stock import PerStockStrategy
from services.trainer.forecaster.portfolio import PortfolioStrategy
from services.trainer.forecaster.portfolio_value import PortfolioValue
from services.trainer.forecaster.records import NAIVE_VERSION, BarIn, Config, CycleReport, Forecast
from services.trainer.forecaster.strategy import ModelForecast, Strategy
from services.trainer.intervals.calibration import Calibration
from services.trainer.intervals.horizon_ranges import no_pause, parkinson_bar
from services.trainer.intervals.range_state import RangeState
from services.trainer.intervals.running_sigma import RunningSigma
from services.trainer.model.ar_baseline import LinearAR
from services.trainer.model.network import ForecastLSTM
from services.trainer.model.scaling import Scaler
from services.trainer.model.series import TickerSeries
from services.trainer.model.windows import to_price
from services.trainer.serving.per_stock import PerStockServing

logger = logging.getLogger(__name__)

# Forecasts awaiting their actual close, per ticker: a bound so a ticker that stops trading cannot grow it.
_MAX_PENDING = 64


class Forecaster:
    def __init__(self, config: Config, *, seed: int = 0) -> None:
        self.config = config
        self.seed = seed
        # Told each cold-start epoch (epoch, hold-out loss): the service shows a progress bar with it.
        self.on_epoch: Callable[[int, float], None] | None = None
        # Called by the training thread between its steps, never under the lock: the service makes it wait
        # while a minute is being served (serving/gate.py).
        self.pause: Callable[[], None] = no_pause
        self.lock = threading.RLock()
        self.series: dict[str, TickerSeries] = {}
        self.scalers: dict[str, Scaler] = {}
        # portfolio mode: the model's columns, in order.
        self.columns: list[str] = []
        self.model: ForecastLSTM | None = None
        # per_stock: the installed weights' carried states (always replaced together with ``model``).
        self.serving: PerStockServing | None = None
        # Whether each ticker's newest bar is final (a provisional one is forecast without stepping).
        self.final: dict[str, bool] = {}
        self.trainee: ForecastLSTM | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.lineage = ""
        self.updates = 0
        self.trained_at: datetime | None = None
        self.pending: dict[str, dict[int, Pending]] = {}
        # Forecasts settled by recorded bars, not scored yet (ticker, forecast, actual close, minute).
        self.settled: list[tuple[str, Pending, float, int]] = []
        self.walk_forward = WalkForward()
        self.baseline: LinearAR | None = None
        # Per-stock output offsets and interval model, fitted at the cold start (calibration.py).
        self.calibration: Calibration | None = None
        # The interval's σ̂ per ticker, carried bar to bar under ``calibration`` (derived: not checkpointed).
        self.running_sigma: RunningSigma | None = None
        # Data minute at which some ticker first had enough history for the first cold start.
        self.first_ready: int | None = None
        self.newest_minute = 0
        self.trained_changes: dict[str, int] = {}
        # Data minute of the newest bar when the weights last changed (warm updates follow update_every).
        self.updated_minute = 0
        # Data minute of the newest bar at the last cold start (retrains follow retrain_every).
        self.lineage_minute = 0
        # Tickers that a cold start (or a join) just made forecastable by the model: forecast them again
        # at once rather than waiting for their next bar.
        self.refresh: set[str] = set()
        self.rng = np.random.default_rng(seed)
        # The mode's own steps, chosen once: nothing below asks which mode it is in.
        self.strategy: Strategy = (
            PortfolioStrategy(self) if config.mode == "portfolio" else PerStockStrategy(self)
        )
        self.learner = Learner(self)
        # The range model (forecaster/horizons.py): fitted after each cold start (derived, not checkpointed),
        # and each ticker's recent bars' Parkinson variances it reads (bars that carry a high and a low).
        self.range_state: RangeState | None = None
        self.ranges_for = ""
        self.variances: dict[str, dict[int, float]] = {}
        # The live trainer's portfolio series (portfolio_value.py; set by the service, checkpointed with the
        # rest). A backtest adds the portfolio's bars itself (range_grid.portfolio_closes) and leaves it None.
        self.portfolio_value: PortfolioValue | None = None

    @property
    def has_model(self) -> bool:
        return self.model is not None

    @property
    def model_version(self) -> str | None:
        if not self.lineage:
            return None
        return f"{self.config.mode}-{self.config.target}-{self.lineage}.{self.updates}"

    def train_cycle(self, should_stop: Callable[[], bool] | None = None) -> CycleReport:
        """One training cycle (training thread), by :class:`~services.trainer.forecaster.learning.Learner`."""
        return self.learner.train_cycle(should_stop)

    def state(self) -> dict[str, Any] | None:
        """What a restart needs (see :func:`~services.trainer.forecaster.checkpoint_state.state_of`)."""
        return checkpoint_state.state_of(self)

    def restore(self, state: dict[str, Any]) -> bool:
        """Resume from :meth:`state`; False (and nothing changed) when it was saved for another shape."""
        return checkpoint_state.restore(self, state)

    def tickers(self) -> list[str]:
        with self.lock:
            return list(self.series)

    def forget(self, tickers: list[str]) -> None:
        """Drop what is held for tickers this member no longer owns (their partitions were revoked)."""
        with self.lock:
            for t in tickers:
                self.series.pop(t, None)
                self.pending.pop(t, None)
                self.final.pop(t, None)
                if self.serving is not None:
                    self.serving.states.states.pop(t, None)
                self.trained_changes.pop(t, None)
            if self.running_sigma is not None:
                self.running_sigma.forget(tickers)
            if self.portfolio_value is not None:
                self.portfolio_value.forget(tickers)

    def ingest(
        self,
        ticker: str,
        minute: int,
        close: float,
        rev: int = 0,
        final: bool = True,
        high: float = math.nan,
        low: float = math.nan,
    ) -> bool:
        """Record a bar, and score the forecasts its arrival settles. Return whether the bar changed
        anything (False: a stale revision)."""
        with self.lock:
            changed = self._record(ticker, minute, close, rev, final, parkinson_bar(high, low))
            self.score_settled()
            return changed

    def _record(
        self, ticker: str, minute: int, close: float, rev: int, final: bool, variance: float = math.nan
    ) -> bool:
        """Record a bar and queue the forecasts it settles for :meth:`score_settled` (lock held)."""
        series = self.series.get(ticker)
        if series is None:
            series = self.series[ticker] = TickerSeries(self.config.history)
        if not series.add(minute, close, rev):
            return False
        if final:
            self._fold_range(ticker, minute, close, variance)
        self.newest_minute = max(self.newest_minute, minute)
        if minute == series.last_minute:
            self.final[ticker] = final
        waiting = self.pending.get(ticker)
        if waiting:
            for target in sorted(waiting):
                if target > minute or (target == minute and not final):
                    break
                pending = waiting.pop(target)
                actual = close if target == minute else series.close_at(target)
                # A target minute that never got a bar (a gap) has nothing to be scored against.
                if actual is not None:
                    self.settled.append((ticker, pending, actual, target))
        return True

    def _fold_range(self, ticker: str, minute: int, close: float, variance: float) -> None:
        if math.isfinite(variance):
            known = self.variances.setdefault(ticker, {})
            known[minute] = variance
            if len(known) > 2 * self.config.history:  # keep about the minutes the series holds
                for m in sorted(known)[: len(known) - self.config.history]:
                    del known[m]
        if self.range_state is not None:
            self.range_state.fold(ticker, minute, close, variance)

    def score_settled(self) -> None:
        """Score the forecasts settled by the bars recorded so far, in the order they were settled, and let
        the range recalibration learn from those bars (work that waits until their forecasts are out)."""
        with self.lock:
            if self.range_state is not None:
                self.range_state.recalibration.learn()
            settled, self.settled = self.settled, []
            for ticker, pending, actual, target in settled:
                self.walk_forward.add(ticker, pending, actual, target)

    def step(self, bars: list[BarIn], score: bool = True) -> list[Forecast]:
        """Ingest bars in arrival order and forecast after every one of them, batched: the tickers with a
        fresh bar are forecast together, just before a ticker's next bar in ``bars`` would overwrite its
        newest close. A backlog (a restart, a replay at speed 0) is forecast bar by bar, as it would have
        been live, and gives the same forecasts however it is cut into polls.

        ``score=False`` leaves the forecasts these bars settle for :meth:`score_settled`: the service
        publishes first and scores after (the same scores, in the same order; scoring was a tenth of the
        time between a minute's bars and their forecasts at 2,000 tickers)."""
        out: list[Forecast] = []
        fresh: dict[str, None] = {}
        with self.lock:
            for bar in bars:
                if bar.ticker in fresh:
                    out.extend(self.forecast(list(fresh)))
                    fresh.clear()
                variance = parkinson_bar(bar.high, bar.low)
                if self._record(bar.ticker, bar.minute, bar.close, bar.rev, bar.final, variance):
                    fresh[bar.ticker] = None
            out.extend(self.forecast(list(fresh)))
            if score:
                self.score_settled()
        return out

    def forecast(self, tickers: list[str]) -> list[Forecast]:
        """One forecast of the next minute per ticker, from its newest bar, each followed by its longer
        horizons (``horizons.py``; only the next minute's is scored walk-forward). A ticker the model
        cannot serve yet (no model, too little history since a cut, not trained on yet) gets the naive
        forecast, labelled as such (counted against the model's coverage, never scored as its forecast)."""
        with self.lock:
            self.refresh.difference_update(tickers)  # their newest bar is forecast now, by today's weights
            now_version = self.model_version
            trained_at = self.trained_at or datetime.now(UTC)
            model_out: dict[str, ModelForecast] = {}
            if self.model is not None and now_version is not None:
                model_out = self.strategy.forecast(tickers)
            out: list[Forecast] = []
            for t in tickers:
                series = self.series.get(t)
                if series is None or series.last_minute is None:
                    continue
                standin = t not in model_out
                if not standin:
                    based_on, last, yhat, base = model_out[t]
                    assert now_version is not None
                    version = now_version
                else:
                    based_on, last, yhat, base = (
                        series.last_minute,
                        series.closes[-1],
                        series.closes[-1],
                        None,
                    )
                    version = NAIVE_VERSION
                fc = Forecast(t, based_on, based_on + 1, yhat, last, version, trained_at, base, None, None)
                out.append(fc)
                if self.lineage:
                    waiting = self.pending.setdefault(t, {})
                    waiting[fc.minute] = Pending(last, yhat, self.lineage, version, base, standin)
                    while len(waiting) > _MAX_PENDING:
                        del waiting[min(waiting)]
            # The strategy's own interval, for the model's forecasts the range model gives no range.
            return with_horizons(
                self,
                out,
                lambda names: self.strategy.intervals({t: model_out[t][2] for t in names if t in model_out}),
            )

    def baseline_prices(self, windows: np.ndarray, last: np.ndarray, scalers: list[Scaler]) -> np.ndarray:
        if self.baseline is None:
            return np.full(last.shape, np.nan)
        return to_price(self.baseline.predict(windows), last, scalers)

    def take_refresh(self, limit: int | None = None) -> list[str]:
        """Up to ``limit`` (None: all) of the tickers to forecast again, the others left for later calls."""
        with self.lock:
            tickers = sorted(self.refresh)[:limit]
            self.refresh.difference_update(tickers)
            return tickers
