"""The series a checkpoint carries: each ticker's closes as held (minutes, closes, revs, whether the newest
bar is final, the Parkinson variances the range model reads) and the data minute they reach, so a restart
reads only the bars stored after that minute instead of the whole history. No I/O.

Stored as tensors of plain numbers: ``torch.load(weights_only=True)`` accepts nothing else, and one tensor
per field stays compact at 2,000 tickers x ``PORTFOLIO_HISTORY_MINUTES``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from services.trainer.model.series import TickerSeries

if TYPE_CHECKING:
    from services.trainer.forecaster.core import Forecaster

Copied = tuple[np.ndarray, np.ndarray, list[int], bool, dict[int, float]]


def copy_series(forecaster: Forecaster) -> tuple[dict[str, Copied], int]:
    """Copies of the held series and the newest data minute (lock held: array copies only, the tensors are
    made by :func:`series_state` outside the lock)."""
    copies: dict[str, Copied] = {}
    for t, s in forecaster.series.items():
        if not s.minutes:
            continue
        minutes, closes = s.arrays()
        final = forecaster.final.get(t, True)
        # Variances of minutes the series no longer holds are never read again: not worth the bytes.
        first = s.minutes[0]
        variances = {m: v for m, v in forecaster.variances.get(t, {}).items() if m >= first}
        copies[t] = minutes.copy(), closes.copy(), list(s.revs), final, variances
    return copies, forecaster.newest_minute


def series_state(copies: dict[str, Copied], reached: int) -> dict[str, Any]:
    return {
        "reached": reached,
        "tickers": {
            t: {
                "minutes": torch.from_numpy(minutes),
                "closes": torch.from_numpy(closes),
                "revs": torch.tensor(revs, dtype=torch.int64),
                "final": final,
                "variance_minutes": torch.tensor(list(variances), dtype=torch.int64),
                "variances": torch.tensor(list(variances.values()), dtype=torch.float64),
            }
            for t, (minutes, closes, revs, final, variances) in copies.items()
        },
    }


def restore_series(forecaster: Forecaster, saved: dict[str, Any]) -> int:
    """Install the saved series (lock held); the data minute they reach."""
    capacity = forecaster.config.history
    for t, item in saved["tickers"].items():
        minutes = [int(m) for m in item["minutes"].tolist()]
        series = TickerSeries(capacity, minutes, item["closes"].tolist(), item["revs"].tolist())
        series.changes = len(minutes)
        forecaster.series[t] = series
        forecaster.final[t] = bool(item["final"])
        known = zip(item["variance_minutes"].tolist(), item["variances"].tolist(), strict=True)
        forecaster.variances[t] = {int(m): float(v) for m, v in known}
    reached = int(saved["reached"])
    forecaster.newest_minute = max(forecaster.newest_minute, reached)
    # A resumed trainer counts its update and retrain periods from the resume.
    forecaster.updated_minute = forecaster.lineage_minute = forecaster.newest_minute
    return reached
