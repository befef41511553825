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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

SESSION_TZ = "America/New_York"
SESSION_OPEN_MINUTE = 9 * 60 + 30
SESSION_MINUTES = 390
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
        index.tz_convert(SESSION_TZ)
        if index.tz is not None
        else index.tz_localize("UTC").tz_convert(SESSION_TZ)
    )
    days = local.normalize()
    session = pd.factorize(days, sort=True)[0].astype(np.int64)
    minute = (local.hour * 60 + local.minute - SESSION_OPEN_MINUTE).to_numpy().astype(np.int64)
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
    buckets = -(-SESSION_MINUTES // bucket)
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
    angle = 2 * np.pi * panel.minute / SESSION_MINUTES
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


@dataclass
class TickerScaler:
    """Per ticker and column mean and standard deviation, ``[tickers, columns]``, fitted on training rows."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray) -> TickerScaler:
        """``values`` ``[minutes, tickers, columns]`` (NaN ignored): the training rows only."""
        mean = np.nan_to_num(_nanmean(values, axis=0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            std = np.nan_to_num(np.nanstd(values, axis=0))
        return cls(mean, np.maximum(std, _MIN_STD))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        return scaled * self.std + self.mean


@dataclass
class FeatureModel:
    """The fitted inputs and targets: build with ``fit`` on a panel and its training rows, then call
    ``inputs``/``targets`` on any panel of the same tickers (training, validation, test, live)."""

    spec: FeatureSpec
    tickers: tuple[str, ...]
    profile: np.ndarray
    features: TickerScaler
    target: TickerScaler
    # Columns passed through unscaled (already on a fixed scale).
    unscaled: tuple[int, ...] = field(default=())

    @classmethod
    def fit(cls, train: Panel, spec: FeatureSpec | None = None) -> FeatureModel:
        """Fit every statistic on ``train`` (the training rows, e.g. ``panel.rows(panel.session < k)``)."""
        spec = spec or FeatureSpec()
        profile = volume_profile(train, spec.volume_bucket)
        raw = raw_features(train, spec, profile)
        unscaled = tuple(i for i, n in enumerate(spec.names) if n.startswith("session_"))
        scaler = TickerScaler.fit(raw)
        scaler.mean[:, list(unscaled)], scaler.std[:, list(unscaled)] = 0.0, 1.0
        target = TickerScaler.fit(np.stack([forward_returns(train, h) for h in spec.horizons], axis=-1))
        return cls(spec, train.tickers, profile, scaler, target, unscaled)

    def _check(self, panel: Panel) -> None:
        if panel.tickers != self.tickers:
            raise ValueError(f"panel tickers {panel.tickers} differ from the fitted {self.tickers}")

    def inputs(self, panel: Panel) -> np.ndarray:
        """Scaled inputs ``[minutes, tickers, features]`` float32; unknown values (a lag before the session,
        a ticker with no bar yet) read 0, the training mean."""
        self._check(panel)
        scaled = self.features.transform(raw_features(panel, self.spec, self.profile))
        return np.nan_to_num(scaled, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    def targets(self, panel: Panel) -> np.ndarray:
        """Standardized, de-meaned forward returns ``[minutes, tickers, horizons]`` float32 (NaN: none)."""
        self._check(panel)
        raw = np.stack([forward_returns(panel, h) for h in self.spec.horizons], axis=-1)
        return self.target.transform(raw).astype(np.float32)

    def to_return(self, scaled: np.ndarray, keep_training_drift: bool = False) -> np.ndarray:
        """Model outputs ``[..., tickers, horizons]`` back to log returns. The training mean (a few sessions'
        drift, mostly noise) is added back only on request: by default a forecast is the model's signal
        around zero, so a drift the training days happened to have does not become a standing bias."""
        out = np.asarray(scaled, dtype=np.float64) * self.target.std
        return out + self.target.mean if keep_training_drift else out

    def to_close(
        self, scaled: np.ndarray, last_close: np.ndarray, keep_training_drift: bool = False
    ) -> np.ndarray:
        """Forecast closes ``last_close * exp(r̂)``; ``last_close`` ``[..., tickers]``."""
        r = self.to_return(scaled, keep_training_drift)
        return np.asarray(last_close)[..., None] * np.exp(r)

    def state(self) -> dict[str, Any]:
        """Plain lists and numbers, for a checkpoint."""
        return {
            "spec": {**self.spec.__dict__, "horizons": list(self.spec.horizons)},
            "tickers": list(self.tickers),
            "profile": self.profile.tolist(),
            "features": [self.features.mean.tolist(), self.features.std.tolist()],
            "target": [self.target.mean.tolist(), self.target.std.tolist()],
            "unscaled": list(self.unscaled),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> FeatureModel:
        spec = dict(state["spec"])
        feats, target = state["features"], state["target"]
        return cls(
            FeatureSpec(**{**spec, "horizons": tuple(spec["horizons"])}),
            tuple(state["tickers"]),
            np.asarray(state["profile"]),
            TickerScaler(np.asarray(feats[0]), np.asarray(feats[1])),
            TickerScaler(np.asarray(target[0]), np.asarray(target[1])),
            tuple(state["unscaled"]),
        )


def output_offsets(outputs: np.ndarray, ticker: np.ndarray, tickers: int) -> np.ndarray:
    """A net's mean output per ticker ``[tickers]`` on its training windows (``outputs[i]`` from a window of
    ticker ``ticker[i]``), to subtract from every forecast: with almost no signal the output is mostly a
    constant offset (a bias early stopping on a drifting validation part even rewards). No windows: 0."""
    counts = np.bincount(ticker, minlength=tickers)
    sums = np.bincount(ticker, weights=np.asarray(outputs, dtype=np.float64), minlength=tickers)
    return np.divide(sums, counts, out=np.zeros(tickers), where=counts > 0)


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
