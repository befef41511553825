"""The live trainer's portfolio series: the portfolio's value as one more series of bars
(``PORTFOLIO_SERIES``), built minute by minute from the tickers' final bars by the rule of the backtest's
:func:`~services.trainer.intervals.range_grid.portfolio_closes`, so the forecaster trains on it, forecasts
it at every horizon and scores it like a ticker. No I/O.

Buy and hold: each ticker's weight (``PORTFOLIO_WEIGHTS``, equal by default) buys it at its first final
close, and those holdings never change; the value is ``100 * sum(weight * close / first close)``, high and
low the same sums of the highs and lows. A minute gets a bar once every ticker has a final bar at it or
later (a ticker's bars come in minute order: it will not get one at it), or, for a ticker that sends
nothing for long (halted, or no longer this trainer's), ``WAIT_S`` of wall time after the minute's first
bar, counted only while the trainer has read everything there is (:meth:`PortfolioValue.due`, called on a
poll that brought nothing). Not while it reads a backlog: there the partitions are read unevenly, one
ticker's bars minutes (and seconds of reading) ahead of another's, and no wait in data or wall time would
tell a silent ticker from one whose partition is not read yet. A ticker without a bar at the minute counts
with its last close of the same session (forward-filled, as ``portfolio_closes``); a minute before every
ticker has traded, or with a ticker that has not traded yet in the session, has no value. A bar that
comes after its minute's bar was built (later than the wait, or a revision) does not change it: the series
is not revised. The trainer receives only its partitions' bars: with several trainers in the group, none
holds every ticker, and none builds the series (docs/forecasting.md).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

from services.trainer.forecaster.records import BarIn
from shared.session import SessionClock, clock_named
from shared.settings import PORTFOLIO_SERIES, Settings

logger = logging.getLogger(__name__)

# How long a minute waits for the bars of tickers that have sent none at or after it since, once the
# trainer has read everything: far more than the spread of a minute's bars across the producer's fetch.
WAIT_S = 5.0
# Minutes held unbuilt at most (a day): a ticker silent through a backlog of days must not hold them all.
MAX_OPEN = 1_440

Entry = tuple[int, float, float, float]  # minute, close, high, low (high and low forward-filled)


def same_session(earlier: int, later: int, session: SessionClock) -> bool:
    """Whether nothing between two minutes starts a new session: the rule of ``portfolio_closes`` (a row
    whose session minute does not grow starts one)."""
    return earlier == later or (
        later - earlier < 1440 and session.minute_at(later) > session.minute_at(earlier)
    )


def portfolio_weights(weights: Mapping[str, float], tickers: list[str]) -> dict[str, float]:
    """``PORTFOLIO_WEIGHTS`` over the tickers published (``PORTFOLIO_TICKERS``), or equal weights over them;
    normalized to sum to 1. A weighted ticker that is not published is left out, as the backtest leaves out
    one its bars lack. Raises ValueError when nothing is left."""
    chosen = (
        {t: float(w) for t, w in weights.items() if t in tickers} if weights else dict.fromkeys(tickers, 1.0)
    )
    total = sum(chosen.values())
    if not chosen or total <= 0:
        raise ValueError("no weighted ticker among PORTFOLIO_TICKERS")
    return {t: w / total for t, w in sorted(chosen.items())}


class PortfolioValue:
    """The portfolio's bars from the tickers' bars, in arrival order; thread-safe (the checkpoint reads it
    from the training thread)."""

    def __init__(
        self, weights: Mapping[str, float], session: SessionClock, *, wait_s: float = WAIT_S
    ) -> None:
        self.weights = dict(weights)
        self.session = session
        self.wait_s = wait_s
        self.lock = threading.Lock()
        # Each ticker's first final close (bought there) and the minute it came from.
        self.base: dict[str, tuple[int, float]] = {}
        # Each ticker's bars from the newest one at or before the last built minute on.
        self.recent: dict[str, list[Entry]] = {t: [] for t in self.weights}
        # Minutes with a bar, not built yet: the wall time their first bar came.
        self.open: dict[int, float] = {}
        self._oldest: int | None = None  # min(open), kept: asked after every bar, a backlog's open are many
        self.decided = -1  # the newest minute built (or found without a value)
        self._behind: set[str] | None = None  # tickers without a bar at or after the oldest open minute

    def add(self, bar: BarIn, now: float) -> list[BarIn]:
        """Take one of the tickers' bars; the portfolio bars it makes ready, oldest first."""
        if not bar.final or bar.ticker not in self.weights:
            return []
        with self.lock:
            entries = self.recent[bar.ticker]
            if bar.minute <= self.decided or (entries and bar.minute < entries[-1][0]):
                return []  # its minute's bar is built: the series is not revised
            high, low = bar.high, bar.low
            # Forward-filled within the session, as the backtest's (only a stored bar may lack them).
            if (
                not (math.isfinite(high) and math.isfinite(low))
                and entries
                and same_session(entries[-1][0], bar.minute, self.session)
            ):
                high = high if math.isfinite(high) else entries[-1][2]
                low = low if math.isfinite(low) else entries[-1][3]
            entry = (bar.minute, bar.close, high, low)
            if entries and entries[-1][0] == bar.minute:
                entries[-1] = entry  # a newer revision of a minute not built yet
            else:
                entries.append(entry)
            first = self.base.get(bar.ticker)
            if first is None or first[0] == bar.minute:
                self.base[bar.ticker] = (bar.minute, bar.close)
            if bar.minute not in self.open:
                if self._oldest is None or bar.minute < self._oldest:
                    self._oldest = bar.minute
                    self._behind = None  # a new oldest open minute: who is behind it is counted again
                self.open[bar.minute] = now
            if self._behind is not None:
                self._behind.discard(bar.ticker)
            return self._ready(lambda _: len(self.open) > MAX_OPEN)

    def due(self, now: float) -> list[BarIn]:
        """The portfolio bars whose wait is over by ``now`` (wall time), oldest first. Call it only when the
        bars there are have all been read (a poll that brought nothing)."""
        if not self.open:
            return []
        with self.lock:
            return self._ready(lambda m: now - self.open[m] >= self.wait_s)

    def forget(self, tickers: list[str]) -> None:
        """Tickers this trainer no longer receives: no value until their bars come again (holdings stay)."""
        with self.lock:
            for t in tickers:
                if t in self.recent:
                    self.recent[t] = []
            self._behind = None

    def _ready(self, waited: Callable[[int], bool]) -> list[BarIn]:
        out: list[BarIn] = []
        while self._oldest is not None:
            oldest = self._oldest
            if self._behind is None:
                self._behind = {t for t, e in self.recent.items() if not e or e[-1][0] < oldest}
            if self._behind and not waited(oldest):
                break
            del self.open[oldest]
            self._oldest = min(self.open) if self.open else None
            self._behind = None
            self.decided = oldest
            bar = self._value(oldest)
            if bar is not None:
                out.append(bar)
        return out

    def _value(self, minute: int) -> BarIn | None:
        """The portfolio's bar at ``minute`` (None without a value); drops what later minutes cannot need."""
        close = high = low = 0.0
        valued = True
        for t, w in self.weights.items():
            entries = self.recent[t]
            at = len(entries) - 1
            while at >= 0 and entries[at][0] > minute:
                at -= 1
            if at > 0:
                del entries[:at]
                at = 0
            first = self.base.get(t)
            if at < 0 or first is None or not same_session(entries[at][0], minute, self.session):
                valued = False
                continue
            _, c, h, lo = entries[at]
            close += c / first[1] * w
            high += h / first[1] * w
            low += lo / first[1] * w
        if not valued:
            return None
        return BarIn(PORTFOLIO_SERIES, minute, 100.0 * close, 0, True, math.nan, 100.0 * high, 100.0 * low)

    def state(self) -> dict[str, Any]:
        """Plain values for the checkpoint (``torch.load(weights_only=True)`` takes nothing else)."""
        with self.lock:
            return {
                "weights": dict(self.weights),
                "base": {t: [m, c] for t, (m, c) in self.base.items()},
                "recent": {t: [list(e) for e in entries] for t, entries in self.recent.items()},
                "open": sorted(self.open),
                "decided": self.decided,
            }

    def restore(self, state: dict[str, Any] | None, now: float) -> bool:
        """Resume from :meth:`state`; False (nothing changed) when it was saved for other weights."""
        if not state or state.get("weights") != self.weights:
            return False
        with self.lock:
            self.base = {t: (int(m), float(c)) for t, (m, c) in state["base"].items()}
            self.recent = {t: [] for t in self.weights}
            for t, entries in state["recent"].items():
                self.recent[t] = [(int(m), float(c), float(h), float(lo)) for m, c, h, lo in entries]
            self.open = {int(m): now for m in state["open"]}
            self._oldest = min(self.open) if self.open else None
            self.decided = int(state["decided"])
            self._behind = None
        return True


def live_portfolio(settings: Settings) -> PortfolioValue | None:
    """The trainer's portfolio series from its settings; None (logged) when no weighted ticker is
    published."""
    try:
        return PortfolioValue(
            portfolio_weights(settings.trainer.weights, settings.common.tickers),
            clock_named(settings.session()),
        )
    except ValueError as error:
        logger.warning("no portfolio series: %s (PORTFOLIO_WEIGHTS, PORTFOLIO_TICKERS)", error)
        return None


def with_portfolio(value: PortfolioValue | None, bars: list[BarIn], now: float) -> list[BarIn]:
    """``bars`` with the portfolio's bars put where they became ready: after the bar that completed their
    minute. What the trainer's loop hands :meth:`Forecaster.step`."""
    if value is None:
        return bars
    out: list[BarIn] = []
    for bar in bars:
        out.append(bar)
        if bar.final:
            out.extend(value.add(bar, now))
    return out
