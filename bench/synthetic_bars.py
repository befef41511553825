"""Made-up 1-minute bars for the benchmarks and the tests, all built one way (tests may import from here;
benchmarks cannot import from tests)."""

from __future__ import annotations

from datetime import datetime

from shared.schemas import BarV1


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
    """A bar that opens and closes at ``price``, its high and low ``spread`` above and below."""
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
