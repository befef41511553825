"""Per-stock serving: forecasts from carried LSTM states (polling thread), states re-primed for new weights
(training thread). No I/O; the caller holds the forecaster's lock where it says so.

See ``stream.py`` for what a carried state is. Here: which inputs a ticker's newest bar calls for (the
minutes since its stored state, forward-filled by the series' policy), when a state must be rebuilt from
the series instead (no state yet, a cut, a revised final bar, a refresh), and the snapshot / prime /
install split that keeps the lock short when the weights change.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from services.trainer.model.network import ForecastLSTM
from services.trainer.model.scaling import ReturnScaler, Scaler
from services.trainer.model.series import Segment, TickerSeries, regularize
from services.trainer.model.windows import scale
from services.trainer.serving.stream import Carried, CarriedStates, Primer, Request, anchor_of


@dataclass(frozen=True)
class Snapshot:
    """A ticker's raw tail, copied under the lock, to re-prime from outside it."""

    start: int
    minute: int
    close: float
    minutes: list[int]
    closes: list[float]


class PerStockServing:
    def __init__(self, model: ForecastLSTM, window: int, ffill_max: int, rows: int = 64) -> None:
        self.window, self.ffill_max = window, ffill_max
        self.states = CarriedStates(model, window, rows)
        # What adopt_moved catches states up from (set by snapshot / primed).
        self._series: dict[str, TickerSeries] = {}
        self._scalers: dict[str, Scaler] = {}

    # --- polling thread (lock held) ----------------------------------------------------------------
    def forecast(self, items: list[tuple[str, TickerSeries, Scaler, bool]]) -> dict[str, float]:
        """Scaled forecasts of the next minute for ``(ticker, series, scaler, newest bar final)``; a final
        bar's step is stored, a provisional one's is not."""
        nexts: list[_Next] = []
        rest = []
        for item in items:
            step = self._next_minute(*item)
            if step is None:
                rest.append(item)
            else:
                nexts.append(step)
        requests = _next_minute_requests(nexts)
        primers: dict[str, Primer] = {}
        for ticker, series, scaler, final in rest:
            request = self._request(ticker, series, scaler, final)
            if request is None:
                primer, request = self._from_series(ticker, series, scaler, final)
                if primer is None:
                    self.states.states.pop(ticker, None)
                    continue
                primers[ticker] = primer
            if request is not None:
                requests.append(request)
        if primers:
            self.states.prime(primers)
        return self.states.step(requests)

    def _next_minute(self, ticker: str, series: TickerSeries, scaler: Scaler, final: bool) -> _Next | None:
        """The live case, without a numpy call per ticker: a return-scaled ticker whose newest bar is the
        minute after its stored state (nothing to fill). None: the general path (:meth:`_request`)."""
        state = self.states.states.get(ticker)
        minutes, closes = series.minutes, series.closes
        if (
            state is None
            or not isinstance(scaler, ReturnScaler)
            or len(minutes) < 2
            or minutes[-1] != state.minute + 1
            or minutes[-2] != state.minute
            or closes[-2] != state.close
        ):
            return None
        return _Next(ticker, closes[-2], closes[-1], scaler.scale, minutes[-1], final)

    def _request(self, ticker: str, series: TickerSeries, scaler: Scaler, final: bool) -> Request | None:
        state = self.states.states.get(ticker)
        newest = series.last_minute
        if state is None or newest is None:
            return None
        steps = newest - state.minute
        if not 1 <= steps <= self.ffill_max + 1:
            return None  # a cut, a revised final bar, a refresh, or a bar older than the state
        tail = series.tail(steps + 1, self.ffill_max)
        if tail is None or tail[0] != state.close:
            return None
        return Request(ticker, scale(tail[:, None], [scaler]), newest, float(tail[-1]), final)

    def _from_series(
        self, ticker: str, series: TickerSeries, scaler: Scaler, final: bool
    ) -> tuple[Primer | None, Request | None]:
        """Prime through the bar before the newest (from the current segment's start), then step the
        newest: the same state as if every bar had been stepped."""
        return self._from_segments(ticker, series.segments(self.ffill_max), scaler, final)

    def _from_segments(
        self, ticker: str, segments: list[Segment], scaler: Scaler, final: bool
    ) -> tuple[Primer | None, Request | None]:
        if not segments:
            return None, None
        segment = segments[-1]
        closes = segment.closes
        if len(closes) == 1:
            return Primer(segment.start, segment.start, float(closes[0]), np.empty((0, 1), np.float32)), None
        values = scale(closes[:, None], [scaler])
        primer = Primer(segment.start, segment.end - 1, float(closes[-2]), values[:-1])
        return primer, Request(ticker, values[-1:], segment.end, float(closes[-1]), final)

    # --- new weights without states yet (the first cold start): prime all (training thread, no lock) --
    def prime_all(self, series: dict[str, tuple[list[int], list[float]]], scalers: dict[str, Scaler]) -> None:
        """States for every ticker of ``series`` (copies of each one's minutes and closes) through the bar
        before its newest, as its first forecast would prime them (:meth:`_from_series`): built here, the
        first minute after a cold start steps them (and the refresh the newest bars) instead of priming
        every ticker on the polling thread (~0.4 s at 500 tickers, issue 18)."""
        primers = {}
        for ticker, (minutes, closes) in series.items():
            scaler = scalers.get(ticker)
            if scaler is None:
                continue
            primer, _ = self._from_segments(ticker, regularize(minutes, closes, self.ffill_max), scaler, True)
            if primer is not None:
                primers[ticker] = primer
        self.states.prime(primers)

    # --- weights change: snapshot (lock), prime (no lock), install (lock) ----------------------------
    def snapshot(self, series: dict[str, TickerSeries]) -> dict[str, Snapshot]:
        self._series = series  # the live series, read again under the lock by adopt_moved
        out = {}
        for ticker, state in self.states.states.items():
            s = series.get(ticker)
            if s is None or s.last_minute is None:
                continue
            count = state.minute - state.start
            needed = count - anchor_of(count, self.window) + 1 + (s.last_minute - state.minute)
            out[ticker] = Snapshot(
                state.start, state.minute, state.close, s.minutes[-needed:], s.closes[-needed:]
            )
        return out

    def primed(
        self, model: ForecastLSTM, snapshots: dict[str, Snapshot], scalers: dict[str, Scaler]
    ) -> PerStockServing:
        """New serving for ``model``, its states rebuilt from the snapshots (tickers whose tail no longer
        covers the span from their anchor are left out: they re-prime from the series on their next bar)."""
        fresh = PerStockServing(model, self.window, self.ffill_max, rows=max(64, len(self.states.states)))
        primers = {}
        for ticker, snap in snapshots.items():
            scaler = scalers.get(ticker)
            if scaler is None or not snap.minutes:
                continue
            count = snap.minute - snap.start
            first = snap.start + anchor_of(count, self.window)
            segment = regularize(snap.minutes, snap.closes, self.ffill_max)[-1]
            if segment.start > first or segment.end < snap.minute:
                continue
            closes = segment.closes[first - segment.start : snap.minute - segment.start + 1]
            primers[ticker] = Primer(snap.start, snap.minute, snap.close, scale(closes[:, None], [scaler]))
        fresh.states.prime(primers)
        fresh._series, fresh._scalers = self._series, scalers
        return fresh

    def adopt_moved(self, old: PerStockServing, snapshots: dict[str, Snapshot]) -> None:
        """Under the lock at install: a ticker stepped by the polling thread since the snapshot is caught up
        here by the final bars it got since (one batched step for all, usually one minute: re-priming them
        all from the series on their next bar stalled that forecast ~1 s at 500 tickers, issue 12). A ticker
        whose bars since cannot be replayed (a cut, a revised close) re-primes from the series instead."""
        catch_up = []
        for ticker in list(self.states.states):
            before = old.states.states.get(ticker)
            if before is not None and before.minute == snapshots[ticker].minute:
                continue
            request = None if before is None else self._since(ticker, snapshots[ticker], before)
            if request is None:
                del self.states.states[ticker]
            else:
                catch_up.append(request)
        self.states.step(catch_up)

    def _since(self, ticker: str, snap: Snapshot, now: Carried) -> Request | None:
        """The request that steps ``ticker``'s state from the snapshot's bar to ``now``'s (same segment)."""
        series, scaler = self._series.get(ticker), self._scalers.get(ticker)
        if not isinstance(scaler, ReturnScaler) or series is None or now.start != snap.start:
            return None
        i, j = bisect_left(series.minutes, snap.minute), bisect_right(series.minutes, now.minute)
        minutes, closes = series.minutes[i:j], series.closes[i:j]
        if not minutes or (minutes[0], closes[0], minutes[-1], closes[-1]) != (
            snap.minute,
            snap.close,
            now.minute,
            now.close,
        ):
            return None
        segments = regularize(minutes, closes, self.ffill_max)
        if len(segments) != 1:
            return None
        return Request(ticker, scale(segments[0].closes[:, None], [scaler]), now.minute, now.close, True)


class _Next(NamedTuple):
    ticker: str
    previous: float  # the stored state's close
    close: float
    scale: float
    minute: int
    final: bool


def _next_minute_requests(nexts: list[_Next]) -> list[Request]:
    """One request per ticker, its input the scaled log return: the same float64 operations as
    ``windows.scale`` (log, difference, divide, then float32), for all tickers in one go."""
    if not nexts:
        return []
    logs = np.log(np.array([(n.previous, n.close) for n in nexts]))
    scales = np.array([n.scale for n in nexts])
    values = ((logs[:, 1] - logs[:, 0]) / scales).astype(np.float32)[:, None, None]
    return [Request(n.ticker, values[i], n.minute, n.close, n.final) for i, n in enumerate(nexts)]
