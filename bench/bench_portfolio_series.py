"""The live portfolio series' in-process cost per minute (issue 18): the trainer's step of a minute's bars
with the portfolio's bar built and forecast (``portfolio_value.py``) against the same step without it, two
forecasters with the same weights and history, timed alternately in the same run; and the builder alone.

    PYTHONPATH=$PWD .venv/bin/python -m bench.bench_portfolio_series --tickers 500 --rounds 60
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from typing import Any

import numpy as np

from bench.bench_trainer import synthetic_closes
from services.trainer.forecaster.core import Forecaster
from services.trainer.forecaster.portfolio_value import PortfolioValue, portfolio_weights, with_portfolio
from services.trainer.forecaster.records import BarIn, Config
from services.trainer.model.network import set_threads
from services.trainer.model.windows import input_length
from shared.settings import PORTFOLIO_SERIES

OPEN = 29_522_310  # 09:30 New York on Tuesday 2026-02-17: the session holds the whole run


def minute_bars(names: list[str], closes: dict[str, np.ndarray], k: int) -> list[BarIn]:
    return [
        BarIn(
            t,
            OPEN + k,
            float(closes[t][k]),
            0,
            True,
            math.nan,
            float(closes[t][k]) * 1.001,
            float(closes[t][k]),
        )
        for t in names
    ]


def run(tickers: int, rounds: int, threads: int) -> dict[str, Any]:
    set_threads(threads)
    config = Config(max_epochs=1, update_steps=0)
    names = [f"T{i}" for i in range(tickers)]
    history = 5 * input_length(config.window, config.target) + 10
    closes = {t: synthetic_closes(history + rounds, seed=i) for i, t in enumerate(names)}
    plain, with_value = Forecaster(config, seed=0), Forecaster(config, seed=0)
    value = with_value.portfolio_value = PortfolioValue(portfolio_weights({}, names), config.session)
    for k in range(history):
        bars = minute_bars(names, closes, k)
        for f, mixed in ((plain, bars), (with_value, with_portfolio(value, bars, 0.0))):
            for b in mixed:
                f.ingest(b.ticker, b.minute, b.close, high=b.high, low=b.low)
    for f in (plain, with_value):
        assert f.train_cycle().cold_start is not None
    step: dict[str, list[float]] = {"without": [], "with": []}
    build: list[float] = []
    for r in range(rounds):
        bars = minute_bars(names, closes, history + r)
        order = (
            (("without", plain), ("with", with_value))
            if r % 2
            else (("with", with_value), ("without", plain))
        )
        for name, f in order:
            started = time.perf_counter()
            if name == "with":
                mixed = with_portfolio(value, bars, time.monotonic())
                build.append(time.perf_counter() - started)
                out = f.step(mixed, score=False)
                assert any(fc.ticker == PORTFOLIO_SERIES for fc in out)
            else:
                f.step(bars, score=False)
            step[name].append(time.perf_counter() - started)
    medians = {k: statistics.median(v) for k, v in step.items()}
    return {
        "tickers": tickers,
        "rounds": rounds,
        "step_without_portfolio_median_ms": round(1000 * medians["without"], 3),
        "step_with_portfolio_median_ms": round(1000 * medians["with"], 3),
        "added_median_ms": round(1000 * (medians["with"] - medians["without"]), 3),
        "ratio": round(medians["with"] / medians["without"], 4),
        "builder_alone_median_ms": round(1000 * statistics.median(build), 3),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tickers", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args(argv)
    result = run(args.tickers, args.rounds, args.torch_threads)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
