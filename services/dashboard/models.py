"""The read API's contract: one pydantic model per response, times as RFC 3339 in UTC with ``Z``.

Every answer is built through these models, so a field the page or another program relies on cannot
disappear or change type without a test noticing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer

from shared.schemas import format_ts

Ts = Annotated[datetime, PlainSerializer(format_ts, return_type=str)]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TickerOut(_Out):
    ticker: str
    newest_ts: Ts | None


class BarOut(_Out):
    ts: Ts
    open: float
    high: float
    low: float
    close: float
    volume: int
    final: bool


class BarsOut(_Out):
    ticker: str
    bars: list[BarOut]


class PredictionOut(_Out):
    ts: Ts
    based_on_ts: Ts
    horizon_min: int
    yhat: float
    q10: float | None
    q90: float | None
    model_version: str


class PredictionsOut(_Out):
    ticker: str
    predictions: list[PredictionOut]


class PortfolioRowOut(_Out):
    ts: Ts
    close: dict[str, float]


class PortfolioOut(_Out):
    rows: list[PortfolioRowOut]


class ServiceHealthOut(_Out):
    # None: the service does not answer (not started, or its port was chosen at start).
    ready: bool | None
    lag: int | None
    url: str | None


class DashboardHealthOut(_Out):
    ready: bool
    lag: int | None
    tickers: int
    bars: int
    predictions: int
    clients: int
    newest_ts: Ts | None


class HealthOut(_Out):
    services: dict[str, ServiceHealthOut]
    dashboard: DashboardHealthOut


class ScoreColumnOut(_Out):
    key: str
    title: str


class ScoresOut(_Out):
    columns: list[ScoreColumnOut]
    rows: list[dict[str, Any]]
    # Each row as `portfolio evaluate` prints it, cell by cell: the page shows these, so the numbers match.
    text: list[list[str]]
    note: str


class ErrorOut(_Out):
    error: str
    detail: str
