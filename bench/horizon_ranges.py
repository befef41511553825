"""Research: the range model against both baselines on a recording, per horizon, without the LSTM.

python -m bench.horizon_ranges ../shared/data/real-1m-2024-02-26_2024-03-22.csv.gz
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from services.scoring.range_score import score_ranges
from services.scoring.score import POOLED
from services.trainer.backtest import load_bars
from services.trainer.intervals.ewma_baseline import EwmaProfileBaseline
from services.trainer.intervals.horizon_ranges import COMPONENTS, RangeModel
from services.trainer.intervals.mcs_garch import McsGarchBaseline
from services.trainer.intervals.range_grid import grid_of

HORIZONS = (1, 5, 15, 30)


def main(path: str, cold_fraction: float = 0.25) -> None:
    started = time.perf_counter()
    grid = grid_of(load_bars(Path(path)))
    split = int(len(grid.minutes) * cold_fraction)
    train = slice(0, split)
    r, p, m = grid.returns, grid.ranges, grid.session_minute
    model = RangeModel.fit(r[train], p[train], m[train], HORIZONS)
    ewma = EwmaProfileBaseline.fit(r[train], m[train], HORIZONS)
    garch = McsGarchBaseline.fit(r[train], m[train], HORIZONS)
    fitted = time.perf_counter() - started
    print(f"fitted in {fitted:.1f} s; EWMA decay {ewma.decay}, GARCH a+b {garch.persistence:.4f}")
    for h in HORIZONS:
        print(
            h,
            dict(zip(COMPONENTS, np.round(model.weights[h], 4), strict=True)),
            np.round(model.quantiles[h], 3),
        )
        actual = grid.ahead(h)
        ranges = {
            "model": model.predict_interval(grid.close, r, p, m, h),
            "EWMA": ewma.predict_interval(grid.close, r, m, h),
            "GARCH": garch.predict_interval(grid.close, r, m, h),
        }
        test = slice(split, None)
        low, high = ranges.pop("model")
        score = score_ranges(
            h,
            grid.minutes[test] + h,
            grid.close[test],
            low[test],
            high[test],
            actual[test],
            grid.tickers,
            {k: (lo[test], hi[test]) for k, (lo, hi) in ranges.items()},
        )
        c = score.coverage[POOLED]
        line = f"h={h:2d} n={c.n} cover {c.inside / c.n:.4f} kupiec p {score.kupiec[POOLED][1]:.3f}"
        for name, (lo, hi) in ranges.items():
            inside = ((actual[test] >= lo[test]) & (actual[test] <= hi[test]))[
                np.isfinite(actual[test] + lo[test])
            ]
            line += f" {name} cover {inside.mean():.4f}"
        for name, v in score.versus.items():
            ratio = v["interval_score"]
            line += f" | IS/{name} {ratio.ratio:.4f} p {ratio.dm_p:.3g}"
        print(line)
    print(f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main(*sys.argv[1:2])
