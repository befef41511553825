"""The per-stock strategy: one global network, tickers in the batch dimension, each with its own scaler.
Forecasts come from carried states (``serving/per_stock.py``); cold start, joins and warm-update windows
here."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from services.trainer.forecaster.records import HoldoutResult
from services.trainer.intervals.calibration import fit_calibration, ticker_offsets
from services.trainer.intervals.interval_rows import close_bounds
from services.trainer.intervals.running_sigma import RunningSigma
from services.trainer.model.ar_baseline import LinearAR
from services.trainer.model.scaling import ReturnScaler
from services.trainer.model.series import Segment, TickerSeries, regularize
from services.trainer.model.training import fit
from services.trainer.model.windows import Examples, Prepared, examples, prepare, scale_rows, to_price_rows
from services.trainer.serving.per_stock import PerStockServing

if TYPE_CHECKING:
    from services.trainer.forecaster.core import Forecaster
    from services.trainer.forecaster.strategy import ModelForecast
    from services.trainer.model.network import ForecastLSTM

logger = logging.getLogger(__name__)


@dataclass
class _PrimedStates:
    """States primed for new weights from a snapshot; ``adopt`` takes over what moved since (lock held)."""

    serving: PerStockServing
    old: PerStockServing | None
    snapshots: dict[str, Any]

    def adopt(self) -> PerStockServing:
        if self.old is not None:
            self.serving.adopt_moved(self.old, self.snapshots)
        return self.serving


class PerStockStrategy:
    def __init__(self, forecaster: Forecaster) -> None:
        self.f = forecaster

    def cold_start(self, retrain: bool, should_stop: Callable[[], bool] | None) -> HoldoutResult | None:
        """The first cold start once tickers are ready, then joins of newly ready tickers, and a fresh cold
        start on every served ticker when a retrain is due."""
        ready = self.ready()
        if ready and self.f.model is None:
            return self._cold_start(ready, should_stop)
        if ready:
            return self._join(ready)
        if retrain:
            return self._cold_start(self._known(), should_stop)
        return None

    def network_width(self, columns: list[str]) -> int:
        return 1

    def holdout_columns(self, key: str) -> list[str]:
        return [key]

    def served_after(self, prepared: dict[str, Any]) -> set[str]:
        return set(prepared)

    def prime(self, model: ForecastLSTM) -> _PrimedStates:
        with self.f.lock:
            old = self.f.serving
            snapshots = old.snapshot(self.f.series) if old is not None else {}
            scalers = dict(self.f.scalers)
            # No states to carry over (the first cold start): every served ticker's series, copied.
            tails = (
                {t: (list(s.minutes), list(s.closes)) for t, s in self.f.series.items() if t in scalers}
                if old is None
                else {}
            )
        if old is None:
            serving = self.serving_for(model)
            serving.prime_all(tails, scalers)
            return _PrimedStates(serving, None, {})
        return _PrimedStates(old.primed(model, snapshots, scalers), old, snapshots)

    def serving_for(self, model: ForecastLSTM) -> PerStockServing:
        return PerStockServing(model, self.f.config.window, self.f.config.ffill_max)

    def forecast(self, tickers: list[str]) -> dict[str, ModelForecast]:
        assert self.f.serving is not None
        items = []
        for t in tickers:
            scaler, series = self.f.scalers.get(t), self.f.series.get(t)
            if scaler is not None and series is not None and series.last_minute is not None:
                items.append((t, series, scaler, self.f.final.get(t, True)))
        scaled = self.f.serving.forecast(items)
        # Prices and the AR baseline for every forecast ticker at once (no numpy call per ticker).
        names = list(scaled)
        scalers = [self.f.scalers[t] for t in names]
        last = np.array([self.f.series[t].closes[-1] for t in names], dtype=np.float64)
        centred = [scaled[t] - self.output_offset(t) for t in names]  # see calibration.py
        prices = to_price_rows(np.array(centred, np.float32), last, scalers)
        bases = self._baseline_rows(names, last, scalers)
        out: dict[str, ModelForecast] = {}
        for i, t in enumerate(names):
            price = float(prices[i])
            if not (math.isfinite(price) and price > 0):
                continue
            out[t] = (self.f.series[t].last_minute or 0, float(last[i]), price, bases.get(t))
        return out

    def _baseline_rows(self, names: list[str], last: np.ndarray, scalers: list[Any]) -> dict[str, float]:
        """The AR baseline's price for each ticker whose current segment covers its lags."""
        if self.f.baseline is None or not names:
            return {}
        length = len(self.f.baseline.coef) + 1
        rows = [(i, tail) for i, t in enumerate(names)
                if (tail := self._tail(self.f.series[t], length)) is not None]  # fmt: skip
        if not rows:
            return {}
        index = [i for i, _ in rows]
        picked = [scalers[i] for i in index]
        values = scale_rows(np.stack([tail for _, tail in rows]), picked)
        base = to_price_rows(self.f.baseline.predict(values[:, :, None])[:, 0], last[index], picked)
        return {names[i]: float(base[k]) for k, i in enumerate(index)}

    def _tail(self, series: TickerSeries, length: int) -> np.ndarray | None:
        """``series.tail``; when the last ``length`` bars are on consecutive minutes (the live case: nothing
        to fill or cut) a view of the series' numpy mirror, without regularizing in Python."""
        minutes = series.minutes
        if len(minutes) >= length and minutes[-1] - minutes[-length] == length - 1:
            return series.arrays()[1][-length:]
        return series.tail(length, self.f.config.ffill_max)

    def output_offset(self, ticker: str) -> float:
        """The ticker's output offset (0 without calibration): forecasts are centred, see calibration.py."""
        return self.f.calibration.offset(ticker) if self.f.calibration is not None else 0.0

    def intervals(self, yhats: dict[str, float]) -> dict[str, tuple[float, float] | None]:
        """The 80% interval (10% and 90% quantiles) of the next close around each model forecast ``yhat``,
        all tickers at once, σ̂ from each ticker's running state (running_sigma.py)."""
        if self.f.calibration is None:
            return {}
        if self.f.running_sigma is None or self.f.running_sigma.calibration is not self.f.calibration:
            # States built under another calibration (before a cold start or a restore) are not its.
            self.f.running_sigma = RunningSigma(self.f.calibration, self.f.config.ffill_max)
        names = [t for t in yhats if isinstance(self.f.scalers.get(t), ReturnScaler) and t in self.f.series]
        if not names:
            return {}
        series = [self.f.series[t] for t in names]
        scales = np.array([self.f.scalers[t].scale for t in names])  # type: ignore[union-attr]
        finals = [self.f.final.get(t, True) for t in names]
        sigma = self.f.running_sigma.sigmas(names, series, scales, finals)
        last = np.array([s.closes[-1] for s in series])
        forecasts = np.array([yhats[t] for t in names], dtype=np.float64)
        return dict(zip(names, close_bounds(self.f.calibration, last, sigma, forecasts), strict=True))

    def ready(self) -> list[str]:
        """Tickers with enough history that have no scaler yet; before the first cold start, [] until every
        ticker with bars is ready or the bounded wait has passed (so the model is trained on all)."""
        with self.f.lock:
            ready = [
                t
                for t, s in self.f.series.items()
                if t not in self.f.scalers and len(s.minutes) >= self.f.config.needed
            ]
            if self.f.model is None and ready and not self._waited(len(ready) == len(self.f.series)):
                return []
            return ready

    def _known(self) -> list[str]:
        """Tickers the model serves that hold enough history for a cold start (a retrain's)."""
        with self.f.lock:
            return [
                t
                for t, s in self.f.series.items()
                if t in self.f.scalers and len(s.minutes) >= self.f.config.needed
            ]

    def _waited(self, all_ready: bool) -> bool:
        if self.f.first_ready is None:
            self.f.first_ready = self.f.newest_minute
        if all_ready:
            return True
        waited = self.f.newest_minute - self.f.first_ready >= self.f.config.cold_start_wait
        if waited:
            logger.info("cold start without %d tickers short of history (waited %d minutes)",
                        sum(len(s.minutes) < self.f.config.needed for s in self.f.series.values()),
                        self.f.config.cold_start_wait)  # fmt: skip
        return waited

    def _prepare(self, tickers: list[str]) -> dict[str, Any]:
        return self._prepare_with_segments(tickers)[0]

    def _prepare_with_segments(
        self, tickers: list[str]
    ) -> tuple[dict[str, Prepared], dict[str, list[Segment]]]:
        # The points are copied under the lock, regularized outside it: at 500 tickers the segments took
        # tens of ms, and a minute being served waited for the lock meanwhile (issue 18).
        with self.f.lock:
            points = {t: (list(self.f.series[t].minutes), list(self.f.series[t].closes)) for t in tickers}
        segments = {t: regularize(m, c, self.f.config.ffill_max) for t, (m, c) in points.items()}
        prepared = {}
        for t, segs in segments.items():
            closes, starts = [seg.closes[:, None] for seg in segs], [seg.start for seg in segs]
            p = prepare(closes, self.f.config.window, self.f.config.target, starts=starts)
            if p is not None:
                prepared[t] = p
        return prepared, segments

    def _cold_start(self, tickers: list[str], should_stop: Callable[[], bool] | None) -> HoldoutResult | None:
        prepared, segments = self._prepare_with_segments(tickers)
        if not prepared:
            return None
        train = Examples.concat([p.train for p in prepared.values()])
        holdout = Examples.concat([p.holdout for p in prepared.values()])
        model, optimizer = self.f.learner.new_network(1)
        report = self.f.learner.fit(model, optimizer, train, holdout, should_stop)
        baseline = LinearAR.fit(train.x, train.y)  # outside the lock: a least-squares fit of every window
        with self.f.lock:
            for t, p in prepared.items():
                self.f.scalers[t] = p.scalers[0]
            self.f.baseline = baseline
        calibration = None
        if self.f.config.target == "return":
            calibration = fit_calibration(
                model, prepared, segments, self.f.config.window, session=self.f.config.session
            )
        with self.f.lock:
            self.f.calibration = calibration
        self.f.learner.install(model, optimizer, new_lineage=True, refresh=self.served_after(prepared))
        return self.f.learner.score_holdout(prepared, report)

    def _join(self, tickers: list[str]) -> HoldoutResult | None:
        """A ticker that gets enough history after the cold start joins the global model: its scaler is
        fitted on its own first 80%, the model takes one epoch on those windows (its forecasts are not the
        model's before), then its hold-out is scored."""
        prepared = self._prepare(tickers)
        if not prepared or self.f.trainee is None or self.f.optimizer is None:
            return None
        train = Examples.concat([p.train for p in prepared.values()])
        fit(
            self.f.trainee, self.f.optimizer, train, Examples.empty(self.f.config.window, 1),
            window=self.f.config.window, max_epochs=1, patience=None, batch_size=self.f.config.batch_size,
            seed=self.f.seed, epoch_windows=self.f.config.epoch_windows,
        )  # fmt: skip
        calibrated = self.f.calibration is not None
        offsets = ticker_offsets(self.f.trainee, prepared, self.f.config.window) if calibrated else {}
        with self.f.lock:
            if self.f.calibration is not None:
                # Its mean output now, in the same terms as the others' (their offset plus the shift).
                shift = self.f.calibration.drift(self.f.trainee)
                self.f.calibration.offsets.update({t: o - shift for t, o in offsets.items()})
        self.f.learner.install(self.f.trainee, self.f.optimizer, new_lineage=False)
        with self.f.lock:
            for t, p in prepared.items():
                self.f.scalers[t] = p.scalers[0]
            self.f.refresh |= self.served_after(prepared)
        result = self.f.learner.score_holdout(prepared, None)
        result.joined = True
        return result

    def newest_windows(self, need: int, count: int) -> tuple[Examples, dict[str, int]]:
        """The newest ``count`` windows of each ticker with fresh bars (at most ``batch_size`` tickers: a
        random subset when more, so every ticker gets its turn), and the change counts they cover."""
        fresh = [
            t
            for t, s in self.f.series.items()
            if t in self.f.scalers and s.changes != self.f.trained_changes.get(t)
        ]
        if len(fresh) > self.f.config.batch_size:
            picked = self.f.rng.choice(len(fresh), self.f.config.batch_size, replace=False)
            fresh = [fresh[i] for i in sorted(picked)]
        parts, done = [], {}
        for t in fresh:
            series = self.f.series[t]
            tail = series.tail(need + count - 1, self.f.config.ffill_max)
            if tail is None:
                tail = series.tail(need, self.f.config.ffill_max)
            if tail is None:
                continue
            parts.append(examples(tail[:, None], self.f.config.window, [self.f.scalers[t]]))
            done[t] = series.changes
        if not parts:
            return Examples.empty(self.f.config.window, 1), {}
        return Examples.concat(parts), done
