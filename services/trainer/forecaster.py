"""The trainer's state and its three jobs — ingest bars, forecast, train — with no I/O.

Two threads use one :class:`Forecaster`: the polling thread calls :meth:`ingest` and :meth:`forecast`
(fast: one batched forward pass), the training worker calls :meth:`train_cycle`. Training runs on a private
copy of the network (``_trainee``) without holding the lock; only installing the new weights takes it, so a
long cold start never delays a forecast nor the consumer's poll.

``model_version`` is ``<mode>-<target>-<lineage>.<updates>``: the lineage changes at each cold start, the
count at each warm update, so a reader can trace any forecast back to the weights that made it.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import torch

from services.trainer.baseline import LinearAR
from services.trainer.evaluation import Score, pool
from services.trainer.model import ForecastLSTM, predict
from services.trainer.per_stock import PerStockServing
from services.trainer.scaling import Scaler, scaler_from_state, scaler_to_state
from services.trainer.series import TickerSeries, align
from services.trainer.training import FitReport, fit, make_optimizer, warm_update
from services.trainer.windows import Examples, Target, input_length, prepare, scale, to_price
from shared.settings import Settings

logger = logging.getLogger(__name__)

Mode = Literal["per_stock", "portfolio"]
NAIVE_VERSION = "naive-warmup"
# Forecasts awaiting their actual close, per ticker: a bound so a ticker that stops trading cannot grow it.
_MAX_PENDING = 64


@dataclass(frozen=True)
class Config:
    mode: Mode = "per_stock"
    target: Target = "return"
    layers: int = 4
    units: int = 50
    window: int = 60
    max_epochs: int = 100
    patience: int = 5
    batch_size: int = 256
    learning_rate: float = 1e-3
    update_steps: int = 2
    ffill_max: int = 5
    history: int = 3_000
    # Closes (after the missing-minute policy) a ticker needs before its cold start.
    min_history: int = 0
    # Windows drawn per cold-start epoch (and for the early-stopping loss): bounds an epoch at ~2 s on
    # 2 cores however many tickers share the global model. None: every window (the original recipe).
    epoch_windows: int | None = 8_192
    # The first cold start waits until every ticker with bars has enough history, or until this many
    # minutes of data time have passed since the first one had (a ticker that never will must not block).
    cold_start_wait: int = 30

    @classmethod
    def from_settings(cls, settings: Settings) -> Config:
        return cls(
            mode=settings.trainer_mode,
            target=settings.trainer_target,
            layers=settings.lstm_layers,
            units=settings.lstm_units,
            window=settings.window_min,
            max_epochs=settings.max_epochs,
            patience=settings.early_stopping_patience,
            batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            update_steps=settings.update_steps,
            ffill_max=settings.ffill_max_minutes,
            history=settings.history_minutes,
            cold_start_wait=settings.trainer_cold_start_wait_min,
        )

    @property
    def needed(self) -> int:
        # Enough for a useful 8:2 split: the hold-out holds at least a window's worth of forecasts.
        return self.min_history or 5 * input_length(self.window, self.target)


@dataclass(frozen=True)
class Forecast:
    ticker: str
    based_on: int  # minute of the last bar used
    minute: int  # the minute forecast (based_on + 1)
    yhat: float
    last_close: float
    model_version: str
    trained_at: datetime
    # The linear AR baseline's forecast of the same minute (None for a naive stand-in).
    baseline: float | None = None


@dataclass(frozen=True)
class BarIn:
    """What the trainer takes from a bar (OHLCV kept: richer inputs need them)."""

    ticker: str
    minute: int
    close: float
    rev: int = 0
    final: bool = True
    open: float = math.nan
    high: float = math.nan
    low: float = math.nan
    volume: int = 0


@dataclass
class HoldoutResult:
    lineage: str
    model_version: str
    fit: FitReport | None
    per_ticker: dict[str, Score]
    pooled: Score
    baseline: Score = field(default_factory=Score)
    # A ticker joining a model: its rows only; the lineage's pooled row stays the cold start's.
    joined: bool = False


@dataclass
class CycleReport:
    cold_start: HoldoutResult | None = None
    updated_tickers: int = 0
    loss: float = math.nan
    seconds: float = 0.0
    model_version: str | None = None


@dataclass
class _Pending:
    last: float
    yhat: float
    lineage: str
    version: str
    baseline: float | None = None
    standin: bool = False


@dataclass
class WalkForward:
    """Walk-forward scores per (ticker, lineage), and which keys changed since the last :meth:`drain`."""

    scores: dict[tuple[str, str], Score] = field(default_factory=dict)
    # The AR baseline's scores on the same minutes.
    baseline: dict[tuple[str, str], Score] = field(default_factory=dict)
    versions: dict[tuple[str, str], str] = field(default_factory=dict)
    dirty: set[tuple[str, str]] = field(default_factory=set)

    def add(self, ticker: str, pending: _Pending, actual: float) -> None:
        key = (ticker, pending.lineage)
        score = self.scores.setdefault(key, Score())
        self.dirty.add(key)
        if pending.standin:
            score.standins += 1
            return
        last, truth = np.array([pending.last]), np.array([actual])
        score.add(last, np.array([pending.yhat]), truth)
        if pending.baseline is not None:
            self.baseline.setdefault(key, Score()).add(last, np.array([pending.baseline]), truth)
        self.versions[key] = pending.version

    def pooled(self, lineage: str) -> Score:
        return pool(s for (_, lin), s in self.scores.items() if lin == lineage)

    def pooled_baseline(self, lineage: str) -> Score:
        return pool(s for (_, lin), s in self.baseline.items() if lin == lineage)


class Forecaster:
    def __init__(self, config: Config, *, seed: int = 0) -> None:
        self.config = config
        self.seed = seed
        # Told each cold-start epoch (epoch, hold-out loss): the service shows a progress bar with it.
        self.on_epoch: Callable[[int, float], None] | None = None
        self.lock = threading.RLock()
        self.series: dict[str, TickerSeries] = {}
        self.scalers: dict[str, Scaler] = {}
        # portfolio mode: the model's columns, in order.
        self.columns: list[str] = []
        self._model: ForecastLSTM | None = None
        # per_stock: the installed weights' carried states (always replaced together with ``_model``).
        self._serving: PerStockServing | None = None
        # Whether each ticker's newest bar is final (a provisional one is forecast without stepping).
        self._final: dict[str, bool] = {}
        self._trainee: ForecastLSTM | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self.lineage = ""
        self.updates = 0
        self.trained_at: datetime | None = None
        self.pending: dict[str, dict[int, _Pending]] = {}
        self.walk_forward = WalkForward()
        self.baseline: LinearAR | None = None
        # Data minute at which some ticker first had enough history for the first cold start.
        self._first_ready: int | None = None
        self._newest_minute = 0
        self._trained_changes: dict[str, int] = {}
        # Tickers that a cold start (or a join) just made forecastable by the model: forecast them again
        # at once rather than waiting for their next bar.
        self._refresh: set[str] = set()
        self._rng = np.random.default_rng(seed)

    # --- state -------------------------------------------------------------------------------------
    @property
    def model_version(self) -> str | None:
        if not self.lineage:
            return None
        return f"{self.config.mode}-{self.config.target}-{self.lineage}.{self.updates}"

    @property
    def has_model(self) -> bool:
        return self._model is not None

    def tickers(self) -> list[str]:
        with self.lock:
            return list(self.series)

    def forget(self, tickers: list[str]) -> None:
        """Drop what is held for tickers this member no longer owns (their partitions were revoked)."""
        with self.lock:
            for t in tickers:
                self.series.pop(t, None)
                self.pending.pop(t, None)
                self._final.pop(t, None)
                if self._serving is not None:
                    self._serving.states.states.pop(t, None)
                self._trained_changes.pop(t, None)

    # --- ingest ------------------------------------------------------------------------------------
    def ingest(self, ticker: str, minute: int, close: float, rev: int = 0, final: bool = True) -> bool:
        """Record a bar, and score the forecasts its arrival settles. Return whether the bar changed
        anything (False: a stale revision)."""
        with self.lock:
            series = self.series.get(ticker)
            if series is None:
                series = self.series[ticker] = TickerSeries(self.config.history)
            if not series.add(minute, close, rev):
                return False
            self._newest_minute = max(self._newest_minute, minute)
            if minute == series.last_minute:
                self._final[ticker] = final
            waiting = self.pending.get(ticker)
            if waiting:
                for target in sorted(waiting):
                    if target > minute or (target == minute and not final):
                        break
                    pending = waiting.pop(target)
                    actual = close if target == minute else series.close_at(target)
                    # A target minute that never got a bar (a gap) has nothing to be scored against.
                    if actual is not None:
                        self.walk_forward.add(ticker, pending, actual)
            return True

    # --- forecast ----------------------------------------------------------------------------------
    def step(self, bars: list[BarIn]) -> list[Forecast]:
        """Ingest bars in arrival order and forecast after every one of them, batched: the tickers with a
        fresh bar are forecast together, just before a ticker's next bar in ``bars`` would overwrite its
        newest close. A backlog (a restart, a replay at speed 0) is forecast bar by bar, as it would have
        been live, and gives the same forecasts however it is cut into polls."""
        out: list[Forecast] = []
        fresh: dict[str, None] = {}
        for bar in bars:
            if bar.ticker in fresh:
                out.extend(self.forecast(list(fresh)))
                fresh.clear()
            if self.ingest(bar.ticker, bar.minute, bar.close, bar.rev, bar.final):
                fresh[bar.ticker] = None
        out.extend(self.forecast(list(fresh)))
        return out

    def forecast(self, tickers: list[str]) -> list[Forecast]:
        """One forecast of the next minute per ticker, from its newest bar. A ticker the model cannot serve
        yet (no model, too little history since a cut, not trained on yet) gets the naive forecast,
        labelled as such (and counted against the model's coverage, never scored as its forecast)."""
        with self.lock:
            now_version = self.model_version
            trained_at = self.trained_at or datetime.now(UTC)
            model_out: dict[str, tuple[int, float, float, float | None]] = {}
            if self._model is not None and now_version is not None:
                model_out = (
                    self._forecast_portfolio(tickers)
                    if self.config.mode == "portfolio"
                    else self._forecast_per_stock(tickers)
                )
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
                fc = Forecast(t, based_on, based_on + 1, yhat, last, version, trained_at, base)
                out.append(fc)
                if self.lineage:
                    waiting = self.pending.setdefault(t, {})
                    waiting[fc.minute] = _Pending(last, yhat, self.lineage, version, base, standin)
                    while len(waiting) > _MAX_PENDING:
                        del waiting[min(waiting)]
            return out

    def _baseline_prices(self, windows: np.ndarray, last: np.ndarray, scalers: list[Scaler]) -> np.ndarray:
        if self.baseline is None:
            return np.full(last.shape, np.nan)
        return to_price(self.baseline.predict(windows), last, scalers)

    def _forecast_per_stock(self, tickers: list[str]) -> dict[str, tuple[int, float, float, float | None]]:
        assert self._serving is not None
        items = []
        for t in tickers:
            scaler, series = self.scalers.get(t), self.series.get(t)
            if scaler is not None and series is not None and series.last_minute is not None:
                items.append((t, series, scaler, self._final.get(t, True)))
        scaled = self._serving.forecast(items)
        out: dict[str, tuple[int, float, float, float | None]] = {}
        for t, value in scaled.items():
            series, scalers = self.series[t], [self.scalers[t]]
            last = np.array([[series.closes[-1]]])
            price = float(to_price(np.array([[value]], np.float32), last, scalers)[0, 0])
            if not (math.isfinite(price) and price > 0):
                continue
            base = None
            if self.baseline is not None:
                tail = series.tail(len(self.baseline.coef) + 1, self.config.ffill_max)
                if tail is not None:
                    base = float(
                        self._baseline_prices(scale(tail[:, None], scalers)[None], last, scalers)[0, 0]
                    )
            out[t] = (series.last_minute or 0, float(last[0, 0]), price, base)
        return out

    def _forecast_portfolio(self, tickers: list[str]) -> dict[str, tuple[int, float, float, float | None]]:
        assert self._model is not None
        if not all(c in self.series for c in self.columns):
            return {}
        need = input_length(self.config.window, self.config.target)
        segments = align(self.series, self.columns, self.config.ffill_max, fill_tail=True)
        if not segments or len(segments[-1][1]) < need:
            return {}
        start, grid = segments[-1]
        end_minute = start + len(grid) - 1
        scalers = [self.scalers[c] for c in self.columns]
        window = scale(grid[-need:], scalers)[None]
        last = grid[-1:]
        prices = to_price(predict(self._model, window), last, scalers)[0]
        bases = self._baseline_prices(window, last, scalers)[0]
        out: dict[str, tuple[int, float, float, float | None]] = {}
        wanted = set(tickers)
        for j, t in enumerate(self.columns):
            series = self.series[t]
            # Only a ticker whose newest bar is the grid's newest minute: otherwise its forecast would be
            # for a minute it has already seen.
            if (
                t in wanted
                and series.last_minute == end_minute
                and math.isfinite(prices[j])
                and prices[j] > 0
            ):
                base = float(bases[j]) if math.isfinite(bases[j]) else None
                out[t] = (end_minute, float(last[0, j]), float(prices[j]), base)
        return out

    def take_refresh(self) -> list[str]:
        with self.lock:
            tickers, self._refresh = sorted(self._refresh), set()
            return tickers

    # --- train -------------------------------------------------------------------------------------
    def train_cycle(self, should_stop: Callable[[], bool] | None = None) -> CycleReport:
        """Cold-start when the model does not exist yet (or portfolio mode has new tickers ready),
        otherwise warm-update on the newest windows of the tickers with fresh bars."""
        started = datetime.now(UTC)
        report = CycleReport()
        if self.config.mode == "portfolio":
            columns = self._portfolio_columns_ready()
            if columns and columns != self.columns:
                report.cold_start = self._cold_start_portfolio(columns, should_stop)
        else:
            ready = self._per_stock_ready()
            if ready and self._model is None:
                report.cold_start = self._cold_start_per_stock(ready, should_stop)
            elif ready:
                report.cold_start = self._join_per_stock(ready)
        if report.cold_start is None and self._model is not None:
            report.updated_tickers, report.loss = self._warm_update()
        report.seconds = (datetime.now(UTC) - started).total_seconds()
        report.model_version = self.model_version
        return report

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
            model, optimizer, train.x, train.y, holdout.x, holdout.y,
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
        with self.lock:
            if serving is not None and old is not None:
                serving.adopt_moved(old, snapshots)
            self._trainee, self._optimizer = trainee, optimizer
            self._model, self._serving = model, serving
            if new_lineage:
                self.lineage, self.updates = uuid.uuid4().hex[:8], 0
            else:
                self.updates += 1
            self.trained_at = datetime.now(UTC)

    def _per_stock_ready(self) -> list[str]:
        """Tickers with enough history that have no scaler yet; before the first cold start, [] until every
        ticker with bars is ready or the bounded wait has passed (so the model is trained on all)."""
        with self.lock:
            ready = [
                t
                for t, s in self.series.items()
                if t not in self.scalers and len(s.minutes) >= self.config.needed
            ]
            if self._model is None and ready and not self._waited(len(ready) == len(self.series)):
                return []
            return ready

    def _waited(self, all_ready: bool) -> bool:
        if self._first_ready is None:
            self._first_ready = self._newest_minute
        if all_ready:
            return True
        waited = self._newest_minute - self._first_ready >= self.config.cold_start_wait
        if waited:
            logger.info("cold start without %d tickers short of history (waited %d minutes)",
                        sum(len(s.minutes) < self.config.needed for s in self.series.values()),
                        self.config.cold_start_wait)  # fmt: skip
        return waited

    def _prepare_per_stock(self, tickers: list[str]) -> dict[str, Any]:
        with self.lock:
            segments = {t: [seg.closes[:, None] for seg in self.series[t].segments(self.config.ffill_max)]
                        for t in tickers}  # fmt: skip
        prepared = {}
        for t, segs in segments.items():
            p = prepare(segs, self.config.window, self.config.target)
            if p is not None:
                prepared[t] = p
        return prepared

    def _cold_start_per_stock(
        self, tickers: list[str], should_stop: Callable[[], bool] | None
    ) -> HoldoutResult | None:
        prepared = self._prepare_per_stock(tickers)
        if not prepared:
            return None
        train = Examples.concat([p.train for p in prepared.values()])
        holdout = Examples.concat([p.holdout for p in prepared.values()])
        model, optimizer = self._new_network(1)
        report = self._fit(model, optimizer, train, holdout, should_stop)
        with self.lock:
            for t, p in prepared.items():
                self.scalers[t] = p.scalers[0]
            self.baseline = LinearAR.fit(train.x, train.y)
        self._install(model, optimizer, new_lineage=True)
        return self._score_holdout(prepared, report)

    def _join_per_stock(self, tickers: list[str]) -> HoldoutResult | None:
        """A ticker that gets enough history after the cold start joins the global model: its scaler is
        fitted on its own first 80%, the model takes one epoch on those windows (its forecasts are not the
        model's before), then its hold-out is scored."""
        prepared = self._prepare_per_stock(tickers)
        if not prepared or self._trainee is None or self._optimizer is None:
            return None
        train = Examples.concat([p.train for p in prepared.values()])
        fit(
            self._trainee, self._optimizer, train.x, train.y, train.x[:0], train.y[:0],
            max_epochs=1, patience=None, batch_size=self.config.batch_size, seed=self.seed,
            epoch_windows=self.config.epoch_windows,
        )  # fmt: skip
        self._install(self._trainee, self._optimizer, new_lineage=False)
        with self.lock:
            for t, p in prepared.items():
                self.scalers[t] = p.scalers[0]
        result = self._score_holdout(prepared, None)
        result.joined = True
        return result

    def _score_holdout(self, prepared: dict[str, Any], report: FitReport | None) -> HoldoutResult:
        # Runs on the training thread, the only one that changes weights: no lock needed to read them, and
        # forecasts (which only read) go on meanwhile.
        model, version = self._model, self.model_version
        assert model is not None and version is not None
        per_ticker: dict[str, Score] = {}
        baseline: dict[str, Score] = {}
        for t, p in prepared.items():
            columns = [t] if self.config.mode == "per_stock" else self.columns
            x, last, actual = p.holdout.x, p.holdout.last, p.holdout.actual
            prices = to_price(predict(model, x), last, p.scalers)
            base_prices = self._baseline_prices(x, last, p.scalers)
            for j, name in enumerate(columns):
                per_ticker[name], baseline[name] = Score(), Score()
                per_ticker[name].add(last[:, j], prices[:, j], actual[:, j])
                baseline[name].add(last[:, j], base_prices[:, j], actual[:, j])
        result = HoldoutResult(
            self.lineage, version, report, per_ticker, pool(per_ticker.values()), pool(baseline.values())
        )
        with self.lock:
            self._refresh |= set(self.columns if self.config.mode == "portfolio" else prepared)
        return result

    def _portfolio_columns_ready(self) -> list[str]:
        """The tickers whose aligned history is long enough, sorted; [] when fewer than the model has."""
        with self.lock:
            names = sorted(t for t, s in self.series.items() if len(s.minutes) >= self.config.needed)
            if not names:
                return []
            segments = align(self.series, names, self.config.ffill_max)
        if sum(len(g) for _, g in segments) < self.config.needed:
            return []
        return names

    def _cold_start_portfolio(
        self, columns: list[str], should_stop: Callable[[], bool] | None
    ) -> HoldoutResult | None:
        with self.lock:
            segments = [g for _, g in align(self.series, columns, self.config.ffill_max)]
        prepared = prepare(segments, self.config.window, self.config.target)
        if prepared is None:
            return None
        model, optimizer = self._new_network(len(columns))
        report = self._fit(model, optimizer, prepared.train, prepared.holdout, should_stop)
        with self.lock:
            self.columns = list(columns)
            self.scalers = dict(zip(columns, prepared.scalers, strict=True))
            self.baseline = LinearAR.fit(prepared.train.x, prepared.train.y)
            self.pending.clear()
        self._install(model, optimizer, new_lineage=True)
        return self._score_holdout({"*": prepared}, report)

    def _warm_update(self) -> tuple[int, float]:
        """A few optimizer steps on the newest windows of the tickers that got bars since the last update."""
        if self.config.update_steps <= 0 or self._trainee is None or self._optimizer is None:
            return 0, math.nan
        need = input_length(self.config.window, self.config.target)
        with self.lock:
            if self.config.mode == "portfolio":
                x, y, fresh = self._newest_portfolio_windows(need)
            else:
                x, y, fresh = self._newest_per_stock_windows(need)
        if not len(x):
            return 0, math.nan
        loss = warm_update(self._trainee, self._optimizer, x, y, self.config.update_steps)
        if not math.isfinite(loss):
            # A diverged step must not reach forecasting; the previous weights stay in service.
            logger.warning("warm update diverged (loss %s); weights not installed", loss)
            return 0, loss
        self._install(self._trainee, self._optimizer, new_lineage=False)
        with self.lock:
            for t, changes in fresh.items():
                self._trained_changes[t] = changes
        return len(fresh), loss

    def _newest_per_stock_windows(self, need: int) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        fresh = [
            t
            for t, s in self.series.items()
            if t in self.scalers and s.changes != self._trained_changes.get(t)
        ]
        if len(fresh) > self.config.batch_size:
            # More fresh tickers than one batch: a random subset, so every ticker gets its turn.
            picked = self._rng.choice(len(fresh), self.config.batch_size, replace=False)
            fresh = [fresh[i] for i in sorted(picked)]
        per_ticker = max(1, min(8, self.config.batch_size // max(len(fresh), 1)))
        xs, ys, done = [], [], {}
        for t in fresh:
            series = self.series[t]
            tail = series.tail(need + per_ticker, self.config.ffill_max)
            if tail is None:
                tail = series.tail(need + 1, self.config.ffill_max)
            if tail is None:
                continue
            values = scale(tail[:, None], [self.scalers[t]])
            window = self.config.window
            for k in range(len(values) - window):
                xs.append(values[k : k + window])
                ys.append(values[k + window])
            done[t] = series.changes
        if not xs:
            return np.empty((0,)), np.empty((0,)), {}
        return np.stack(xs).astype(np.float32), np.stack(ys).astype(np.float32), done

    def _newest_portfolio_windows(self, need: int) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        fresh = {t: self.series[t].changes for t in self.columns if t in self.series}
        if len(fresh) < len(self.columns) or all(self._trained_changes.get(t) == c for t, c in fresh.items()):
            return np.empty((0,)), np.empty((0,)), {}
        segments = align(self.series, self.columns, self.config.ffill_max)
        if not segments or len(segments[-1][1]) < need + 1:
            return np.empty((0,)), np.empty((0,)), {}
        grid = segments[-1][1][-(need + 8) :]
        values = scale(grid, [self.scalers[c] for c in self.columns])
        window = self.config.window
        xs = np.stack([values[k : k + window] for k in range(len(values) - window)])
        ys = values[window:]
        return xs.astype(np.float32), ys.astype(np.float32), fresh

    # --- checkpoints -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any] | None:
        """Everything a restart needs to forecast and keep learning without a cold start (torch objects
        inside: save with ``torch.save``). None before the first cold start."""
        with self.lock:
            if self._trainee is None or self._optimizer is None:
                return None
            return {
                "format": 1,
                "config": {
                    "mode": self.config.mode,
                    "target": self.config.target,
                    "layers": self.config.layers,
                    "units": self.config.units,
                    "window": self.config.window,
                },
                "columns": list(self.columns),
                "model": copy.deepcopy(self._trainee.state_dict()),
                "optimizer": copy.deepcopy(self._optimizer.state_dict()),
                "scalers": {t: scaler_to_state(s) for t, s in self.scalers.items()},
                "lineage": self.lineage,
                "updates": self.updates,
                # A string, not a datetime: torch.load(weights_only=True) accepts only plain types.
                "trained_at": self.trained_at.isoformat() if self.trained_at else None,
                "baseline": self.baseline.state() if self.baseline else None,
                "walk_forward": [
                    {
                        "ticker": t,
                        "lineage": lin,
                        "score": s.state(),
                        "baseline": self.walk_forward.baseline[(t, lin)].state()
                        if (t, lin) in self.walk_forward.baseline
                        else None,
                        "version": self.walk_forward.versions.get((t, lin)),
                    }
                    for (t, lin), s in self.walk_forward.scores.items()
                ],
            }

    def restore(self, state: dict[str, Any]) -> bool:
        """Resume from :meth:`state`; False (and nothing changed) when it was saved for another shape."""
        config = state.get("config", {})
        wanted = {
            "mode": self.config.mode,
            "target": self.config.target,
            "layers": self.config.layers,
            "units": self.config.units,
            "window": self.config.window,
        }
        if state.get("format") != 1 or config != wanted:
            logger.warning("checkpoint made for %s, not %s: ignored (cold start instead)", config, wanted)
            return False
        columns = list(state["columns"])
        model, optimizer = self._new_network(len(columns) if self.config.mode == "portfolio" else 1)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        with self.lock:
            self.columns = columns
            self.scalers = {t: scaler_from_state(s) for t, s in state["scalers"].items()}
            self._trainee, self._optimizer = model, optimizer
            self._model = copy.deepcopy(model).eval()
            if self.config.mode == "per_stock":
                # States are derived: they re-prime from the series as bars come.
                self._serving = PerStockServing(self._model, self.config.window, self.config.ffill_max)
            self.lineage, self.updates = state["lineage"], int(state["updates"])
            self.trained_at = datetime.fromisoformat(state["trained_at"]) if state["trained_at"] else None
            self.baseline = LinearAR.from_state(state["baseline"]) if state.get("baseline") else None
            for item in state.get("walk_forward", []):
                key = (item["ticker"], item["lineage"])
                self.walk_forward.scores[key] = Score.from_state(item["score"])
                if item.get("baseline"):
                    self.walk_forward.baseline[key] = Score.from_state(item["baseline"])
                if item.get("version"):
                    self.walk_forward.versions[key] = item["version"]
        return True
