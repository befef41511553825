"""The forecaster's minute at 500 tickers with ranges at every horizon, in process (issue 18).

    python -m bench.bench_horizons

A tiny network cold-started on 200 minutes of random walks (with highs and lows, so the range model has
its bars' ranges), then 40 minutes of bars through :meth:`Forecaster.step` (the live loop's call): the
median seconds per minute (wall and CPU) with ``horizons`` (1, 5, 15, 30) and with (1,) only (the same
work but the longer horizons' ranges and forecasts).
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

import numpy as np

from services.trainer.forecaster.core import Forecaster
from services.trainer.forecaster.records import BarIn
from services.trainer.model.network import set_threads
from services.trainer.model.series import to_minute
from tests.unit.trainer.synthetic import tiny_config

OPEN = to_minute(datetime(2026, 1, 5, 14, 30, tzinfo=UTC))


def minute_cost(
    horizons: tuple[int, ...], tickers: int = 500, history: int = 200, rounds: int = 40
) -> tuple[float, float]:
    """(wall, CPU) seconds of a minute, medians: the process's CPU time is less at the mercy of whatever else
    the machine runs."""
    rng = np.random.default_rng(0)
    closes = 100 * np.exp(np.cumsum(1e-3 * rng.standard_normal((history + rounds, tickers)), axis=0))
    forecaster = Forecaster(tiny_config(max_epochs=1, update_steps=0, window=10, horizons=horizons))
    for k in range(history):
        for j in range(tickers):
            c = float(closes[k, j])
            forecaster.ingest(f"T{j}", OPEN + k, c, high=c * 1.001, low=c)
    forecaster.train_cycle()
    times, cpu = [], []
    for k in range(history, history + rounds):
        bars = [BarIn(f"T{j}", OPEN + k, c, high=c * 1.001, low=c) for j, c in enumerate(closes[k].tolist())]
        started, started_cpu = time.perf_counter(), time.process_time()
        forecaster.step(bars)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(times[5:]), statistics.median(cpu[5:])


def main() -> None:
    set_threads(1)
    for horizons in ((1, 5, 15, 30), (1,)):
        wall, cpu = minute_cost(horizons)
        print(
            f"horizons {horizons}: {wall * 1e3:.1f} ms a minute at 500 tickers"
            f" (median; {cpu * 1e3:.1f} ms CPU)"
        )


if __name__ == "__main__":
    main()
