"""The portfolio strategy: one multivariate network over every ticker's closes on the aligned minute grid.
It forecasts one window per minute (one sequence for the whole portfolio, so no per-ticker state)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from services.trainer.forecaster.records import HoldoutResult
from services.trainer.model.ar_baseline import LinearAR
from services.trainer.model.network import predict
from services.trainer.model.series import align
from services.trainer.model.windows import Examples, examples, input_length, prepare, scale, to_price

if TYPE_CHECKING:
    from services.trainer.forecaster.core import Forecaster
    from services.trainer.forecaster.strategy import ModelForecast
    from services.trainer.model.network import ForecastLSTM


class PortfolioStrategy:
    def __init__(self, forecaster: Forecaster) -> None:
        self.f = forecaster

    def cold_start(self, retrain: bool, should_stop: Callable[[], bool] | None) -> HoldoutResult | None:
        """A cold start whenever the ready columns change, or a retrain is due."""
        columns = self._columns_ready()
        if columns and (columns != self.f.columns or retrain):
            return self._cold_start(columns, should_stop)
        return None

    def intervals(self, yhats: dict[str, float]) -> dict[str, tuple[float, float] | None]:
        return {}  # the portfolio network is not calibrated: its forecasts carry no interval

    def network_width(self, columns: list[str]) -> int:
        return len(columns)

    def holdout_columns(self, key: str) -> list[str]:
        return self.f.columns

    def output_offset(self, ticker: str) -> float:
        return 0.0

    def served_after(self, prepared: dict[str, Any]) -> set[str]:
        return set(self.f.columns)

    def prime(self, model: ForecastLSTM) -> None:
        return None  # one sequence for the whole portfolio: no carried state per ticker

    def serving_for(self, model: ForecastLSTM) -> None:
        return None

    def forecast(self, tickers: list[str]) -> dict[str, ModelForecast]:
        assert self.f.model is not None
        if not all(c in self.f.series for c in self.f.columns):
            return {}
        need = input_length(self.f.config.window, self.f.config.target)
        segments = align(self.f.series, self.f.columns, self.f.config.ffill_max, fill_tail=True)
        if not segments or len(segments[-1][1]) < need:
            return {}
        start, grid = segments[-1]
        end_minute = start + len(grid) - 1
        scalers = [self.f.scalers[c] for c in self.f.columns]
        window = scale(grid[-need:], scalers)[None]
        last = grid[-1:]
        prices = to_price(predict(self.f.model, window), last, scalers)[0]
        bases = self.f.baseline_prices(window, last, scalers)[0]
        out: dict[str, ModelForecast] = {}
        wanted = set(tickers)
        for j, t in enumerate(self.f.columns):
            series = self.f.series[t]
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

    def _columns_ready(self) -> list[str]:
        """The tickers whose aligned history is long enough, sorted; [] when fewer than the model has."""
        with self.f.lock:
            names = sorted(t for t, s in self.f.series.items() if len(s.minutes) >= self.f.config.needed)
            if not names:
                return []
            segments = align(self.f.series, names, self.f.config.ffill_max)
        if sum(len(g) for _, g in segments) < self.f.config.needed:
            return []
        return names

    def _cold_start(self, columns: list[str], should_stop: Callable[[], bool] | None) -> HoldoutResult | None:
        with self.f.lock:
            aligned = align(self.f.series, columns, self.f.config.ffill_max)
        segments, starts = [g for _, g in aligned], [m for m, _ in aligned]
        prepared = prepare(segments, self.f.config.window, self.f.config.target, starts=starts)
        if prepared is None:
            return None
        model, optimizer = self.f.learner.new_network(len(columns))
        report = self.f.learner.fit(model, optimizer, prepared.train, prepared.holdout, should_stop)
        with self.f.lock:
            self.f.columns = list(columns)
            self.f.scalers = dict(zip(columns, prepared.scalers, strict=True))
            self.f.baseline = LinearAR.fit(prepared.train.x, prepared.train.y)
            self.f.pending.clear()
        self.f.learner.install(model, optimizer, new_lineage=True, refresh=self.served_after({"*": prepared}))
        return self.f.learner.score_holdout({"*": prepared}, report)

    def newest_windows(self, need: int, count: int) -> tuple[Examples, dict[str, int]]:
        """The portfolio's newest ``count`` windows once every column has fresh bars."""
        none = Examples.empty(self.f.config.window, len(self.f.columns))
        fresh = {t: self.f.series[t].changes for t in self.f.columns if t in self.f.series}
        if len(fresh) < len(self.f.columns) or all(
            self.f.trained_changes.get(t) == c for t, c in fresh.items()
        ):
            return none, {}
        segments = align(self.f.series, self.f.columns, self.f.config.ffill_max)
        if not segments or len(segments[-1][1]) < need:
            return none, {}
        grid = segments[-1][1][-(need + count - 1) :]
        return examples(grid, self.f.config.window, [self.f.scalers[c] for c in self.f.columns]), fresh
