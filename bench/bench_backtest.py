"""Backtest benchmark (issue 11): ``portfolio backtest``'s own work on 10 tickers x 20 sessions (78,000 bars).

The recording is the shared real one when ``../shared/data/`` has it (``--file`` to choose another),
otherwise a synthetic one of the same shape (random walks with a weak cycle, 390 minutes a session,
nights cut). Baseline in the same run: the naive forecaster over the same bars (the I/O and bookkeeping
floor: reading, ordering, scoring, no network). Goal: <= 180 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from services.scoring.score import POOLED
from services.scoring.tables import rows_from_frames
from services.trainer.backtest import load_bars, run_backtest
from services.trainer.forecaster.records import Config
from services.trainer.model.network import set_threads

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-1m-2024-02-26_2024-03-22.csv.gz"


def synthetic_recording(tickers: int, sessions: int) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    first = pd.Timestamp("2024-02-26T14:30:00Z")
    frames = []
    for s in range(sessions):
        minutes = first + pd.Timedelta(days=s + 2 * (s // 5)) + pd.to_timedelta(np.arange(390), unit="min")
        for j in range(tickers):
            returns = 0.001 * rng.standard_normal(390) + 0.0003 * np.sin(np.arange(390) / 6 + j)
            close = (20 + 30 * j) * np.exp(np.cumsum(returns))
            frames.append(pd.DataFrame({"ticker": f"T{j:02d}", "ts": minutes, "open": close, "high": close,
                                        "low": close, "close": close, "volume": 100}))  # fmt: skip
    return pd.concat(frames).sort_values(["ts", "ticker"]).reset_index(drop=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_backtest")
    parser.add_argument("--file", type=Path, default=REAL if REAL.is_file() else None)
    parser.add_argument("--quick", action="store_true", help="2 sessions, 3 tickers")
    # One intra-op thread by default: on 2 cores shared with other work, two threads contend with it and the
    # same run took 145-380 s (30-58 s on one thread); 0 = one per core.
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)
    if args.quick:
        bars, source = synthetic_recording(3, 2), "synthetic, quick"
    elif args.file is not None:
        bars, source = load_bars(args.file), str(args.file.name)
    else:
        bars, source = synthetic_recording(10, 20), "synthetic"
    started = time.perf_counter()
    result = run_backtest(bars, Config())
    rows = rows_from_frames(result.closes, result.predictions, every_lineage=True)
    seconds = time.perf_counter() - started
    naive_started = time.perf_counter()
    naive = run_backtest(bars, Config(max_epochs=1, update_steps=0, min_history=10**9))
    rows_from_frames(naive.closes, naive.predictions, every_lineage=True)
    naive_seconds = time.perf_counter() - naive_started
    pooled = {r["forecaster"]: r for r in rows if r["ticker"] == POOLED}
    figures = {
        "bars": len(bars),
        "backtest_seconds": round(seconds, 1),
        "cold_start_seconds": round(result.cold_seconds, 1),
        "walk_forward_seconds": round(result.walk_seconds, 1),
        "model_mse_ratio": pooled.get("model", {}).get("mse_ratio"),
        "model_dm_p": pooled.get("model", {}).get("dm_p"),
        "model_coverage": pooled.get("model", {}).get("coverage"),
        "ar_mse_ratio": pooled.get("AR", {}).get("mse_ratio"),
    }
    out = {
        "name": "backtest",
        "figures": figures,
        "baselines": {"naive_only_seconds": round(naive_seconds, 1)},
        "ratios": {"backtest_over_goal_180s": round(seconds / 180, 2)},
        "notes": f"{source}; torch threads {threads}; default model settings; goal <= 180 s on 2 cores.",
    }
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
