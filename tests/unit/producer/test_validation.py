from __future__ import annotations

import math
from datetime import UTC, datetime

import pandas as pd
import pytest

from services.producer.validation import split_valid

T0 = datetime(2026, 11, 25, 14, 31, tzinfo=UTC)


def frame(open_: float, high: float, low: float, close: float, volume: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticker": ["AAPL"],
            "ts": pd.to_datetime([T0], utc=True),
            "open": [open_],
            "high": [high],
            "low": [low],
            "close": [close],
            "volume": [volume],
        }
    )


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ((math.nan, 11, 9, 10, 100), "missing_value"),
        ((10, 11, 9, 10, math.nan), "missing_value"),
        ((10, math.inf, 9, 10, 100), "non_finite_price"),
        ((10, 11, 0, 10, 100), "non_positive_price"),
        ((-1, 11, -2, 10, 100), "non_positive_price"),
        ((10, 9, 11, 10, 100), "low_above_high"),
        ((12, 11, 9, 10, 100), "open_outside_range"),
        ((10, 11, 9, 8, 100), "close_outside_range"),
        ((10, 11, 9, 10, -1), "negative_volume"),
        ((10, 11, 9, 10, 1.5), "fractional_volume"),
        ((10, 11, 9, 10, math.inf), "non_finite_volume"),
    ],
)
def test_an_invalid_row_is_skipped_with_its_reason(row: tuple[float, ...], reason: str) -> None:
    valid, invalid = split_valid(frame(*row))
    assert valid.empty
    assert [(r.ticker, r.ts, r.reason) for r in invalid] == [("AAPL", T0, reason)]


def test_a_valid_row_passes_with_an_integer_volume() -> None:
    valid, invalid = split_valid(frame(10, 11, 9, 10, 0.0))
    assert invalid == []
    assert len(valid) == 1
    assert valid["volume"].dtype == "int64"


def test_flat_bar_with_zero_volume_is_valid() -> None:
    # Yahoo does send zero-volume minutes (yfinance #2686); they are bars all the same.
    valid, invalid = split_valid(frame(10, 10, 10, 10, 0))
    assert (len(valid), invalid) == (1, [])
