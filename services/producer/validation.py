"""Which rows may be published: finite positive prices, ``low <= open, close <= high``, volume in [0, 2^63).

Vectorised over a frame of bars (see ``sources.base.COLUMNS``); no I/O. An invalid row is returned with its
reason so the caller can log it and count it; it is never published.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from services.producer.sources.base import PRICES


@dataclass(frozen=True)
class InvalidRow:
    ticker: str
    ts: datetime | None
    reason: str


# Checked in this order; a row gets the first reason that applies.
_REASONS = (
    "missing_value",
    "non_finite_price",
    "non_positive_price",
    "low_above_high",
    "open_outside_range",
    "close_outside_range",
    "non_finite_volume",
    "negative_volume",
    "fractional_volume",
    "volume_out_of_range",
)
# The largest volume a bar may carry (the schema's int64); a float above it cannot be cast.
MAX_VOLUME = float(2**63 - 1024)


def split_valid(bars: pd.DataFrame) -> tuple[pd.DataFrame, list[InvalidRow]]:
    """The rows that may be published (volume as int64) and the others with their reasons."""
    if bars.empty:
        return bars, []
    prices = bars[list(PRICES)].to_numpy(dtype="float64")
    volume = bars["volume"].to_numpy(dtype="float64")
    open_, high, low, close = prices.T
    with np.errstate(invalid="ignore"):
        checks = {
            "missing_value": bars[["ticker", "ts"]].isna().any(axis=1).to_numpy()
            | np.isnan(prices).any(axis=1)
            | np.isnan(volume),
            "non_finite_price": np.isinf(prices).any(axis=1),
            "non_positive_price": (prices <= 0).any(axis=1),
            "low_above_high": low > high,
            "open_outside_range": (open_ < low) | (open_ > high),
            "close_outside_range": (close < low) | (close > high),
            "non_finite_volume": np.isinf(volume),
            "negative_volume": volume < 0,
            "fractional_volume": np.isfinite(volume) & (volume != np.floor(volume)),
            "volume_out_of_range": volume > MAX_VOLUME,
        }
    reason = np.full(len(bars), "", dtype=object)
    for name in reversed(_REASONS):
        reason[checks[name]] = name
    bad = reason != ""
    valid = bars if not bad.any() else bars[~bad]
    valid = valid.assign(volume=valid["volume"].to_numpy(dtype="float64").astype("int64"))
    invalid = [
        InvalidRow(str(t), None if pd.isna(ts) else ts.to_pydatetime(), str(r))
        for t, ts, r in zip(bars["ticker"][bad], bars["ts"][bad], reason[bad], strict=True)
    ]
    return valid, invalid
