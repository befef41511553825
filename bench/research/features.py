"""Per-minute model inputs and targets from 1-minute OHLCV bars of several tickers. No I/O.

Everything in row ``t`` of the inputs was known when minute ``t``'s bar closed; a target at row ``t``
looks ``h`` minutes ahead. Statistics (the usual volume per minute of the session, the feature and target
scalers) are fitted on the training rows only, so the evaluation part never shapes its own inputs.

Inputs per ticker and minute (``FeatureSpec.names`` lists them in order):

* ``ret_0 .. ret_{lags-1}``: the ticker's last log returns (within the session; the overnight gap is not a
  return the model can learn and reads as 0 after scaling);
* ``mkt_0 .. mkt_{market_lags-1}``: the market's last returns, an index ETF of the portfolio when
  ``market`` names one, else the cross-sectional mean return of the tickers at that minute;
* ``rel_volume``: log(1 + volume) minus its training mean for that ticker and part of the session;
* ``range``: (high - low) / close of the bar;
* ``session_sin``, ``session_cos``: the minute of the session on a circle (US/Eastern, so the clock
  change does not move the open).

Targets: log(close[t+h] / close[t]) within one session, de-meaned and divided by the ticker's training
standard deviation (per horizon); NaN where the horizon leaves the session or the data.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shared.session import XNYS

# A flat training column (a halted stock, a constant) would divide by zero.
_MIN_STD = 1e-9


@dataclass(frozen=True)
class Panel:
    """Bars of several tickers on one minute grid: arrays ``[minutes, tickers]``; ``session`` numbers the
    trading days and ``minute`` is the minute of the session (0 = the opening bar)."""

    index: pd.DatetimeIndex
    tickers: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    session: np.ndarray
    minute: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def rows(self, keep: np.ndarray | slice) -> Panel:
        """The panel restricted to some minutes (a boolean mask or a slice), e.g. the training part."""
        idx = self.index[keep]
        take = {k: getattr(self, k)[keep] for k in ("open", "high", "low", "close", "volume")}
        return Panel(idx, self.tickers, **take, session=self.session[keep], minute=self.minute[keep])


def session_clock(index: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """(session number, minute of the session) for UTC minute timestamps; sessions are local dates."""
    local = (
        index.tz_convert(XNYS.zone)
        if index.tz is not None
        else index.tz_localize("UTC").tz_convert(XNYS.zone)
    )
    days = local.normalize()
    session = pd.factorize(days, sort=True)[0].astype(np.int64)
    minute = (local.hour * 60 + local.minute - XNYS.open_minute).to_numpy().astype(np.int64)
    return session, minute


def align_bars(frames: Mapping[str, pd.DataFrame]) -> Panel:
    """Bars per ticker (a DatetimeIndex of minute starts, columns open, high, low, close, volume) on the union
    of their minutes. A minute a ticker lacks takes its last close of the same session as open, high, low and
    close with zero volume; before the ticker's first bar of a session it stays NaN (no input, no target)."""
    tickers = tuple(frames)
    index = pd.DatetimeIndex(sorted(set().union(*(f.index for f in frames.values()))))
    session, minute = session_clock(index)
    cols = {
        k: np.full((len(index), len(tickers)), np.nan) for k in ("open", "high", "low", "close", "volume")
    }
    for j, ticker in enumerate(tickers):
        frame = frames[ticker].reindex(index)
        close = frame["close"].groupby(session).ffill().to_numpy(dtype=np.float64)
        filled = frame["close"].isna().to_numpy() & ~np.isnan(close)
        for k in ("open", "high", "low", "close"):
            cols[k][:, j] = np.where(filled, close, frame[k].to_numpy(dtype=np.float64))
        cols["volume"][:, j] = np.where(filled, 0.0, frame["volume"].to_numpy(dtype=np.float64))
    return Panel(index, tickers, **cols, session=session, minute=minute)


def session_returns(panel: Panel) -> np.ndarray:
    """Log return of each minute's close over the previous minute's, NaN at each session's first minute."""
    out = np.full(panel.close.shape, np.nan)
    out[1:] = np.log(panel.close[1:] / panel.close[:-1])
    out[1:][panel.session[1:] != panel.session[:-1]] = np.nan
    return out


