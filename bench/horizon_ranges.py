"""Research: variants of the range model against the EWMA baseline on a recording, per horizon, without the
LSTM, on the backtest's split (fitted on the first 80% of the cold start's 25%) with the portfolio series:
the components used, then the online recalibration (``range_recalibration.py``) with other steps and
profile weights. Per horizon: pooled coverage, Kupiec p (ranges h minutes apart for h > 1), interval score
over EWMA's with DM p, the lowest and highest coverage over the tickers and the 30-minute buckets; then the
portfolio's coverage and interval-score ratio.

    python -m bench.horizon_ranges ../shared/data/real-1m-2024-02-26_2024-03-22.csv.gz
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from services.scoring.range_score import score_ranges
from services.scoring.score import POOLED
from services.trainer.backtest import load_bars, normalized
from services.trainer.intervals.ewma_baseline import EwmaProfileBaseline
from services.trainer.intervals.horizon_ranges import COMPONENTS, RangeModel
from services.trainer.intervals.learnt_profile import PRIOR_WEIGHT
from services.trainer.intervals.range_grid import Grid, epoch_minutes, grid_of, portfolio_closes
from services.trainer.intervals.range_recalibration import GAMMA
from services.trainer.intervals.recalibrated_arrays import recalibrated_intervals
from shared.session import SessionClock, clock_for
from shared.settings import PORTFOLIO_SERIES

HORIZONS = (1, 5, 15, 30)
# A constant component was tried too (the first design): pooled coverage 79.0, 77.9, 77.4, 74.1% at
# 1, 5, 15, 30 minutes and 30-minute IS/EWMA 1.0001 (p 0.97) on the shared recording.
VARIANTS = {
    "all, fitted only": COMPONENTS,
    "returns only": ("fast", "slow", "long", "previous session"),
    "fast and long only": ("fast", "long"),
}


# (name, step of the quantile scale, the fitted profile's weight per bucket); 0 and NEVER switch one off.
NEVER = 1e18
RECALIBRATIONS = (
    ("recalibrated (the default)", GAMMA, PRIOR_WEIGHT),
    ("profile learnt only", 0.0, PRIOR_WEIGHT),
    ("quantile scale only", GAMMA, NEVER),
    ("scale step 0.001", 0.001, PRIOR_WEIGHT),
    ("scale step 0.005", 0.005, PRIOR_WEIGHT),
    ("scale step 0.02", 0.02, PRIOR_WEIGHT),
    ("profile weight 300", GAMMA, 300.0),
)


def _line(name: str, h: int, grid: Grid, test: slice, low: np.ndarray, high: np.ndarray,
          base: tuple[np.ndarray, np.ndarray], session: SessionClock) -> str:  # fmt: skip
    actual = grid.ahead(h)
    out = f"{name:28s} h={h:2d}"
    for series in (POOLED, PORTFOLIO_SERIES):
        cols = [
            j for j, t in enumerate(grid.tickers) if (t == PORTFOLIO_SERIES) == (series == PORTFOLIO_SERIES)
        ]
        c = (test, cols)
        names = [grid.tickers[j] for j in cols]
        score = score_ranges(h, grid.minutes[test] + h, grid.close[c], low[c], high[c], actual[c], names,
                             session, {"EWMA": (base[0][c], base[1][c])})  # fmt: skip
        ratio = score.versus["EWMA"]["interval_score"]
        share = score.coverage[series].share
        if series == PORTFOLIO_SERIES:
            out += f" | portfolio in {share:.3f} IS/EWMA {ratio.ratio:.4f}"
            continue
        kupiec = (score.kupiec_spaced if h > 1 else score.kupiec)[series][1]
        tickers = [v.share for t, v in score.coverage.items() if t != POOLED and v.share is not None]
        buckets = [v.share for v in score.buckets.values() if v.share is not None]
        out += f" | in {share:.3f} Kupiec p {kupiec:.2g} IS/EWMA {ratio.ratio:.4f} (p {ratio.dm_p:.1g})"
        out += f" tickers {min(tickers):.3f}-{max(tickers):.3f} buckets {min(buckets):.3f}-{max(buckets):.3f}"
    return out


def main(path: str, cold_fraction: float = 0.25) -> None:
    started = time.perf_counter()
    bars = load_bars(Path(path))
    session = clock_for(epoch_minutes(bars["ts"]))
    portfolio = portfolio_closes(bars, session).assign(final=True, rev=0)
    bars = normalized(pd.concat([bars, portfolio], ignore_index=True))
    grid = grid_of(bars, session)
    split = int(len(grid.minutes) * cold_fraction)
    train = slice(0, int(split * 0.8))
    test = slice(split, None)
    r, p, m = grid.returns, grid.ranges, grid.session_minute
    ewma = EwmaProfileBaseline.fit(r[train], m[train], HORIZONS, length=session.length)
    base = {h: ewma.predict_interval(grid.close, r, m, h) for h in HORIZONS}
    for variant, use in VARIANTS.items():
        model = RangeModel.fit(r[train], p[train], m[train], HORIZONS, use=use, session=session)
        for h in HORIZONS:
            low, high = model.predict_interval(grid.close, r, p, m, h)
            print(_line(variant, h, grid, test, low, high, base[h], session))
    model = RangeModel.fit(r[train], p[train], m[train], HORIZONS, session=session)
    for name, gamma, weight in RECALIBRATIONS:
        ranges = recalibrated_intervals(model, grid.minutes, grid.close, r, p, m, HORIZONS, gamma, weight)
        for h in HORIZONS:
            print(_line(name, h, grid, test, *ranges[h], base[h], session))
    print(f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1])
