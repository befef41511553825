"""A recording's bars on the aligned minute grid ``[rows, tickers]``, in the conventions of the range models
(:mod:`seasonal`): what backtests fit and evaluate the range model and its baselines on. No I/O.

Rows are the minutes at which any ticker has a bar, in order; a ticker without a bar at a row is NaN there.
A 1-minute return needs the bar of the minute before in the same session (none across the night or a
missing minute), and the portfolio's value (:func:`portfolio_closes`) is built on this grid too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from services.trainer.intervals.horizon_ranges import parkinson
from shared.session import SessionClock
from shared.settings import PORTFOLIO_SERIES


@dataclass(frozen=True)
class Grid:
    tickers: list[str]
    session: SessionClock
    minutes: np.ndarray  # [rows] epoch minutes
    session_minute: np.ndarray  # [rows], by ``session``
    close: np.ndarray  # [rows, tickers]
    returns: np.ndarray  # [rows, tickers]: log return ending at the row
    ranges: np.ndarray  # [rows, tickers]: the bar's Parkinson variance

    def row_of(self, minutes: np.ndarray) -> np.ndarray:
        """Each epoch minute's row, -1 where the grid has none."""
        at = np.searchsorted(self.minutes, minutes)
        at = np.minimum(at, len(self.minutes) - 1)
        return np.where(self.minutes[at] == minutes, at, -1)

    def ahead(self, horizon: int) -> np.ndarray:
        """The close h minutes after each row, in the same session ``[rows, tickers]`` (NaN otherwise)."""
        out = np.full(self.close.shape, np.nan)
        rows = self.row_of(self.minutes + horizon)
        same = (rows >= 0) & (self.session_minute + horizon < self.session.length)
        out[same] = self.close[rows[same]]
        return out


def epoch_minutes(ts: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(ts, utc=True)
    return np.asarray((stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(minutes=1), np.int64)


def grid_of(bars: pd.DataFrame, session: SessionClock) -> Grid:
    """The final bars of a recording (``ticker, ts, close`` and optionally ``high, low``) on the grid, its
    minutes of the session by the ``session`` clock."""
    frame = bars[bars["final"]] if "final" in bars.columns else bars
    frame = frame.assign(minute=epoch_minutes(frame["ts"]))
    frame = frame.drop_duplicates(["ticker", "minute"], keep="last")

    def pivot(column: str) -> pd.DataFrame:
        if column not in frame.columns:
            return pd.DataFrame(np.nan, index=close.index, columns=close.columns)
        return frame.pivot_table(
            index="minute", columns="ticker", values=column, aggfunc="last"
        ).reindex_like(close)

    close = frame.pivot_table(index="minute", columns="ticker", values="close", aggfunc="last").sort_index()
    minutes = close.index.to_numpy(np.int64)
    sessions = session.minute_of(minutes)
    values = close.to_numpy(np.float64)
    returns = np.full(values.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        returns[1:] = np.log(values[1:] / values[:-1])
    consecutive = np.concatenate([[False], (np.diff(minutes) == 1) & (sessions[1:] > 0)])
    returns[~consecutive] = np.nan
    ranges = parkinson(pivot("high").to_numpy(np.float64), pivot("low").to_numpy(np.float64))
    return Grid([str(t) for t in close.columns], session, minutes, sessions, values, returns, ranges)


def portfolio_closes(
    bars: pd.DataFrame, session: SessionClock, weights: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """The portfolio's value as bars of ``PORTFOLIO_SERIES`` (the name in ``shared.settings``): buy and hold,
    each ticker's weight of 1.0 at its first close (equal weights by default), closes forward-filled on the
    grid within a ``session``; a minute before every weighted ticker has traded has no value. High and low
    are the weighted sums of the tickers' (the close where a bar has none). The live trainer builds the same
    bars minute by minute (``services.trainer.forecaster.portfolio_value``)."""
    grid = grid_of(bars, session)
    w = pd.Series(weights or dict.fromkeys(grid.tickers, 1.0), dtype=np.float64)
    w = w[w.index.isin(grid.tickers)]
    if w.empty or w.sum() <= 0:
        raise ValueError("no weighted ticker in the bars")
    w = w / w.sum()
    names = list(w.index)
    sessions = np.cumsum(np.concatenate([[True], np.diff(grid.session_minute) <= 0]))
    close = pd.DataFrame(grid.close, columns=grid.tickers)[names]
    first = close.bfill().iloc[0]
    out = {}
    for column in ("close", "high", "low"):
        frame = close if column == "close" else _pivot(bars, column, grid)[names]
        filled = frame.groupby(sessions).ffill()
        out[column] = 100.0 * (filled / first * w).sum(axis=1, min_count=len(w)).to_numpy()
    ok = np.isfinite(out["close"])
    stamps = pd.to_datetime(grid.minutes[ok] * 60, unit="s", utc=True)
    return pd.DataFrame({"ticker": PORTFOLIO_SERIES, "ts": stamps, **{k: v[ok] for k, v in out.items()}})


def _pivot(bars: pd.DataFrame, column: str, grid: Grid) -> pd.DataFrame:
    """``column`` of the bars on the grid; the close where the bars have no such column."""
    if column not in bars.columns:
        return pd.DataFrame(grid.close, columns=grid.tickers)
    frame = bars.assign(minute=epoch_minutes(bars["ts"])).drop_duplicates(["ticker", "minute"], keep="last")
    wide = frame.pivot_table(index="minute", columns="ticker", values=column, aggfunc="last")
    return wide.reindex(index=grid.minutes, columns=grid.tickers).reset_index(drop=True)
