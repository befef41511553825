"""The pooled test's series: loss differentials summed per minute (tested by ``significance.dm_test``).

Tickers trade in one market: at a given minute their forecast errors move together, so the differentials
``d = e_model² - e_naive²`` of ten tickers at one minute are not ten independent observations. Pooling
them as if they were (summing per-ticker variances) overstates the evidence. The pooled test here tests
the mean of ``D_t``, the sum of the differentials of every forecast of minute ``t``, with the Newey-West
variance of that series: errors are free to correlate across tickers within a minute and, up to the
Newey-West lags, across minutes (a test clustered by minute). No I/O.

Sums are running, so the trainer can score forecast by forecast and checkpoint the panel: minutes stay
open (their total may still grow) until they are ``OPEN_MINUTES`` behind the newest, then fold into the
sums in minute order. A forecast scored later than that (none is: the trainer keeps 64 pending per
ticker) counts as a minute of its own.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field

from services.scoring.significance import MAX_LAG, clark_west_test, dm_test

OPEN_MINUTES = 1_000


@dataclass
class MinutePanel:
    """Running sums of the per-minute totals ``D_t`` (closed minutes) and the totals still open."""

    count: int = 0
    total: float = 0.0
    sum_sq: float = 0.0
    lagged: list[float] = field(default_factory=lambda: [0.0] * MAX_LAG)
    tail: list[float] = field(default_factory=list)
    open: dict[int, float] = field(default_factory=dict)
    closed_through: int | None = None

    def __post_init__(self) -> None:
        # The open minutes' range, kept beside ``open`` (derived, not saved): taking max() and min() of
        # ~1,000 open minutes on every add cost a tenth of the trainer's per-bar work (two adds per bar).
        self._newest: int | None = max(self.open, default=None)
        self._oldest: int | None = min(self.open, default=None)

    def add(self, minute: int, d: float) -> None:
        if not math.isfinite(d):
            return
        if self.closed_through is not None and minute <= self.closed_through:
            self.fold(d)
            return
        if minute in self.open:  # the range is unchanged, so nothing new falls behind the horizon
            self.open[minute] += d
            return
        self.open[minute] = d
        if self._newest is None or minute > self._newest:
            self._newest = minute
        if self._oldest is None or minute < self._oldest:
            self._oldest = minute
        horizon = self._newest - OPEN_MINUTES
        if self._oldest < horizon:
            for m in sorted(m for m in self.open if m < horizon):
                self.fold(self.open.pop(m))
                self.closed_through = m
            self._oldest = min(self.open)  # never empty: the newest minute stays open

    def fold(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.sum_sq += value * value
        for k, previous in enumerate(reversed(self.tail), start=1):
            self.lagged[k - 1] += value * previous
        self.tail = [*self.tail[-(MAX_LAG - 1) :], value]

    def settled(self) -> MinutePanel:
        """A copy with every open minute folded in, in minute order: the series as it stands now."""
        out = copy.deepcopy(self)
        for m in sorted(out.open):
            out.fold(out.open.pop(m))
        return out

    def test(self) -> tuple[float | None, float | None]:
        s = self.settled()
        return dm_test(s.count, s.total, s.sum_sq, s.lagged)

    def state(self) -> dict[str, object]:
        out = asdict(self)
        out["open"] = [[m, v] for m, v in sorted(self.open.items())]
        return out

    @classmethod
    def from_state(cls, state: dict[str, object]) -> MinutePanel:
        values = dict(state)
        values["open"] = {int(m): float(v) for m, v in values.get("open", [])}  # type: ignore[attr-defined]
        return cls(**values)  # type: ignore[arg-type]


@dataclass
class ScorePanels:
    """A pool's two test series, summed per minute: the squared-error differentials ``d`` (Diebold-Mariano,
    two-sided: is the model worse?) and the Clark-West terms ``f`` (one-sided: does the model beat naive,
    which is nested in it?). See :mod:`services.scoring.score`."""

    dm: MinutePanel = field(default_factory=MinutePanel)
    cw: MinutePanel = field(default_factory=MinutePanel)

    def add(self, minute: int, d: float, f: float) -> None:
        self.dm.add(minute, d)
        self.cw.add(minute, f)

    def settled(self) -> ScorePanels:
        return ScorePanels(self.dm.settled(), self.cw.settled())

    def dm_test(self) -> tuple[float | None, float | None]:
        return self.dm.test()

    def clark_west(self) -> tuple[float | None, float | None]:
        s = self.cw.settled()
        return clark_west_test(s.count, s.total, s.sum_sq, s.lagged)

    def state(self) -> dict[str, object]:
        return {"dm": self.dm.state(), "cw": self.cw.state()}

    @classmethod
    def from_state(cls, state: dict[str, object]) -> ScorePanels:
        """Also reads a checkpoint's bare differentials panel (written before Clark-West): its minutes are
        in the DM series only, and the Clark-West test covers the minutes scored from the restart on."""
        if "dm" not in state:
            return cls(MinutePanel.from_state(state), MinutePanel())
        return cls(
            MinutePanel.from_state(state["dm"]),  # type: ignore[arg-type]
            MinutePanel.from_state(state["cw"]),  # type: ignore[arg-type]
        )
