"""A time axis of trading minutes only: sessions side by side, the gaps between them marked. No I/O."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# A step longer than this between two stored minutes is a gap (a night, a weekend, a halt) and is closed up.
GAP = pd.Timedelta(minutes=5)


@dataclass(frozen=True)
class TradingAxis:
    """Positions of the stored minutes, with the gaps squeezed out."""

    minutes: pd.DatetimeIndex
    gaps: list[float]  # positions where a gap was squeezed out, to draw as a mark

    @classmethod
    def of(cls, timestamps: pd.Series) -> TradingAxis:
        minutes = pd.DatetimeIndex(sorted(set(pd.to_datetime(timestamps, utc=True))))
        steps = np.diff(minutes.asi8) if len(minutes) > 1 else np.array([], dtype=np.int64)
        gaps = [i + 0.5 for i, step in enumerate(steps) if step > GAP.value]
        return cls(minutes, gaps)

    def position(self, timestamps: pd.Series) -> np.ndarray:
        """Each timestamp's position; a minute between stored ones falls at the next stored one."""
        return np.searchsorted(self.minutes.asi8, pd.DatetimeIndex(pd.to_datetime(timestamps, utc=True)).asi8)

    def ticks(self, count: int = 8) -> tuple[list[float], list[str]]:
        """Ticks at session starts (and evenly within a single session), labelled in UTC."""
        if not len(self.minutes):
            return [], []
        starts = [0.0] + [g + 0.5 for g in self.gaps]
        if len(starts) < 3:
            starts = list(np.linspace(0, len(self.minutes) - 1, count).round())
        step = max(1, len(starts) // count)
        picked = starts[::step]
        return picked, [self.minutes[int(p)].strftime("%m-%d %H:%M") for p in picked]
