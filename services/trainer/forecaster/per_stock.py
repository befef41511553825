"""The per-stock strategy: one global network, tickers in the batch dimension, each with its own scaler.
Forecasts come from carried states (``per_stock.py``); cold start, joins and warm-update windows here."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from services.trainer.forecaster.fields import ForecasterFields
from services.trainer.forecaster.records import HoldoutResult
from services.trainer.intervals.calibration import fit_calibration, ticker_offsets
from services.trainer.intervals.interval_rows import close_bounds
from services.trainer.intervals.running_sigma import RunningSigma
from services.trainer.model.ar_baseline import LinearAR
from services.trainer.model.scaling import ReturnScaler
from services.trainer.model.series import Segment, TickerSeries
from services.trainer.model.training import fit
from services.trainer.model.windows import Examples, Prepared, examples, prepare, scale_rows, to_price_rows

logger = logging.getLogger(__name__)


class PerStockStrategy(ForecasterFields):
    def _forecast_per_stock(self, tickers: list[str]) -> dict[str, tuple[int, float, float, float | None]]:
        assert self._serving is not None
        items = []
        for t in tickers:
            scaler, series = self.scalers.get(t), self.series.get(t)
            if scaler is not None and series is not None and series.last_minute is not None:
                items.append((t, series, scaler, self._final.get(t, True)))
        scaled = self._serving.forecast(items)
        # Prices and the AR baseline for every forecast ticker at once (no numpy call per ticker).
        names = [t for t in scaled]
        scalers = [self.scalers[t] for t in names]
        last = np.array([self.series[t].closes[-1] for t in names], dtype=np.float64)
        centred = [scaled[t] - self._offset(t) for t in names]  # see calibration.py
        prices = to_price_rows(np.array(centred, np.float32), last, scalers)
        bases = self._baseline_rows(names, last, scalers)
        out: dict[str, tuple[int, float, float, float | None]] = {}
        for i, t in enumerate(names):
            price = float(prices[i])
            if not (math.isfinite(price) and price > 0):
                continue
            out[t] = (self.series[t].last_minute or 0, float(last[i]), price, bases.get(t))
        return out

    def _baseline_rows(self, names: list[str], last: np.ndarray, scalers: list[Any]) -> dict[str, float]:
        """The AR baseline's price for each ticker whose current segment covers its lags."""
        if self.baseline is None or not names:
            return {}
        length = len(self.baseline.coef) + 1
        rows = [(i, tail) for i, t in enumerate(names)
                if (tail := self._tail(self.series[t], length)) is not None]  # fmt: skip
        if not rows:
            return {}
        index = [i for i, _ in rows]
        picked = [scalers[i] for i in index]
        values = scale_rows(np.stack([tail for _, tail in rows]), picked)
        base = to_price_rows(self.baseline.predict(values[:, :, None])[:, 0], last[index], picked)
        return {names[i]: float(base[k]) for k, i in enumerate(index)}

    def _tail(self, series: TickerSeries, length: int) -> np.ndarray | None:
        """``series.tail``; when the last ``length`` bars are on consecutive minutes (the live case: nothing
        to fill or cut) a view of the series' numpy mirror, without regularizing in Python."""
        minutes = series.minutes
        if len(minutes) >= length and minutes[-1] - minutes[-length] == length - 1:
            return series.arrays()[1][-length:]
        return series.tail(length, self.config.ffill_max)

    def _offset(self, ticker: str) -> float:
        """The ticker's output offset (0 without calibration): forecasts are centred, see calibration.py."""
        return self.calibration.offset(ticker) if self.calibration is not None else 0.0

    def _intervals(self, yhats: dict[str, float]) -> dict[str, tuple[float, float] | None]:
        """The 80% interval (10% and 90% quantiles) of the next close around each model forecast ``yhat``,
        all tickers at once, σ̂ from each ticker's running state (running_sigma.py)."""
        if self.calibration is None:
            return {}
        if self.running_sigma is None or self.running_sigma.calibration is not self.calibration:
            # States built under another calibration (before a cold start or a restore) are not its.
            self.running_sigma = RunningSigma(self.calibration, self.config.ffill_max)
        names = [t for t in yhats if isinstance(self.scalers.get(t), ReturnScaler) and t in self.series]
        if not names:
            return {}
        series = [self.series[t] for t in names]
        scales = np.array([self.scalers[t].scale for t in names])  # type: ignore[union-attr]
        finals = [self._final.get(t, True) for t in names]
        sigma = self.running_sigma.sigmas(names, series, scales, finals)
        last = np.array([s.closes[-1] for s in series])
        forecasts = np.array([yhats[t] for t in names], dtype=np.float64)
        return dict(zip(names, close_bounds(self.calibration, last, sigma, forecasts), strict=True))

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

    def _per_stock_known(self) -> list[str]:
        """Tickers the model serves that hold enough history for a cold start (a retrain's)."""
        with self.lock:
            return [
                t
                for t, s in self.series.items()
                if t in self.scalers and len(s.minutes) >= self.config.needed
            ]

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
        return self._prepare_with_segments(tickers)[0]

    def _prepare_with_segments(
        self, tickers: list[str]
    ) -> tuple[dict[str, Prepared], dict[str, list[Segment]]]:
        with self.lock:
            segments = {t: self.series[t].segments(self.config.ffill_max) for t in tickers}
        prepared = {}
        for t, segs in segments.items():
            closes, starts = [seg.closes[:, None] for seg in segs], [seg.start for seg in segs]
            p = prepare(closes, self.config.window, self.config.target, starts=starts)
            if p is not None:
                prepared[t] = p
        return prepared, segments

    def _cold_start_per_stock(
        self, tickers: list[str], should_stop: Callable[[], bool] | None
    ) -> HoldoutResult | None:
        prepared, segments = self._prepare_with_segments(tickers)
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
        calibration = None
        if self.config.target == "return":
            calibration = fit_calibration(model, prepared, segments, self.config.window)
        with self.lock:
            self.calibration = calibration
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
            self._trainee, self._optimizer, train, Examples.empty(self.config.window, 1),
            window=self.config.window, max_epochs=1, patience=None, batch_size=self.config.batch_size,
            seed=self.seed, epoch_windows=self.config.epoch_windows,
        )  # fmt: skip
        calibrated = self.calibration is not None
        offsets = ticker_offsets(self._trainee, prepared, self.config.window) if calibrated else {}
        with self.lock:
            if self.calibration is not None:
                # Its mean output now, in the same terms as the others' (their offset plus the shift).
                shift = self.calibration.drift(self._trainee)
                self.calibration.offsets.update({t: o - shift for t, o in offsets.items()})
        self._install(self._trainee, self._optimizer, new_lineage=False)
        with self.lock:
            for t, p in prepared.items():
                self.scalers[t] = p.scalers[0]
        result = self._score_holdout(prepared, None)
        result.joined = True
        return result

    def _newest_per_stock_windows(self, need: int, count: int) -> tuple[Examples, dict[str, int]]:
        """The newest ``count`` windows of each ticker with fresh bars (at most ``batch_size`` tickers: a
        random subset when more, so every ticker gets its turn), and the change counts they cover."""
        fresh = [
            t
            for t, s in self.series.items()
            if t in self.scalers and s.changes != self._trained_changes.get(t)
        ]
        if len(fresh) > self.config.batch_size:
            picked = self._rng.choice(len(fresh), self.config.batch_size, replace=False)
            fresh = [fresh[i] for i in sorted(picked)]
        parts, done = [], {}
        for t in fresh:
            series = self.series[t]
            tail = series.tail(need + count - 1, self.config.ffill_max)
            if tail is None:
                tail = series.tail(need, self.config.ffill_max)
            if tail is None:
                continue
            parts.append(examples(tail[:, None], self.config.window, [self.scalers[t]]))
            done[t] = series.changes
        if not parts:
            return Examples.empty(self.config.window, 1), {}
        return Examples.concat(parts), done
