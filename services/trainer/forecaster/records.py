"""What the trainer's pieces pass around: its configuration, a forecast, a bar in, cycle reports. No I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Literal, NamedTuple

from services.scoring.score import Score
from services.trainer.model.training import FitReport
from services.trainer.model.windows import Target, input_length
from shared.session import XNYS, SessionClock, clock_named
from shared.settings import Settings

Mode = Literal["per_stock", "portfolio"]
NAIVE_VERSION = "naive-warmup"


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
    update_steps: int = 0
    # Data minutes between warm updates: each one trains on the windows that closed since the last, so a
    # window is learned from ``update_steps`` times (not once a minute for as long as it stays newest), and
    # the states' re-priming after new weights is paid once per update, not once per minute.
    update_every: int = 10
    # Data minutes between fresh cold starts on the history held (0: never; the first one always runs).
    retrain_every: int = 0
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
    # Minutes ahead forecast for each bar (the next minute's always: it is the one scored walk-forward).
    horizons: tuple[int, ...] = (1, 5, 15, 30)
    # The trading session the ranges follow (PORTFOLIO_SESSION): no range targets a minute past its close.
    session: SessionClock = XNYS

    @classmethod
    def from_settings(cls, settings: Settings) -> Config:
        """The model's part of the trainer's settings (same names) and the session; the others keep their
        defaults."""
        trainer = settings.trainer
        values = trainer.model_dump(include={f.name for f in fields(cls)} - {"session"})
        horizons = tuple(sorted({1, *trainer.horizons}))
        return cls(**{**values, "horizons": horizons, "session": clock_named(settings.session())})

    @property
    def needed(self) -> int:
        # Enough for a useful 8:2 split: the hold-out holds at least a window's worth of forecasts.
        return self.min_history or 5 * input_length(self.window, self.target)


# Forecast and BarIn are NamedTuples: the trainer makes 2,000 of each a minute, and a frozen dataclass takes
# ~2 us to build against ~0.6 us (issue 12).
class Forecast(NamedTuple):
    ticker: str
    based_on: int  # minute of the last bar used
    minute: int  # the minute forecast (based_on + its horizon)
    yhat: float
    last_close: float
    model_version: str
    trained_at: datetime
    # The linear AR baseline's forecast of the same minute (None for a naive stand-in).
    baseline: float | None = None
    # The 80% interval of the close (10% and 90% quantiles); None for a stand-in or without calibration.
    q10: float | None = None
    q90: float | None = None


class BarIn(NamedTuple):
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
