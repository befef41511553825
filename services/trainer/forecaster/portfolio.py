"""The portfolio strategy: one multivariate network over every ticker's closes on the aligned minute grid.
It forecasts one window per minute (one sequence for the whole portfolio, so no per-ticker state)."""

from __future__ import annotations

import math
from collections.abc import Callable

from services.trainer.forecaster.fields import ForecasterFields
from services.trainer.forecaster.records import HoldoutResult
from services.trainer.model.ar_baseline import LinearAR
from services.trainer.model.network import predict
from services.trainer.model.series import align
from services.trainer.model.windows import Examples, examples, input_length, prepare, scale, to_price


class PortfolioStrategy(ForecasterFields):
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
            aligned = align(self.series, columns, self.config.ffill_max)
        segments, starts = [g for _, g in aligned], [m for m, _ in aligned]
        prepared = prepare(segments, self.config.window, self.config.target, starts=starts)
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

    def _newest_portfolio_windows(self, need: int, count: int) -> tuple[Examples, dict[str, int]]:
        """The portfolio's newest ``count`` windows once every column has fresh bars."""
        none = Examples.empty(self.config.window, len(self.columns))
        fresh = {t: self.series[t].changes for t in self.columns if t in self.series}
        if len(fresh) < len(self.columns) or all(self._trained_changes.get(t) == c for t, c in fresh.items()):
            return none, {}
        segments = align(self.series, self.columns, self.config.ffill_max)
        if not segments or len(segments[-1][1]) < need:
            return none, {}
        grid = segments[-1][1][-(need + count - 1) :]
        return examples(grid, self.config.window, [self.scalers[c] for c in self.columns]), fresh
