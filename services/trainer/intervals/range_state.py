"""The range model live: fitted on the cold start's training part, its components carried per ticker from
final bar to final bar, the ranges of every horizon for many tickers at once. No I/O.

Each final bar folds into its ticker's row of the component arrays (a handful of float operations: the
recursions of :meth:`RangeModel.components`, one step); a provisional bar is not folded, so a revision is
never counted twice. A minute's ranges for all its fresh tickers and horizons are one matrix product.
Tickers the model was not fitted on get no range (until the next cold start).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from services.trainer.intervals.horizon_ranges import (
    FAST,
    LONG,
    RANGE,
    RANGE_SLOW,
    SLOW,
    RangeModel,
    no_pause,
)
from services.trainer.intervals.range_recalibration import Recalibration
from shared.session import XNYS, SessionClock, clock_named

# Of the cold start's history: the share the range model is fitted on (the trainer's 8:2 split).
TRAIN_SHARE = 0.8


# A ticker's carried row: the components (as COMPONENTS orders them), then the session's running sum and
# count of d², the minute, session minute and close of the last folded bar.
_FAST, _SLOW, _LONG, _RANGE, _RANGE_SLOW, _PREVIOUS, _SUM, _COUNT, _MINUTE, _SESSION, _CLOSE = range(11)
_EMPTY = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, -1e18, 0.0, math.nan)


@dataclass
class RangeState:
    """Per ticker a row of Python floats: a fold is a few scalar operations (numpy's per-call overhead on
    rows of three made it 12 us a bar), and a minute's ranges one array built from the rows."""

    model: RangeModel
    column: dict[str, int]  # ticker -> its column of the model's per-ticker scales
    rows: list[list[float]] = field(init=False)

    def __post_init__(self) -> None:
        self.rows = [list(_EMPTY) for _ in self.column]
        self._scale = self.model.scale.tolist()
        self._range_scale = self.model.range_scale.tolist()
        self._session = self.model.session
        # The profiles as completed sessions update them, and the quantile scales per ticker and horizon.
        self.recalibration = Recalibration(self.model, len(self.column))

    def state(self) -> dict[str, Any]:
        """Plain values (a checkpoint's): the fitted model and every ticker's carried row, so a restart goes
        on with the very ranges an uninterrupted trainer gives (a refit on the series held at the restart
        would be fitted on other minutes)."""
        m = self.model
        return {
            "scale": m.scale.tolist(),
            "range_scale": m.range_scale.tolist(),
            "profile": m.profile.tolist(),
            "range_profile": m.range_profile.tolist(),
            "weights": {h: w.tolist() for h, w in m.weights.items()},
            "quantiles": {h: q.tolist() for h, q in m.quantiles.items()},
            "probs": list(m.probs),
            "session": m.session.name,
            "column": dict(self.column),
            "rows": [list(row) for row in self.rows],
            "recalibration": self.recalibration.state(),
        }

    @classmethod
    def from_state(cls, saved: Mapping[str, Any]) -> RangeState:
        model = RangeModel(
            scale=np.asarray(saved["scale"], np.float64),
            range_scale=np.asarray(saved["range_scale"], np.float64),
            profile=np.asarray(saved["profile"], np.float64),
            range_profile=np.asarray(saved["range_profile"], np.float64),
            weights={int(h): np.asarray(w, np.float64) for h, w in saved["weights"].items()},
            quantiles={int(h): np.asarray(q, np.float64) for h, q in saved["quantiles"].items()},
            probs=tuple(float(p) for p in saved["probs"]),
            # States saved before the session was a setting were fitted on New York's clock.
            session=clock_named(str(saved.get("session", XNYS.name))),
        )
        state = cls(model, {str(t): int(i) for t, i in saved["column"].items()})
        state.rows = [[float(v) for v in row] for row in saved["rows"]]
        if "recalibration" in saved:  # absent in checkpoints written before: it starts afresh
            state.recalibration.restore(saved["recalibration"])
        return state

    def last_folded(self, ticker: str) -> float:
        """The minute of the ticker's last folded bar (-1e18 before any)."""
        i = self.column.get(ticker)
        return -1e18 if i is None else self.rows[i][_MINUTE]

    def fold(self, ticker: str, minute: int, close: float, variance: float = math.nan) -> None:
        """Fold a final bar and its Parkinson ``variance`` (NaN: unknown); a bar not after the ticker's
        last folded one is ignored."""
        i = self.column.get(ticker)
        if i is None:
            return
        row = self.rows[i]
        if minute <= row[_MINUTE]:
            return
        m = self._session.minute_at(minute)
        length = self._session.length
        recalibration = self.recalibration
        recalibration.begin(minute - m)
        raw_d2 = raw_range = math.nan  # before de-seasoning: what the profiles learn from
        if (minute - row[_MINUTE] > length or m <= row[_SESSION]) and row[_COUNT] > 0:
            row[_PREVIOUS] = row[_SUM] / row[_COUNT]
            row[_SUM] = row[_COUNT] = 0.0
        if minute == row[_MINUTE] + 1 and 0 < m < length and close > 0:
            r = math.log(close / row[_CLOSE]) / self._scale[i]
            raw_d2 = r * r
            d2 = raw_d2 / recalibration.profile[m]
            if math.isfinite(d2):
                for k, decay in ((_FAST, FAST), (_SLOW, SLOW), (_LONG, LONG)):
                    row[k] = decay * row[k] + (1 - decay) * d2
                row[_SUM] += d2
                row[_COUNT] += 1
        if 0 <= m < length:
            raw_range = variance / self._range_scale[i]
            pr = raw_range / recalibration.range_profile[m]
            if math.isfinite(pr):
                row[_RANGE] = RANGE * row[_RANGE] + (1 - RANGE) * pr
                row[_RANGE_SLOW] = RANGE_SLOW * row[_RANGE_SLOW] + (1 - RANGE_SLOW) * pr
            recalibration.observe(minute - m, m, raw_d2, raw_range)
        row[_MINUTE], row[_SESSION], row[_CLOSE] = minute, m, close
        recalibration.settle(i, minute, m, close, row[:_SUM], self._scale[i])

    def bounds(
        self,
        tickers: Sequence[str],
        centre: np.ndarray,
        session: np.ndarray,
        horizons: Iterable[int],
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per horizon, (q10, q90) of the close h minutes after a bar at minute ``session[i]`` of the
        session, around ``centre[i]`` for each ticker; NaN where there is none (no model column, past the
        close)."""
        rows = np.array([self.column.get(t, -1) for t in tickers], np.int64)
        at = np.maximum(rows, 0).tolist()
        x = np.fromiter(chain.from_iterable(self.rows[i][:_SUM] for i in at), np.float64, len(at) * _SUM)
        x = x.reshape(len(at), _SUM)
        session = np.asarray(session, np.int64)
        scale = self.model.scale[at]
        # Σ_{k=1..h} profile(m + k) = cum[m + h + 1] - cum[m + 1] (indices clipped; those rows are masked).
        cum = np.array(self.recalibration.cum)
        out = {}
        for h in horizons:
            if h not in self.model.weights:
                continue
            level = np.maximum(x @ self.model.weights[h], 1e-12)
            ahead = (
                cum[np.clip(session + h + 1, 0, len(cum) - 1)] - cum[np.clip(session + 1, 0, len(cum) - 1)]
            )
            valid = (rows >= 0) & (session + h < self._session.length) & (session >= 0)
            sigma = np.where(valid, np.sqrt(np.where(valid, level * ahead, 1.0)) * scale, np.nan)
            q = self.model.quantiles[h]
            sigma = sigma * self.recalibration.factors(at, h, session.tolist())
            out[h] = (centre * np.exp(q[0] * sigma), centre * np.exp(q[-1] * sigma))
        return out


def fit_state(
    series: Mapping[str, tuple[np.ndarray, np.ndarray]],
    ranges: Mapping[str, Mapping[int, float]],
    horizons: Sequence[int],
    session: SessionClock,
    pause: Callable[[], None] = no_pause,
) -> RangeState | None:
    """The range model fitted on the first :data:`TRAIN_SHARE` of the tickers' grid (``series``: each
    ticker's minutes and closes) by the ``session`` clock, its state folded through every bar (a bar's
    Parkinson variance from ``ranges[ticker][minute]`` where known). ``pause()`` is called between steps
    (see ``fit_weights``)."""
    tickers = sorted(series)
    arrays = {t: series[t] for t in tickers}
    minutes = np.unique(np.concatenate([m for m, _ in arrays.values()])) if tickers else np.zeros(0)
    if len(minutes) < 4 * max(horizons):  # too short to see the longest horizon's returns
        return None
    close = np.full((len(minutes), len(tickers)), np.nan)
    pk = np.full(close.shape, np.nan)
    present = np.zeros(close.shape, bool)
    for j, t in enumerate(tickers):
        m, c = arrays[t]
        at = np.searchsorted(minutes, m)
        close[at, j] = c
        present[at, j] = True
        known = ranges.get(t, {})
        pk[at, j] = [known.get(int(k), math.nan) for k in m]
    sessions = session.minute_of(minutes)
    returns = np.full(close.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        returns[1:] = np.log(close[1:] / close[:-1])
    returns[~np.concatenate([[False], (np.diff(minutes) == 1) & (sessions[1:] > 0)])] = np.nan
    split = int(len(minutes) * TRAIN_SHARE)
    try:
        model = RangeModel.fit(
            returns[:split], pk[:split], sessions[:split], tuple(horizons), session=session, pause=pause
        )
    except (ValueError, np.linalg.LinAlgError):
        return None
    state = RangeState(model, {t: j for j, t in enumerate(tickers)})
    # Minute by minute, every ticker's bar of a minute before the next minute's, as bars come live: the
    # profile learns a session's bars only while that session is the latest begun (a fold ticker by ticker
    # left it the first ticker's sessions and the last one of the rest).
    for row in range(len(minutes)):
        pause()  # the fold is Python, bar by bar: it holds the interpreter
        for j, t in enumerate(tickers):
            if present[row, j]:
                state.fold(t, int(minutes[row]), float(close[row, j]), float(pk[row, j]))
    return state
