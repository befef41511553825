"""Walk-forward backtest of a recording, offline: the trainer's own code, no Kafka, no database. No I/O
beyond reading the bars file.

The recording's first part (``cold_fraction`` of its minutes) is ingested as history, then the cold start
trains on it, exactly as a trainer started on that history would. Every later bar goes through
:meth:`Forecaster.step` (the live loop's own call) in arrival order, and after each minute of bars one
training cycle runs (a warm update on the tickers with fresh bars), as the live worker does once a minute
of new bars has arrived. Every forecast is kept, model and naive stand-in alike, with the AR baseline's.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from services.trainer.forecaster.core import Forecaster
from services.trainer.forecaster.records import BarIn, Config, Forecast
from services.trainer.model.series import from_minute

logger = logging.getLogger(__name__)

BAR_COLUMNS = ["ticker", "ts", "open", "high", "low", "close", "volume"]
PREDICTION_COLUMNS = [
    "ticker", "ts", "based_on_ts", "yhat", "model_version", "ar_yhat", "q10", "q90", "horizon_min",
]  # fmt: skip


def load_bars(path: Path, tickers: list[str] | None = None) -> pd.DataFrame:
    """A recording in the replay source's long format (csv, csv.gz or parquet), sorted by time then ticker;
    ``final`` defaults to true (a recording holds closed minutes)."""
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    missing = [c for c in ("ticker", "ts", "close") if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {', '.join(missing)}")
    frame["ticker"] = frame["ticker"].astype(str).str.upper()
    if tickers:
        frame = frame[frame["ticker"].isin(tickers)]
    return normalized(frame)


def normalized(frame: pd.DataFrame) -> pd.DataFrame:
    """UTC times, ``final`` (default true) and ``rev`` (default 0), ordered by time then ticker."""
    frame = frame.assign(ts=pd.to_datetime(frame["ts"], utc=True))
    if "final" not in frame.columns:
        frame["final"] = True
    if "rev" not in frame.columns:
        frame["rev"] = 0
    return frame.sort_values(["ts", "ticker"], kind="stable").reset_index(drop=True)


def bars_in(frame: pd.DataFrame) -> list[BarIn]:
    ts = pd.to_datetime(frame["ts"], utc=True)
    minutes = ((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(minutes=1)).to_numpy()
    columns = {c: frame[c].to_numpy() if c in frame.columns else np.full(len(frame), np.nan)
               for c in ("open", "high", "low", "volume")}  # fmt: skip
    return [
        BarIn(str(t), int(m), float(c), int(r), bool(f), float(o), float(h), float(lo), int(v or 0))
        for t, m, c, r, f, o, h, lo, v in zip(
            frame["ticker"],
            minutes,
            frame["close"],
            frame["rev"],
            frame["final"],
            columns["open"],
            columns["high"],
            columns["low"],
            np.nan_to_num(columns["volume"]),
            strict=True,
        )
    ]


@dataclass
class BacktestResult:
    predictions: pd.DataFrame
    closes: pd.DataFrame
    cold_seconds: float
    walk_seconds: float
    cold_start_bars: int
    # The first minute after the cold start's history (the range baselines are fitted before it).
    boundary: int
    # The trainer's state right after the cold start: a live trainer resumed from it, fed the same bars,
    # must forecast the same (tests/integration/test_trainer_service.py).
    checkpoint: dict[str, Any] | None


def predictions_frame(forecasts: list[Forecast]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "ticker": [f.ticker for f in forecasts],
            "ts": [from_minute(f.minute) for f in forecasts],
            "based_on_ts": [from_minute(f.based_on) for f in forecasts],
            "yhat": [f.yhat for f in forecasts],
            "model_version": [f.model_version for f in forecasts],
            "ar_yhat": [f.baseline for f in forecasts],
            "q10": [f.q10 for f in forecasts],
            "q90": [f.q90 for f in forecasts],
            "horizon_min": [f.minute - f.based_on for f in forecasts],
        },
        columns=PREDICTION_COLUMNS,
    )
    # A later forecast of the same minute and horizon replaces the earlier one, as the sink's upsert does.
    return frame.drop_duplicates(["ticker", "ts", "horizon_min"], keep="last").reset_index(drop=True)


def run_backtest(
    frame: pd.DataFrame, config: Config, cold_fraction: float = 0.25, seed: int = 0
) -> BacktestResult:
    frame = normalized(frame)
    bars = bars_in(frame)
    minutes = sorted({b.minute for b in bars})
    if len(minutes) < 2:
        raise ValueError("a backtest needs at least two minutes of bars")
    boundary = minutes[int(len(minutes) * cold_fraction)]
    forecaster = Forecaster(config, seed=seed)
    started = time.perf_counter()
    history = [b for b in bars if b.minute < boundary]
    for bar in history:
        forecaster.ingest(bar.ticker, bar.minute, bar.close, bar.rev, bar.final, bar.high, bar.low)
    report = forecaster.train_cycle()
    checkpoint = forecaster.state()
    cold_seconds = time.perf_counter() - started
    if report.cold_start is None:
        logger.warning(
            "no cold start on the first %d bars (too little history): naive until one", len(history)
        )
    started = time.perf_counter()
    forecasts: list[Forecast] = []
    rest = bars[len(history) :]
    i = 0
    while i < len(rest):
        j = i
        while j < len(rest) and rest[j].minute == rest[i].minute:
            j += 1
        forecasts.extend(forecaster.step(rest[i:j]))
        forecaster.train_cycle()
        i = j
    closes = frame[["ticker", "ts", "close", "final"]]
    return BacktestResult(
        predictions_frame(forecasts),
        closes,
        cold_seconds,
        time.perf_counter() - started,
        len(history),
        boundary,
        checkpoint,
    )


def write_predictions(predictions: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = predictions.copy()
    for column in ("ts", "based_on_ts"):
        out[column] = out[column].map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"))
    if path.suffix == ".parquet":
        out.to_parquet(path, index=False)
    else:
        out.to_csv(path, index=False)
