"""Research: variants of the range model against both baselines on a recording, per horizon, without the
LSTM, on the backtest's split (fitted on the first 80% of the cold start's 25%) with the portfolio series.

    python -m bench.horizon_ranges ../shared/data/real-1m-2024-02-26_2024-03-22.csv.gz
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

from services.scoring.range_score import score_ranges
from services.scoring.score import POOLED
from services.trainer.backtest import load_bars, normalized
from services.trainer.intervals.ewma_baseline import EwmaProfileBaseline
from services.trainer.intervals.horizon_ranges import COMPONENTS, RangeModel
from services.trainer.intervals.range_grid import grid_of, portfolio_closes
from shared.settings import PORTFOLIO_SERIES

HORIZONS = (1, 5, 15, 30)
# A constant component was tried too (the first design): pooled coverage 79.0, 77.9, 77.4, 74.1% at
# 1, 5, 15, 30 minutes and 30-minute IS/EWMA 1.0001 (p 0.97) on the shared recording.
VARIANTS = {
    "all (the default)": COMPONENTS,
    "returns only": ("fast", "slow", "long", "previous session"),
    "fast and long only": ("fast", "long"),
}


def main(path: str, cold_fraction: float = 0.25) -> None:
    started = time.perf_counter()
    bars = load_bars(Path(path))
    bars = normalized(pd.concat([bars, portfolio_closes(bars).assign(final=True, rev=0)], ignore_index=True))
    grid = grid_of(bars)
    split = int(len(grid.minutes) * cold_fraction)
    train = slice(0, int(split * 0.8))
    test = slice(split, None)
    r, p, m = grid.returns, grid.ranges, grid.session_minute
    ewma = EwmaProfileBaseline.fit(r[train], m[train], HORIZONS)
    groups = {POOLED: [j for j, t in enumerate(grid.tickers) if t != PORTFOLIO_SERIES],
              PORTFOLIO_SERIES: [grid.tickers.index(PORTFOLIO_SERIES)]}  # fmt: skip
    for variant, use in VARIANTS.items():
        model = RangeModel.fit(r[train], p[train], m[train], HORIZONS, use=use)
        for h in HORIZONS:
            actual = grid.ahead(h)
            low, high = model.predict_interval(grid.close, r, p, m, h)
            b_low, b_high = ewma.predict_interval(grid.close, r, m, h)
            line = f"{variant:26s} h={h:2d}"
            for name, cols in groups.items():
                c = (test, cols)
                names = [grid.tickers[j] for j in cols]
                base = {"EWMA": (b_low[c], b_high[c])}
                score = score_ranges(h, grid.minutes[test] + h, grid.close[c], low[c], high[c], actual[c],
                                     names, base)  # fmt: skip
                key = POOLED if name == POOLED else PORTFOLIO_SERIES
                ratio = score.versus["EWMA"]["interval_score"]
                share = score.coverage[key].share
                line += f" | {name[:4]} in {share:.3f} IS/EWMA {ratio.ratio:.4f} p {ratio.dm_p:.2g}"
            print(line)
    print(f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1])
