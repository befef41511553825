"""Per-ticker close history built from bars, and the missing-minute policy. No I/O.

Policy for missing minutes (documented in the README):

* a gap of up to ``ffill_max`` missing minutes is forward-filled with the last close (a quiet minute with no
  trade is the common cause, and the last price is still the price);
* a longer gap (a halt, an outage, the night, a weekend) **cuts** the series: the minutes before and after
  become separate segments and no window ever spans the cut;
* a close is never NaN: bars are validated upstream (positive, finite prices), and filling only copies
  existing closes.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_minute(ts: datetime) -> int:
    """Minutes since the epoch (UTC) of a minute-start timestamp."""
    return int((ts - _EPOCH).total_seconds() // 60)


@lru_cache(maxsize=4096)  # a minute's 2,000 forecasts share two minutes
def from_minute(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, tz=UTC)


@dataclass
class Segment:
    """Closes on consecutive minutes, ``start`` being the minute of ``closes[0]``."""

    start: int
    closes: np.ndarray

    @property
    def end(self) -> int:
        return self.start + len(self.closes) - 1


def regularize(minutes: list[int], closes: list[float], ffill_max: int) -> list[Segment]:
    """Apply the missing-minute policy to sorted (minute, close) points: fill short gaps, cut at long ones."""
    segments: list[Segment] = []
    if not minutes:
        return segments
    start = minutes[0]
    values: list[float] = [closes[0]]
    for i in range(1, len(minutes)):
        missing = minutes[i] - minutes[i - 1] - 1
        if missing > ffill_max:
            segments.append(Segment(start, np.asarray(values, dtype=np.float64)))
            start, values = minutes[i], [closes[i]]
            continue
        values.extend([values[-1]] * missing)
        values.append(closes[i])
    segments.append(Segment(start, np.asarray(values, dtype=np.float64)))
    return segments


@dataclass
class TickerSeries:
    """The recent closes of one ticker; a revised bar (higher or equal ``rev``) replaces the earlier close."""

    capacity: int
    minutes: list[int] = field(default_factory=list)
    closes: list[float] = field(default_factory=list)
    revs: list[int] = field(default_factory=list)
    # Bumped on every accepted change: lets callers see "fresh bars since I last looked".
    changes: int = 0
    # A numpy copy of ``minutes`` and ``closes`` kept in step with them (None: rebuilt on the next
    # :meth:`arrays`), so the forecast of a bar for every ticker slices tails without converting lists.
    _mirror: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def add(self, minute: int, close: float, rev: int = 0) -> bool:
        """Record a bar's close; return False when it is older than what is held (a stale revision)."""
        if not (close > 0 and math.isfinite(close)):  # math, not numpy: one Python float a bar
            return False
        if not self.minutes or minute > self.minutes[-1]:
            self.minutes.append(minute)
            self.closes.append(close)
            self.revs.append(rev)
            self._mirror_append(minute, close)
        else:
            i = bisect_left(self.minutes, minute)
            if i < len(self.minutes) and self.minutes[i] == minute:
                if rev < self.revs[i]:
                    return False
                self.closes[i], self.revs[i] = close, rev
                if self._mirror is not None:
                    self._mirror[1][i] = close
            else:
                if len(self.minutes) >= self.capacity and i == 0:
                    return False  # older than the whole rolling window
                self.minutes.insert(i, minute)
                self.closes.insert(i, close)
                self.revs.insert(i, rev)
                self._mirror = None  # rare (a late bar): rebuilt when next needed
        # Trim in chunks so a steady stream does not shift the lists on every bar.
        if len(self.minutes) > self.capacity + max(16, self.capacity // 8):
            cut = len(self.minutes) - self.capacity
            del self.minutes[:cut], self.closes[:cut], self.revs[:cut]
            if self._mirror is not None:
                for a in self._mirror:
                    a[: len(self.minutes)] = a[cut : cut + len(self.minutes)].copy()
        self.changes += 1
        return True

    def _mirror_append(self, minute: int, close: float) -> None:
        if self._mirror is None:
            return
        n = len(self.minutes)
        m, c = self._mirror
        if n > len(m):  # grow by doubling: appends stay O(1) amortized
            self._mirror = m, c = np.resize(m, self._mirror_size(n)), np.resize(c, self._mirror_size(n))
        m[n - 1], c[n - 1] = minute, close

    def _mirror_size(self, n: int) -> int:
        # Never more than the longest the lists get before a trim (see add).
        return max(n, min(max(16, 2 * n), self.capacity + max(16, self.capacity // 8) + 1))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``minutes`` (int64) and ``closes`` (float64) as numpy views; read-only use, valid until the next
        :meth:`add`."""
        n = len(self.minutes)
        if self._mirror is None:
            size = self._mirror_size(n)
            m, c = np.zeros(size, np.int64), np.zeros(size, np.float64)
            m[:n], c[:n] = self.minutes, self.closes
            self._mirror = m, c
        m, c = self._mirror
        return m[:n], c[:n]

    @property
    def last_minute(self) -> int | None:
        return self.minutes[-1] if self.minutes else None

    def close_at(self, minute: int) -> float | None:
        i = bisect_left(self.minutes, minute)
        if i < len(self.minutes) and self.minutes[i] == minute:
            return self.closes[i]
        return None

    def segments(self, ffill_max: int) -> list[Segment]:
        return regularize(self.minutes, self.closes, ffill_max)

    def tail(self, length: int, ffill_max: int) -> np.ndarray | None:
        """The last ``length`` regularized closes ending at the last bar, or None when the current segment
        is shorter (the window would have to span a cut)."""
        if len(self.minutes) < 1:
            return None
        # Only the end of the series matters: regularize just enough points to cover ``length`` minutes.
        take = min(len(self.minutes), length)
        segs = regularize(self.minutes[-take:], self.closes[-take:], ffill_max)
        last = segs[-1].closes
        if len(last) >= length:
            return last[-length:]
        if take == len(self.minutes) or len(segs) > 1:
            return None
        # Filled gaps mean fewer bars than minutes were taken; the rest of the segment may reach back further.
        segs = regularize(self.minutes, self.closes, ffill_max)
        last = segs[-1].closes
        return last[-length:] if len(last) >= length else None


def align(
    series: dict[str, TickerSeries], tickers: list[str], ffill_max: int, fill_tail: bool = False
) -> list[tuple[int, np.ndarray]]:
    """The tickers' closes on one minute grid (portfolio mode): segments of shape [minutes, tickers].

    Each ticker is regularized by the same policy; a minute belongs to a segment only when every ticker
    has a (possibly forward-filled) close there, so the matrix never holds a NaN. ``fill_tail`` also
    carries each ticker's last close forward up to ``ffill_max`` minutes past its last bar (for forecasting
    while the slowest ticker's bar of the newest minute is still on its way).
    """
    per_ticker = [series[t].segments(ffill_max) for t in tickers]
    if not per_ticker or any(not segs for segs in per_ticker):
        return []
    lo = min(s[0].start for s in per_ticker)
    hi = max(s[-1].end for s in per_ticker)
    grid = np.full((hi - lo + 1, len(tickers)), np.nan)
    for j, segs in enumerate(per_ticker):
        for seg in segs:
            grid[seg.start - lo : seg.end - lo + 1, j] = seg.closes
        if fill_tail:
            end = segs[-1].end - lo
            grid[end + 1 : end + 1 + ffill_max, j] = segs[-1].closes[-1]
    complete = ~np.isnan(grid).any(axis=1)
    out: list[tuple[int, np.ndarray]] = []
    i = 0
    n = len(complete)
    while i < n:
        if not complete[i]:
            i += 1
            continue
        j = i
        while j < n and complete[j]:
            j += 1
        out.append((lo + i, grid[i:j]))
        i = j
    return out
