"""The live 80% interval's σ̂ for every ticker of a minute (issue 12): the running state
(``services/trainer/intervals/running_sigma.py``: one update per ticker) against the tail form it replaced
(``interval_rows.bounds_rows``: each ticker's last 400 points regularized and weighted every minute), same
bars, same run. No broker: this is the forecaster's ``_intervals`` step alone.

Each round gives every ticker a new final bar (a few after forward-filled minutes), then times both forms
for all tickers, in alternating order. Also timed: the first minute of a new table (every ticker rebuilt
from its tail, as after a cold start or a restore), and a provisional minute (evaluated, not stored).

Run: ``.venv/bin/python -m bench.bench_intervals [--quick] [--tickers 2000] [--rounds 30]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np

from services.trainer.intervals.calibration import Calibration
from services.trainer.intervals.interval_rows import bounds_rows, close_bounds
from services.trainer.intervals.running_sigma import RunningSigma
from services.trainer.intervals.volatility import IntervalModel, VolatilityModel
from services.trainer.model.series import TickerSeries, to_minute

FFILL = 5
HISTORY = 400  # points held per ticker (the tail form reads 400)


def _calibration(rng: np.random.Generator) -> Calibration:
    returns = 0.001 * rng.standard_t(4, (20_000, 1))
    minute = np.arange(20_000) % 390
    vol = VolatilityModel.fit(returns, minute)
    return Calibration({}, vol, IntervalModel((0.1, 0.9), np.array([[-1.3, 1.3]])))


def _ms(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return (time.perf_counter() - start) * 1000, out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench_intervals", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer tickers and rounds")
    parser.add_argument("--tickers", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    tickers, rounds = (200, 5) if args.quick else (args.tickers, args.rounds)

    rng = np.random.default_rng(5)
    cal = _calibration(rng)
    names = [f"T{i}" for i in range(tickers)]
    scales = 0.0005 + 0.001 * rng.random(tickers)
    start = to_minute(datetime(2026, 3, 2, 14, 30, tzinfo=UTC))
    series = [TickerSeries(HISTORY) for _ in names]
    minutes = np.full(tickers, start)
    closes = 100 * np.exp(0.01 * rng.standard_normal(tickers))

    def advance() -> None:
        # Mostly the next minute; one bar in 20 after filled minutes (the series policy's fill).
        nonlocal closes
        steps = np.where(rng.random(tickers) < 0.05, rng.integers(2, FFILL + 2, tickers), 1)
        minutes[:] += steps
        closes = closes * np.exp(scales * rng.standard_normal(tickers))
        for s, m, c in zip(series, minutes.tolist(), closes.tolist(), strict=True):
            s.add(m, c)

    for _ in range(HISTORY):
        advance()
    running = RunningSigma(cal, FFILL)

    def run_running(finals: list[bool]) -> list[tuple[float, float] | None]:
        sigma = running.sigmas(names, series, scales, finals)
        last = np.array([s.closes[-1] for s in series])
        return close_bounds(cal, last, sigma, last * 1.0001)

    def run_tail() -> list[tuple[float, float] | None]:
        last = np.array([s.closes[-1] for s in series])
        return bounds_rows(cal, series, scales, last * 1.0001, FFILL)

    finals = [True] * tickers
    run_running(finals)  # the table's first minute: every ticker built from its tail (timed below, warm)
    ours, tail, gap = [], [], 0.0
    for r in range(rounds):
        advance()
        if r % 2:
            t_ms, t_out = _ms(run_tail)
            o_ms, o_out = _ms(lambda: run_running(finals))
        else:
            o_ms, o_out = _ms(lambda: run_running(finals))
            t_ms, t_out = _ms(run_tail)
        ours.append(o_ms)
        tail.append(t_ms)
        gap = max(gap, *(abs(o[1] / t[1] - 1) for o, t in zip(o_out, t_out, strict=True) if o and t))
    advance()  # a bar the running state is told is provisional: stepped, not stored
    provisional_ms, _ = _ms(lambda: run_running([False] * tickers))
    running = RunningSigma(cal, FFILL)  # a new calibration (a cold start, a restore): all rebuilt
    rebuild_ms, _ = _ms(lambda: run_running(finals))

    ours_med, tail_med = statistics.median(ours), statistics.median(tail)
    figures = {
        f"running_ms_median_{tickers}_tickers": round(ours_med, 2),
        f"running_ms_p99_{tickers}_tickers": round(float(np.percentile(ours, 99)), 2),
        "provisional_minute_ms": round(provisional_ms, 2),
        "new_table_minute_ms": round(rebuild_ms, 2),
        "max_relative_gap_of_q90": float(f"{gap:.2g}"),
    }
    baselines = {
        f"tail_form_ms_median_{tickers}_tickers": round(tail_med, 2),
        f"tail_form_ms_p99_{tickers}_tickers": round(float(np.percentile(tail, 99)), 2),
    }
    ratios = {"tail_form_over_running": round(tail_med / ours_med, 1)}
    notes = (
        f"{tickers} tickers x {HISTORY} points, {rounds} live minutes (a final bar per ticker, 5% after "
        "filled minutes), both forms on the same bars, alternating order; the gap is the running state's "
        "infinite memory against the tail's 400 points."
    )
    ours_p99, tail_p99 = np.percentile(ours, 99), np.percentile(tail, 99)
    print(f"running σ̂ + bounds : median {ours_med:8.2f} ms  p99 {ours_p99:8.2f} ms")
    print(f"tail form (before) : median {tail_med:8.2f} ms  p99 {tail_p99:8.2f} ms")
    print(f"ratio              : {tail_med / ours_med:8.1f}x   ({tickers} tickers, {rounds} minutes)")
    print(f"new table (all rebuilt): {rebuild_ms:.2f} ms; provisional minute: {provisional_ms:.2f} ms")
    print(f"largest relative gap of q90, running vs tail form: {gap:.2g}")
    return {"name": "intervals", "figures": figures, "baselines": baselines, "ratios": ratios, "notes": notes}


if __name__ == "__main__":
    main()
