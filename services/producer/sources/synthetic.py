"""A seeded, offline market: correlated geometric Brownian motion on the wall-clock minute.

Everything is a pure function of ``(seed, ticker, minute)``: a restart regenerates the same history, and
the minute in progress fills as wall-clock seconds pass (its high, low, close and volume change, so it is
republished as a revision, then as final once the minute is over). The market trades around the clock so
the pipeline behaves as it does live at any hour. Days are generated whole and vectorised over tickers,
which keeps 500+ tickers cheap.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from services.producer.sources.base import Fetch, empty_bars

MINUTES_PER_DAY = 1_440
# Sub-steps per minute: the in-progress bar changes every 15 s (more than once per 10 s download period
# would not be seen anyway), and a day of paths for 500 tickers stays ~25 MB.
STEPS = 4
MISSING_RATE = 0.01
# Per-minute volatility of a ~2%/day stock (2% / sqrt(390)).
MINUTE_VOL = 0.001
BACKFILL_CHUNK_MINUTES = 60
_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


@dataclass(frozen=True)
class _Day:
    """One UTC day of every ticker: price path at sub-step resolution, volume and missing minutes."""

    prices: np.ndarray  # (tickers, MINUTES_PER_DAY * STEPS + 1)
    volume: np.ndarray  # (tickers, MINUTES_PER_DAY), int64
    missing: np.ndarray  # (tickers, MINUTES_PER_DAY), bool


class SyntheticSource:
    name = "synthetic"

    def __init__(self, tickers: list[str], seed: int) -> None:
        self.tickers = list(tickers)
        self.seed = seed
        self._keys = [zlib.crc32(t.encode()) for t in self.tickers]
        params = [np.random.default_rng([seed, key]) for key in self._keys]
        self._base_price = np.array([rng.uniform(20, 500) for rng in params])
        self._vol = MINUTE_VOL * np.array([rng.uniform(0.6, 1.8) for rng in params])
        # Loading on the market factor: correlations between tickers of about 0.2 to 0.6.
        self._beta = np.array([rng.uniform(0.45, 0.8) for rng in params])
        self._volume_scale = np.array([rng.uniform(2e3, 5e4) for rng in params])
        self._days: dict[int, _Day] = {}

    # --- the Source interface -----------------------------------------------------------------------
    def is_open(self, now: datetime) -> bool:
        return True

    def backfill(self, minutes: int, now: datetime) -> Iterator[Fetch]:
        current = floor_minute(now)
        start = current - timedelta(minutes=minutes)
        while start < current:
            end = min(start + timedelta(minutes=BACKFILL_CHUNK_MINUTES), current)
            yield Fetch(self.bars(start, end, now), closed_before=current)
            start = end

    def fetch(self, since: datetime, now: datetime) -> Fetch:
        current = floor_minute(now)
        return Fetch(self.bars(since, current + timedelta(minutes=1), now), closed_before=current)

    # --- the market ---------------------------------------------------------------------------------
    def bars(self, start: datetime, end: datetime, now: datetime) -> pd.DataFrame:
        """The bars of minutes ``[start, end)`` as seen at ``now``: later minutes do not exist yet and
        the minute in progress holds only the sub-steps already elapsed."""
        end = min(end, floor_minute(now) + timedelta(minutes=1))
        first, last = _minute_number(floor_minute(start)), _minute_number(end)
        if last <= first:
            return empty_bars()
        parts = []
        for day in range(first // MINUTES_PER_DAY, (last - 1) // MINUTES_PER_DAY + 1):
            lo = max(first, day * MINUTES_PER_DAY) - day * MINUTES_PER_DAY
            hi = min(last, (day + 1) * MINUTES_PER_DAY) - day * MINUTES_PER_DAY
            parts.append(self._day_bars(day, np.arange(lo, hi), now))
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]

    def _day_bars(self, day: int, minutes: np.ndarray, now: datetime) -> pd.DataFrame:
        data = self._day(day)
        n_tickers, n_minutes = len(self.tickers), len(minutes)
        # Sub-steps elapsed per minute: all of them for closed minutes, fewer for the one in progress.
        now_minute = _minute_number(floor_minute(now)) - day * MINUTES_PER_DAY
        elapsed = np.full(n_minutes, STEPS)
        in_progress = minutes == now_minute
        elapsed[in_progress] = min(STEPS, int(now.second * STEPS / 60) + 1)

        starts = minutes * STEPS
        steps = starts[:, None] + np.arange(1, STEPS + 1)[None, :]  # (minutes, STEPS)
        path = data.prices[:, steps]  # (tickers, minutes, STEPS)
        done = np.arange(STEPS)[None, :] < elapsed[:, None]  # (minutes, STEPS)
        open_ = data.prices[:, starts]
        high = np.maximum(open_, np.where(done, path, -np.inf).max(axis=2))
        low = np.minimum(open_, np.where(done, path, np.inf).min(axis=2))
        close = np.take_along_axis(path, (elapsed - 1)[None, :, None].repeat(n_tickers, 0), axis=2)[..., 0]
        volume = data.volume[:, minutes] * elapsed[None, :] // STEPS

        keep = ~data.missing[:, minutes]
        ts = pd.DatetimeIndex(
            _EPOCH + timedelta(days=day) + pd.to_timedelta(minutes, unit="min"), tz=UTC
        ).as_unit("ns")
        ticker_grid = np.repeat(np.array(self.tickers, dtype=object), n_minutes).reshape(n_tickers, n_minutes)
        ts_grid = np.tile(ts.asi8, n_tickers).reshape(n_tickers, n_minutes)
        return pd.DataFrame(
            {
                "ticker": ticker_grid[keep],
                "ts": pd.to_datetime(ts_grid[keep], utc=True),
                "open": open_[keep],
                "high": high[keep],
                "low": low[keep],
                "close": close[keep],
                "volume": volume[keep],
            }
        )

    def _day(self, day: int) -> _Day:
        cached = self._days.get(day)
        if cached is None:
            cached = self._days[day] = self._generate_day(day)
            # Two days cover a backfill across midnight; older ones are never asked for again.
            for old in [d for d in self._days if d < day - 1]:
                del self._days[old]
        return cached

    def _generate_day(self, day: int) -> _Day:
        n = MINUTES_PER_DAY * STEPS
        factor = np.random.default_rng([self.seed, day, 0]).standard_normal(n)
        own = np.empty((len(self.tickers), n))
        noise = np.empty((len(self.tickers), 2, MINUTES_PER_DAY))
        anchors = np.empty(len(self.tickers))
        for i, key in enumerate(self._keys):
            rng = np.random.default_rng([self.seed, day, 1, key])
            own[i] = rng.standard_normal(n)
            noise[i] = rng.random((2, MINUTES_PER_DAY))
            # The day opens at a level of its own (an overnight gap), drawn around the ticker's base.
            anchors[i] = self._base_price[i] * np.exp(
                0.15 * np.random.default_rng([self.seed, key, day]).normal()
            )
        beta = self._beta[:, None]
        shocks = beta * factor[None, :] + np.sqrt(1 - beta**2) * own
        step_vol = (self._vol / np.sqrt(STEPS))[:, None]
        log_returns = step_vol * shocks - 0.5 * step_vol**2
        log_path = np.concatenate([np.zeros((len(self.tickers), 1)), np.cumsum(log_returns, axis=1)], axis=1)
        prices = np.round(anchors[:, None] * np.exp(log_path), 2)
        # Rounding to cents can reach 0 only for absurd paths; keep prices positive whatever the seed.
        prices = np.maximum(prices, 0.01)

        # U-shaped intraday volume: heavy at the open and the close of the (UTC) day, light at midday.
        x = (np.arange(MINUTES_PER_DAY) + 0.5) / MINUTES_PER_DAY
        profile = 0.4 + 2.4 * (2 * x - 1) ** 2
        volume = (self._volume_scale[:, None] * profile[None, :] * (0.5 + noise[:, 0])).astype(np.int64)
        missing = noise[:, 1] < MISSING_RATE
        return _Day(prices=prices, volume=volume, missing=missing)


def _minute_number(moment: datetime) -> int:
    return int((moment - _EPOCH).total_seconds() // 60)