def forward_returns(panel: Panel, horizon: int) -> np.ndarray:
    """log(close[t+h] / close[t]) where t+h is in the same session, else NaN: ``[minutes, tickers]``."""
    out = np.full(panel.close.shape, np.nan)
    if horizon < len(panel):
        out[:-horizon] = np.log(panel.close[horizon:] / panel.close[:-horizon])
        out[:-horizon][panel.session[horizon:] != panel.session[:-horizon]] = np.nan
    return out


def _lagged(values: np.ndarray, lag: int, session: np.ndarray) -> np.ndarray:
    """``values`` ``lag`` minutes earlier in the same session, else NaN (not yesterday's last minute)."""
    if lag == 0:
        return values.copy()
    out = np.full(values.shape, np.nan)
    out[lag:] = values[: len(values) - lag]
    out[lag:][session[lag:] != session[: len(session) - lag]] = np.nan
    return out


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column is expected (a new ticker)
        return np.asarray(np.nanmean(values, axis=axis))


@dataclass(frozen=True)
class FeatureSpec:
    lags: int = 5
    market_lags: int = 2
    # An index ETF among the tickers (e.g. "SPY"); None: the cross-sectional mean return.
    market: str | None = None
    horizons: tuple[int, ...] = (1,)
    # Minutes of the session pooled into one "usual volume" estimate: 12 sessions are noisy per minute.
    volume_bucket: int = 5

    @property
    def names(self) -> list[str]:
        return [
            *(f"ret_{k}" for k in range(self.lags)),
            *(f"mkt_{k}" for k in range(self.market_lags)),
            "rel_volume",
            "range",
            "session_sin",
            "session_cos",
        ]


def volume_profile(panel: Panel, bucket: int) -> np.ndarray:
    """Mean log(1 + volume) per part of the session and ticker, ``[buckets, tickers]``, from ``panel`` (give
    it the training rows only); a part never seen takes the ticker's overall mean."""
    buckets = -(-XNYS.length // bucket)
    logv = np.log1p(panel.volume)
    part = np.clip(panel.minute // bucket, 0, buckets - 1)
    out = np.full((buckets, len(panel.tickers)), np.nan)
    for b in range(buckets):
        rows = logv[part == b]
        if len(rows):
            out[b] = _nanmean(rows, axis=0)
    overall = np.nan_to_num(_nanmean(logv, axis=0)) if len(logv) else np.zeros(len(panel.tickers))
    return np.where(np.isnan(out), overall[None, :], out)


def raw_features(panel: Panel, spec: FeatureSpec, profile: np.ndarray) -> np.ndarray:
    """Unscaled inputs ``[minutes, tickers, features]`` (NaN where unknown), in ``spec.names`` order."""
    returns = session_returns(panel)
    if spec.market is not None:
        market = returns[:, panel.tickers.index(spec.market)]
    else:
        market = _nanmean(returns, axis=1)
    market = np.broadcast_to(market[:, None], returns.shape)
    part = np.clip(panel.minute // spec.volume_bucket, 0, len(profile) - 1)
    angle = 2 * np.pi * panel.minute / XNYS.length
    cyc = np.broadcast_to(angle[:, None], returns.shape)
    columns = [
        *(_lagged(returns, k, panel.session) for k in range(spec.lags)),
        *(_lagged(market, k, panel.session) for k in range(spec.market_lags)),
        np.log1p(panel.volume) - profile[part],
        (panel.high - panel.low) / panel.close,
        np.sin(cyc),
        np.cos(cyc),
    ]
    return np.stack(columns, axis=-1)


def frames_from_long(bars: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The recording's long format (``ticker, ts, open, high, low, close, volume``) as one frame per ticker,
    indexed by UTC minute, ready for ``align_bars``."""
    bars = bars.assign(ts=pd.to_datetime(bars["ts"], utc=True))
    return {
        str(t): g.set_index("ts").sort_index()[["open", "high", "low", "close", "volume"]]
        for t, g in bars.groupby("ticker", sort=True)
    }


def windows(values: np.ndarray, ends: Sequence[int] | np.ndarray, window: int) -> np.ndarray:
    """Rows ``values[t-window+1 : t+1]`` for each end ``t`` (``t >= window - 1``): ``[n, window, ...]``."""
    ends = np.asarray(ends, dtype=np.int64)
    if len(ends) and ends.min() < window - 1:
        raise ValueError(f"a window of {window} needs ends >= {window - 1}")
    return values[ends[:, None] + np.arange(1 - window, 1)[None, :]]
