"""Research: the range model's coverage on the synthetic market under each session clock, in one run (the
clock the synthetic source defaults to, ``24h``, against New York's, ``XNYS``).

    python -m bench.synthetic_ranges --hours 30 --tickers AAPL,MSFT,NVDA --epochs 3

The market's last ``--hours`` before ``--until`` (seed ``--seed``) as the producer fetches it, backtested by
the trainer's own code (cold start on the first quarter); per clock and horizon the share of closes inside
the ranges, the forecasts scored and the median width relative to the close.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import pandas as pd

from services.producer.sources.synthetic import SyntheticSource
from services.trainer.backtest import normalized, run_backtest
from services.trainer.forecaster.records import Config
from shared.session import CLOCKS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=30.0)
    parser.add_argument("--tickers", default="AAPL,MSFT,NVDA")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--until", default="2026-12-04T06:00:00+00:00")
    args = parser.parse_args()
    until = datetime.fromisoformat(args.until).astimezone(UTC)
    source = SyntheticSource(args.tickers.split(","), args.seed)
    bars = source.fetch(until - timedelta(hours=args.hours), until).bars
    bars = normalized(bars[bars["ts"] < until])
    closes = bars[["ticker", "ts", "close"]].rename(columns={"close": "actual"})
    for name in ("24h", "XNYS"):
        started = time.perf_counter()
        result = run_backtest(bars, Config(max_epochs=args.epochs, session=CLOCKS[name]), 0.25)
        scored = result.predictions.merge(closes, on=["ticker", "ts"]).dropna(subset=["q10", "q90"])
        scored = scored[scored["ts"] >= pd.Timestamp(result.boundary * 60, unit="s", tz="UTC")]
        line = []
        for h, g in scored.groupby("horizon_min"):
            inside = float(((g["actual"] >= g["q10"]) & (g["actual"] <= g["q90"])).mean())
            width = float(((g["q90"] - g["q10"]) / g["actual"]).median())
            line.append(f"{h} min {inside:.1%} (n={len(g)}, median width {width:.2%})")
        print(f"{name:4s} {' | '.join(line)}  [{time.perf_counter() - started:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
