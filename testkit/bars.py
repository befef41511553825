"""The one way tests and benchmarks build market messages: made-up 1-minute bars (as models, as wire
dicts) and predictions. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.schemas import BarV1, PredictionV1

T0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
"""The first minute of the made-up bars: a Monday's open (14:30 UTC)."""


def synthetic_bar(
    ticker: str,
    ts: datetime,
    price: float,
    *,
    rev: int = 0,
    final: bool = False,
    volume: int = 1_000,
    spread: float = 1.0,
    source: str = "synthetic",
) -> BarV1:
    """A bar that opens and closes at ``price``, its high and low ``spread`` above and below (0: a flat
    bar, open = high = low = close)."""
    return BarV1(
        ticker=ticker,
        ts=ts,
        open=price,
        high=price + spread,
        low=price - spread,
        close=price,
        volume=volume,
        source=source,
        rev=rev,
        final=final,
    )


def bar(ticker: str, minute: int, rev: int = 0, close: float | None = None) -> BarV1:
    """``ticker``'s bar of minute ``minute`` after ``T0``; its price tells the minute and the ``rev``
    (final from rev 2)."""
    price = close if close is not None else 100.0 + minute + rev / 100
    return synthetic_bar(
        ticker, T0 + timedelta(minutes=minute), price, rev=rev, final=rev >= 2, volume=1_000 + minute
    )


def bar_message(**overrides: object) -> dict[str, object]:
    """A valid bar in its documented wire shape (an AAPL bar in progress), ``overrides`` applied."""
    values: dict[str, object] = {
        "v": 1,
        "ticker": "AAPL",
        "ts": "2026-11-25T14:31:00Z",
        "open": 100.0,
        "high": 101.0,
        "low": 99.5,
        "close": 100.5,
        "volume": 1200,
        "source": "synthetic",
        "rev": 0,
        "final": False,
    }
    return values | overrides


def prediction_message(**overrides: object) -> dict[str, object]:
    """A valid prediction in its documented wire shape (AAPL's next minute), ``overrides`` applied."""
    values: dict[str, object] = {
        "v": 1,
        "ticker": "AAPL",
        "ts": "2026-11-25T14:32:00Z",
        "yhat": 100.7,
        "horizon_min": 1,
        "based_on_ts": "2026-11-25T14:31:00Z",
        "model_version": "per_stock-return-3f2a-17",
        "trained_at": "2026-11-25T14:31:05Z",
        "target": "return",
    }
    return values | overrides


def prediction(
    ticker: str = "AAPL",
    minute: int = 1,
    yhat: float = 100.0,
    model_version: str = "m",
    trained_at: datetime = T0,
) -> PredictionV1:
    """A one-minute-ahead forecast of ``ticker``'s minute ``minute`` after ``T0``, based on the minute
    before it."""
    return PredictionV1(
        ticker=ticker,
        ts=T0 + timedelta(minutes=minute),
        yhat=yhat,
        horizon_min=1,
        based_on_ts=T0 + timedelta(minutes=minute - 1),
        model_version=model_version,
        trained_at=trained_at,
        target="return",
    )


def bar_at(ticker: str, minute: int, *, final: bool = True, rev: int = 0) -> BarV1:
    """``ticker``'s bar of minute ``minute`` after ``T0``, closing at 100 + minute / 10."""
    return synthetic_bar(ticker, T0 + timedelta(minutes=minute), 100.0 + minute / 10, final=final, rev=rev)


def forecast(ticker: str, based_on: int, horizon: int, yhat: float = 101.0) -> PredictionV1:
    """A ``horizon``-minute forecast made at minute ``based_on`` after ``T0``, with an 80% range of +-1."""
    based_on_ts = T0 + timedelta(minutes=based_on)
    return PredictionV1(
        ticker=ticker,
        ts=based_on_ts + timedelta(minutes=horizon),
        yhat=yhat,
        horizon_min=horizon,
        based_on_ts=based_on_ts,
        model_version="per_stock-return-ab12cd34.0",
        trained_at=T0,
        target="return",
        q10=yhat - 1,
        q90=yhat + 1,
    )
