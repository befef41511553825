"""The newest ``PORTFOLIO_HISTORY_MINUTES`` of bars and forecasts per ticker, in memory; no I/O.

The Kafka feed writes (one thread), the API reads (the web server's loop): every method takes the lock
and holds it for one ticker's slice at most. A forecast's identity is (ticker, ts, horizon_min): each
horizon is its own series, so a 15-minute forecast never replaces the 1-minute one of the same minute.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.dashboard.series import MinuteSeries, nan_to_none
from shared.schemas import BarV1, PredictionV1
from shared.settings import PORTFOLIO_SERIES

BAR_COLUMNS = {"open": "d", "high": "d", "low": "d", "close": "d", "volume": "q", "rev": "q", "final": "b"}
# q10/q90 are NaN where a forecast has no range; model is an index into the interned model versions.
PREDICTION_COLUMNS = {"yhat": "d", "q10": "d", "q90": "d", "model": "l"}
NAN = math.nan


def to_minute(ts: datetime) -> int:
    return int(ts.timestamp()) // 60


def from_minute(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, tz=UTC)


@dataclass
class _Ticker:
    bars: MinuteSeries = field(default_factory=lambda: MinuteSeries(BAR_COLUMNS))
    predictions: dict[int, MinuteSeries] = field(default_factory=dict)
    # The oldest minute from which everything stored is held here (None: everything is).
    complete_from: int | None = None


class Window:
    """Bars and forecasts per ticker, the newest ``history`` minutes of each (bars counted per ticker)."""

    def __init__(self, history: int) -> None:
        self.history = history
        # Trim in chunks of a tenth: each trim moves every column of the ticker.
        self._slack = max(10, history // 10)
        self._lock = threading.Lock()
        self._tickers: dict[str, _Ticker] = {}
        self._models: list[str] = []
        self._model_index: dict[str, int] = {}
        self._loaded_from: int | None = None

    def loaded_from(self, ts: datetime | None) -> None:
        """The database was read from ``ts`` on at start: older spans are the database's to answer."""
        with self._lock:
            self._loaded_from = None if ts is None else to_minute(ts)
            for held in self._tickers.values():
                held.complete_from = _later(held.complete_from, self._loaded_from)

    def _ticker(self, ticker: str) -> _Ticker:
        held = self._tickers.get(ticker)
        if held is None:
            held = self._tickers[ticker] = _Ticker(complete_from=self._loaded_from)
        return held

    def add_bar(self, bar: BarV1) -> bool:
        """Hold ``bar`` unless an equal or newer revision of its minute is held; True when held."""
        minute = to_minute(bar.ts)
        with self._lock:
            held = self._ticker(bar.ticker)
            before = held.bars.get(minute)
            if before is not None and int(before[5]) > bar.rev:
                return False
            values = (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.rev, int(bar.final))
            held.bars.put(minute, values)
            if held.bars.keep_last(self.history, self._slack):
                held.complete_from = _later(held.complete_from, held.bars.first())
                self._trim_predictions(held)
            return True

    def add_prediction(self, prediction: PredictionV1) -> None:
        with self._lock:
            held = self._ticker(prediction.ticker)
            series = held.predictions.get(prediction.horizon_min)
            if series is None:
                series = held.predictions[prediction.horizon_min] = MinuteSeries(PREDICTION_COLUMNS)
            q10 = NAN if prediction.q10 is None else prediction.q10
            q90 = NAN if prediction.q90 is None else prediction.q90
            model = self._intern(prediction.model_version)
            series.put(to_minute(prediction.ts), (prediction.yhat, q10, q90, model))
            series.keep_last(self.history, self._slack)

    def _intern(self, model_version: str) -> int:
        index = self._model_index.get(model_version)
        if index is None:
            index = self._model_index[model_version] = len(self._models)
            self._models.append(model_version)
        return index

    def _trim_predictions(self, held: _Ticker) -> None:
        oldest = held.bars.first()
        for series in held.predictions.values():
            first = series.first()
            if oldest is not None and first is not None and first < oldest:
                series.keep_last(series.count_from(oldest))

    # --- Reads ------------------------------------------------------------------------------------------
    def tickers(self) -> list[tuple[str, datetime | None]]:
        """Every ticker held and its newest bar; the portfolio's series (forecasts only) is no ticker."""
        with self._lock:
            newest = {t: held.bars.last() for t, held in self._tickers.items() if t != PORTFOLIO_SERIES}
        return [(t, None if m is None else from_minute(m)) for t, m in sorted(newest.items())]

    def newest_of_all(self) -> datetime | None:
        """The newest bar of any ticker: where "the last N minutes" of the portfolio end."""
        with self._lock:
            newest = max(
                (m for held in self._tickers.values() if (m := held.bars.last()) is not None), default=None
            )
        return None if newest is None else from_minute(newest)

    def knows(self, ticker: str) -> bool:
        with self._lock:
            return ticker in self._tickers

    def newest(self, ticker: str) -> datetime | None:
        with self._lock:
            held = self._tickers.get(ticker)
            minute = None if held is None else held.bars.last()
        return None if minute is None else from_minute(minute)

    def holds_since(self, ticker: str, since: datetime) -> bool:
        """Whether everything stored of ``ticker`` from ``since`` on is held here."""
        with self._lock:
            held = self._tickers.get(ticker)
            start = self._loaded_from if held is None else held.complete_from
        return start is None or to_minute(since) >= start

    def bars(
        self, ticker: str, since: datetime, until: datetime, last: int | None = None
    ) -> list[dict[str, Any]]:
        """Bars of ``[since, until]``, oldest first; the newest ``last`` of them."""
        with self._lock:
            held = self._tickers.get(ticker)
            rows = [] if held is None else list(held.bars.rows(to_minute(since), to_minute(until), last))
        return [
            {"ts": from_minute(m), "open": o, "high": h, "low": lo, "close": c, "volume": v, "final": bool(f)}
            for m, (o, h, lo, c, v, _, f) in rows
        ]

    def predictions(
        self, ticker: str, since: datetime, until: datetime, horizon: int | None = None
    ) -> list[dict[str, Any]]:
        """Forecasts whose predicted minute lies in ``[since, until]``, by minute then horizon."""
        with self._lock:
            held = self._tickers.get(ticker)
            found: list[tuple[int, int, tuple[float | int, ...]]] = []
            if held is not None:
                for h, series in held.predictions.items():
                    if horizon is None or h == horizon:
                        found += [(m, h, row) for m, row in series.rows(to_minute(since), to_minute(until))]
            models = list(self._models)
        found.sort(key=lambda item: (item[0], item[1]))
        return [
            {
                "ts": from_minute(m),
                "based_on_ts": from_minute(m - h),
                "horizon_min": h,
                "yhat": row[0],
                "q10": nan_to_none(float(row[1])),
                "q90": nan_to_none(float(row[2])),
                "model_version": models[int(row[3])],
            }
            for m, h, row in found
        ]

    def portfolio(self, since: datetime, until: datetime, last: int | None = None) -> list[dict[str, Any]]:
        """One row per minute with a bar of any ticker: ``{"ts", "close": {ticker: close}}``, oldest first;
        the newest ``last`` of those minutes."""
        lo, hi = to_minute(since), to_minute(until)
        merged: dict[int, dict[str, float]] = {}
        with self._lock:
            if last is not None:
                # The newest ``last`` minutes of the union lie within each ticker's newest ``last``.
                minutes: set[int] = set()
                for held in self._tickers.values():
                    minutes.update(m for m, _ in held.bars.rows(lo, hi, last))
                lo = max(lo, sorted(minutes)[-last] if len(minutes) >= last else lo)
            for ticker, held in self._tickers.items():
                for minute, row in held.bars.rows(lo, hi):
                    merged.setdefault(minute, {})[ticker] = float(row[3])
        return [{"ts": from_minute(m), "close": dict(sorted(merged[m].items()))} for m in sorted(merged)]

    def counts(self) -> dict[str, int]:
        with self._lock:
            bars = sum(len(held.bars) for held in self._tickers.values())
            predictions = sum(len(s) for held in self._tickers.values() for s in held.predictions.values())
            nbytes = sum(
                held.bars.nbytes() + sum(s.nbytes() for s in held.predictions.values())
                for held in self._tickers.values()
            )
            return {"tickers": len(self._tickers), "bars": bars, "predictions": predictions, "bytes": nbytes}


def _later(a: int | None, b: int | None) -> int | None:
    if a is None or b is None:
        return a if b is None else b
    return max(a, b)
