"""Trainer benchmarks (issues 5 and 12): cold training vs the original recipe, one cycle at scale, the
forecast of a bar from carried state vs a full-window pass, latency through the broker, memory.

1. Cold training of one stock on 20 trading days of 1-minute bars (synthetic: a random walk with a weak
   learnable cycle): the original recipe (price target, MinMax, 100 epochs, batch 32, no early stopping)
   and the windows recipe before chunks (returns, early stopping on the 20% part, batch 256) against ours
   (the same on chunks), same data, same run (``bench/original_training.py`` holds the two baselines).
2. One cycle (a new bar per ticker, forecast all, warm update) for 10/100/500/2,000 tickers.
3. Bar arrival -> prediction publication at 500 and 2,000 tickers through the real broker, the trainer
   running as its own process (the bar's broker append time to the prediction's CreateTime, and from the
   bar's produce() call; needs the local stack), beside
   4. the forecast itself, in process: one carried-state step for every ticker vs the full-window pass
   over the same tickers with the same weights (the design before issue 12), same run.
5. Resident memory of a forecaster holding 2,000 tickers x 3,000 minutes, states primed.

``--quick`` shrinks everything (the original recipe runs 1 epoch and its time is extrapolated to 100).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import torch

from bench.original_training import fit_windows
from services.scoring.score import Score
from services.trainer.forecaster.core import Forecaster
from services.trainer.forecaster.records import Config
from services.trainer.model.chunks import predict_windows
from services.trainer.model.network import ForecastLSTM, predict, set_threads
from services.trainer.model.training import fit, make_optimizer
from services.trainer.model.windows import prepare, to_price

START = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def synthetic_closes(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = 0.0008 * rng.standard_normal(n) + 0.0004 * np.sin(np.arange(n) * 2 * np.pi / 15)
    return 100 * np.exp(np.cumsum(r))


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99))


def warm_up_torch() -> None:
    """The first backward pass in a process pays thread-pool and kernel set-up: keep it out of timings."""
    model = ForecastLSTM(1, 50, 4)
    model(torch.zeros(32, 60, 1)).sum().backward()


def cold_training(minutes: int, original_epochs: int, our_max_epochs: int) -> dict[str, float]:
    """Three recipes on the same closes, scored on the same hold-out as served (carried context, chunks.py):
    the original (price target, 100 epochs, batch 32), the windows recipe before chunks (returns, early
    stopping, 8,192 windows an epoch) and ours (the same on chunks, the trainer's own ``fit``)."""
    warm_up_torch()
    closes = synthetic_closes(minutes, seed=5)[:, None]
    out: dict[str, float] = {}
    for name, target, epochs, patience, batch in (
        ("original", "price", original_epochs, None, 32),
        ("windows", "return", our_max_epochs, 5, 256),
        ("ours", "return", our_max_epochs, 5, 256),
    ):
        prepared = prepare([closes], 60, target)  # type: ignore[arg-type]
        assert prepared is not None
        torch.manual_seed(0)
        model = ForecastLSTM(1, 50, 4)
        optimizer = make_optimizer(model, 1e-3)
        train, h = prepared.train, prepared.holdout
        if name == "ours":
            report = fit(model, optimizer, train, h, window=60, max_epochs=epochs, patience=patience,
                         batch_size=batch, epoch_windows=Config().epoch_windows)  # fmt: skip
        else:
            report = fit_windows(model, optimizer, (train.x, train.y), (h.x, h.y), max_epochs=epochs,
                                 patience=patience, batch_size=batch,
                                 epoch_windows=None if name == "original" else 8_192)  # fmt: skip
        score = Score()
        score.add(h.last, to_price(predict_windows(model, h, 60), h.last, prepared.scalers), h.actual)
        seconds = report.seconds * (100 / epochs if name == "original" else 1)
        out[f"{name}_seconds"] = round(seconds, 2)
        out[f"{name}_epochs_run"] = report.epochs
        out[f"{name}_holdout_mse_ratio"] = round(score.mse_ratio or float("nan"), 4)
    return out


def cycles(tickers: int, rounds: int) -> list[float]:
    # A warm update in every cycle (the cycle; off by default, every 10 minutes when on).
    config = Config(max_epochs=1, epoch_windows=512, history=400, update_steps=2, update_every=1)
    forecaster = Forecaster(config)
    names = [f"T{i}" for i in range(tickers)]
    history = 62 * 5 + 10
    closes = {t: synthetic_closes(history + rounds, seed=i) for i, t in enumerate(names)}
    for t in names:
        for m in range(history):
            forecaster.ingest(t, m, float(closes[t][m]))
    forecaster.train_cycle()  # a token cold start: the timing below is of steady-state cycles
    times = []
    for r in range(rounds):
        started = time.perf_counter()
        for t in names:
            forecaster.ingest(t, history + r, float(closes[t][history + r]))
        forecaster.forecast(names)
        forecaster.train_cycle()
        times.append(time.perf_counter() - started)
    return times


def forecast_cost(tickers: int, rounds: int) -> tuple[list[float], list[float]]:
    """Seconds to forecast one new bar for every ticker: carried state (``Forecaster.step``) and the
    full-window pass (every ticker's last 61 closes through the network, as before issue 12)."""
    from services.trainer.forecaster.records import BarIn
    from services.trainer.model.windows import scale

    forecaster = Forecaster(Config(max_epochs=1, epoch_windows=512, history=400))
    names = [f"T{i}" for i in range(tickers)]
    history = 62 * 5 + 10
    closes = {t: synthetic_closes(history + rounds, seed=i) for i, t in enumerate(names)}
    for t in names:  # history as loaded from MongoDB at start (not forecast minute by minute)
        for m in range(history):
            forecaster.ingest(t, m, float(closes[t][m]))
    forecaster.train_cycle()
    forecaster.forecast(names)  # states primed
    carried, full = [], []
    model = forecaster.model
    assert model is not None
    for r in range(rounds):
        bars = [BarIn(t, history + r, float(closes[t][history + r])) for t in names]
        started = time.perf_counter()
        forecaster.step(bars)
        carried.append(time.perf_counter() - started)
        started = time.perf_counter()
        tails = [forecaster.series[t].tail(61, 5) for t in names]
        windows = [
            scale(tail[:, None], [forecaster.scalers[t]])
            for t, tail in zip(names, tails, strict=True)
            if tail is not None
        ]
        predict(model, np.stack(windows))
        full.append(time.perf_counter() - started)
    return carried, full


def resident_memory(tickers: int, minutes: int) -> dict[str, float]:
    """MiB resident in a fresh process (``--memory-child``): torch and the trainer loaded, then a forecaster
    holding ``tickers`` x ``minutes`` of closes with their numpy mirrors built (as forecasting builds them).
    Carried states add ``tickers`` x 2 x 2 x layers x units float32 (6.4 MB at 2,000 tickers, 4x50)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_trainer", "--memory-child", f"{tickers}x{minutes}"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return {k: float(v) for k, v in json.loads(out.strip().splitlines()[-1]).items()}


def _memory_child(tickers: int, minutes: int) -> None:
    def rss() -> dict[str, float]:
        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status)
        return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}

    warm_up_torch()
    before = rss()["VmRSS"]
    forecaster = Forecaster(Config(history=minutes))
    rng = np.random.default_rng(0)
    for t in range(tickers):
        path = 50 * np.exp(np.cumsum(0.001 * rng.standard_normal(minutes)))
        for m, close in enumerate(path.tolist()):
            forecaster.ingest(f"T{t}", m, close)
    for series in forecaster.series.values():
        series.arrays()
    after = rss()
    print(json.dumps({"rss_mib": round(after["VmRSS"], 1), "peak_mib": round(after["VmHWM"], 1),
                      "torch_loaded_mib": round(before, 1)}))  # fmt: skip


def _env_value(value: object) -> str:
    if value is None:
        return ""
    return ",".join(value) if isinstance(value, list) else str(value)


def latency(tickers: int, rounds: int, window: int, threads: int = 0) -> dict[str, list[float]]:
    """Seconds from each bar to its forecast, the trainer running as its own process (``portfolio trainer``,
    as users run it: the bench's producing and reading share no interpreter with it).

    The minutes are sent from the moment the history's forecasts are out, so they meet the whole first
    training cycle (the cold start, its range model, hold-out scores and writes) as live minutes would,
    then the cycles after it: with ``--rounds`` enough to outlast the cold start (30 at 500 tickers) the
    figures show what that work costs the minutes beside it. (Started after the cold start, as before
    issue 18's gate, the rounds saw only the end of it, or none.)

    ``arrival``: every forecast (the naive stand-in's before the cold start, the model's after), the bar's
    broker append time (its topic stamps LogAppendTime) to the CreateTime of the last prediction of the bar's
    first publication (the trainer's publish of its longest horizon), the issue's "bar arrival ->
    prediction published".
    ``model``: the model's forecasts only. ``sent``: from the bench's produce() call of the bar instead, so
    the bar producer's 20 ms linger is included.
    ``portfolio``: the portfolio's value (``_PORTFOLIO``, over every ticker: ``PORTFOLIO_TICKERS`` is the
    bench's) from the minute's last bar's arrival to its forecast's CreateTime."""
    from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME

    from shared.kafka import ReliableProducer, ensure_topics, make_consumer, subscribe
    from shared.mongo import make_client
    from shared.schemas import encode
    from shared.settings import PORTFOLIO_SERIES, load_settings, variables
    from testkit.bars import synthetic_bar
    from testkit.kafka import value_of
    from testkit.services import start_service, stop_service

    tag = uuid.uuid4().hex[:8]
    run_dir = f"/tmp/bench-{tag}"
    names = [f"T{i}" for i in range(tickers)]
    trainer_settings: dict[str, Any] = {
        "group_id": f"bench-{tag}", "http_port": 0, "max_epochs": 1, "window": window,
        "checkpoint_store": "volume", "checkpoint_dir": run_dir,
    }  # fmt: skip
    if threads:
        trainer_settings["torch_threads"] = threads
    overrides: dict[str, dict[str, Any]] = {
        "common": {"download_period_s": 10, "log_file": None, "tickers": names},
        "kafka": {
            "bars_topic": f"bench-{tag}.bars",
            "predictions_topic": f"bench-{tag}.predictions",
            "dlq_topic": f"bench-{tag}.dlq",
        },
        "mongo": {"db": f"bench_{tag}"},
        "trainer": trainer_settings,
    }
    settings = load_settings(**overrides)
    ensure_topics(settings, [settings.kafka.bars_topic], config={"message.timestamp.type": "LogAppendTime"})
    ensure_topics(settings, [settings.kafka.predictions_topic])
    producer = ReliableProducer(settings, client_id="bench-bars")
    history = 5 * (window + 1) + 10
    closes = {t: synthetic_closes(history + rounds, seed=i) for i, t in enumerate(names)}

    def stamp_of(minute: int) -> str:
        return (START + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")

    sent: dict[tuple[str, str], float] = {}  # each bar's produce() time (ms)

    def send(minute: int) -> None:
        ts = START + timedelta(minutes=minute)
        stamp = stamp_of(minute)
        for t in names:
            c = round(float(closes[t][minute]), 4)
            value = encode(synthetic_bar(t, ts, c, spread=0.0, volume=1, final=True))
            sent[(t, stamp)] = time.time() * 1000
            producer.produce(settings.kafka.bars_topic, value, key=t)
        producer.flush(30)

    for m in range(history):
        send(m)
    os.makedirs(run_dir, exist_ok=True)
    variable = {where: name for name, where in variables().items()}  # (group, field) -> PORTFOLIO_*
    env = os.environ | {
        variable[(group, field)]: _env_value(value)
        for group, fields in overrides.items()
        for field, value in fields.items()
    }
    with open(f"{run_dir}/trainer.log", "wb") as log:
        trainer = start_service(["trainer"], env | {"PORTFOLIO_LOG_FILE": ""}, stderr=log)
    reader = make_consumer(settings, f"bench-{tag}-reader", client_id="bench-reader")
    subscribe(reader, [settings.kafka.predictions_topic, settings.kafka.bars_topic])
    # (ticker, based_on_ts) -> CreateTime of the last prediction (its longest horizon) of the bar's first
    # publication, and whether the model made it (not the naive stand-in). A bar forecast again later (the
    # refresh after a cold start, with the new weights) is not counted again: its latency is the first's.
    published: dict[tuple[str, str], int] = {}
    first_version: dict[tuple[str, str], str] = {}
    modelled: set[tuple[str, str]] = set()
    arrived: dict[tuple[str, str], int] = {}  # (ticker, ts) -> the bar's LogAppendTime
    last_history = stamp_of(history - 1)

    def drain(until: float, done: Any = None) -> None:
        while time.monotonic() < until and not (done and done()):
            if trainer.poll() is not None:
                raise RuntimeError(f"the trainer exited ({trainer.returncode}): see {run_dir}/trainer.log")
            for msg in reader.consume(1000, 0.1):
                if msg.error():
                    continue
                kind, ts_ms = msg.timestamp()
                p = json.loads(value_of(msg))
                if msg.topic() == settings.kafka.bars_topic and kind == TIMESTAMP_LOG_APPEND_TIME:
                    arrived[(p["ticker"], p["ts"])] = ts_ms
                elif kind == TIMESTAMP_CREATE_TIME:
                    key, version = (p["ticker"], p["based_on_ts"]), p["model_version"]
                    if first_version.setdefault(key, version) != version:
                        continue
                    published[key] = max(published.get(key, ts_ms), ts_ms)
                    if not version.startswith("naive"):
                        modelled.add(key)

    def history_out() -> bool:
        return all((t, last_history) in published for t in names)

    try:
        # The history consumed and forecast (the naive stand-in's): the live minutes start now, before
        # the first training cycle's cold start, and go on through it.
        drain(time.monotonic() + 120 + 0.3 * tickers, history_out)
        started: list[float] = []
        for r in range(rounds):
            started.append(time.time())
            send(history + r)
            drain(time.monotonic() + 1.5)
        drain(time.monotonic() + 5)  # late ones count (a minute's window alone would drop them from the p99)
    finally:
        stop_service(trainer, 60)
        reader.close()
    out: dict[str, list[float]] = {"arrival": [], "model": [], "sent": [], "minute_max": [], "portfolio": []}
    for r in range(rounds):
        stamp = stamp_of(history + r)
        keys = [(t, stamp) for t in names if (t, stamp) in published and (t, stamp) in arrived]
        this = [(published[k] - arrived[k]) / 1000 for k in keys]
        out["arrival"] += this
        out["model"] += [(published[k] - arrived[k]) / 1000 for k in keys if k in modelled]
        out["sent"] += [(published[k] - sent[k]) / 1000 for k in keys]
        if (PORTFOLIO_SERIES, stamp) in published and keys:
            last_bar = max(arrived[k] for k in keys)
            out["portfolio"].append((published[(PORTFOLIO_SERIES, stamp)] - last_bar) / 1000)
        out["minute_max"].append(max(this or [math.nan]))
        # Per minute, so a slow one can be matched with the trainer's log (PORTFOLIO_LOG_LEVEL=DEBUG).
        median, worst = statistics.median(this or [math.nan]), max(this or [math.nan])
        print(f"   minute {r} sent {time.strftime('%H:%M:%S', time.localtime(started[r]))}: {len(this)} of "
              f"{len(names)} forecasts ({sum(k in modelled for k in keys)} the model's), from arrival "
              f"median {median:.3f} s, max {worst:.3f} s")  # fmt: skip
    with make_client(settings) as client:
        client.drop_database(settings.mongo.db)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_trainer")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-broker", action="store_true", help="skip benchmark 3 (needs the local stack)")
    parser.add_argument(
        "--only",
        default="cold,cycle,forecast,latency,memory",
        help="comma-separated sections to run (time-boxing on a shared machine)",
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds per cycle/forecast/latency size")
    parser.add_argument("--tickers", default=None, help="comma-separated sizes for cycle/forecast/latency")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="torch threads (0: one per core), also the benchmarked trainer's",
    )
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        _memory_child(*(int(v) for v in args.memory_child.split("x")))
        return {}
    only = set(args.only.split(","))
    sizes = [int(v) for v in args.tickers.split(",")] if args.tickers else None
    threads = set_threads(args.torch_threads)
    figures: dict[str, float] = {}
    baselines: dict[str, float] = {}
    ratios: dict[str, float] = {}

    minutes = 2 * 390 if args.quick else 20 * 390
    cold = (
        None
        if "cold" not in only
        else cold_training(
            minutes, original_epochs=1 if args.quick else 100, our_max_epochs=4 if args.quick else 100
        )
    )
    if cold is not None:
        print(f"1. cold training, {minutes} minutes: {cold}")
        baselines["original_recipe_seconds"] = cold["original_seconds"]
        baselines["original_recipe_holdout_mse_ratio"] = cold["original_holdout_mse_ratio"]
        baselines["windows_recipe_seconds"] = cold["windows_seconds"]
        baselines["windows_recipe_holdout_mse_ratio"] = cold["windows_holdout_mse_ratio"]
        figures["cold_training_seconds"] = cold["ours_seconds"]
        figures["cold_training_holdout_mse_ratio"] = cold["ours_holdout_mse_ratio"]
        for name in ("original", "windows"):
            ratios[f"cold_training_speedup_vs_{name}"] = round(
                cold[f"{name}_seconds"] / cold["ours_seconds"], 2
            )

    default_sizes = (10, 100, 500) if args.quick else (10, 100, 500, 2000)
    for n in (sizes or default_sizes) if "cycle" in only else ():
        times = cycles(n, args.rounds or (3 if args.quick else 30))
        figures[f"cycle_{n}_median_s"] = round(statistics.median(times), 4)
        figures[f"cycle_{n}_p99_s"] = round(p99(times), 4)
        print(f"2. cycle {n} tickers: median {statistics.median(times):.3f} s, p99 {p99(times):.3f} s")
    if "cycle_10_median_s" in figures and "cycle_500_median_s" in figures:
        ratios["cycle_500_over_10"] = round(figures["cycle_500_median_s"] / figures["cycle_10_median_s"], 2)

    for n in (sizes or (500, 2000)) if "forecast" in only else ():
        carried, full = forecast_cost(n, args.rounds or (5 if args.quick else 30))
        figures[f"forecast_{n}_carried_median_s"] = round(statistics.median(carried), 4)
        figures[f"forecast_{n}_carried_p99_s"] = round(p99(carried), 4)
        baselines[f"forecast_{n}_full_window_median_s"] = round(statistics.median(full), 4)
        baselines[f"forecast_{n}_full_window_p99_s"] = round(p99(full), 4)
        ratios[f"forecast_{n}_full_over_carried"] = round(
            statistics.median(full) / statistics.median(carried), 1
        )
        print(f"4. forecast {n} tickers: carried {statistics.median(carried):.4f} s, full window "
              f"{statistics.median(full):.4f} s (median)")  # fmt: skip

    for n in () if args.no_broker or "latency" not in only else (sizes or (500, 2000)):
        lat = latency(
            n, args.rounds or (3 if args.quick else 30), 20 if args.quick else 60, args.torch_threads
        )
        for name, values in lat.items():
            if values and name != "minute_max":
                prefix = {"arrival": "latency", "sent": "latency_from_send"}.get(name, f"latency_{name}")
                figures[f"{prefix}_{n}_median_s"] = round(statistics.median(values), 4)
                figures[f"{prefix}_{n}_p99_s"] = round(p99(values), 4)
        figures[f"latency_{n}_samples"] = len(lat["arrival"])
        figures[f"latency_model_{n}_samples"] = len(lat["model"])
        full_s = baselines.get(f"forecast_{n}_full_window_median_s")
        arrival = [figures.get(f"latency_{n}_{q}_s") for q in ("median", "p99")]
        model = [figures.get(f"latency_model_{n}_{q}_s") for q in ("median", "p99")]
        from_send = [figures.get(f"latency_from_send_{n}_{q}_s") for q in ("median", "p99")]
        portfolio = figures.get(f"latency_portfolio_{n}_median_s")
        print(f"3. bar -> prediction latency, {n} tickers: {len(lat['arrival'])} samples; from the bar's "
              f"arrival median {arrival[0]} s, p99 {arrival[1]} s (the model's {len(lat['model'])}: median "
              f"{model[0]} s, p99 {model[1]} s); from its produce() call median {from_send[0]} s, p99 "
              f"{from_send[1]} s (full-window forecast in process, this run: {full_s} s); the portfolio's "
              f"value from the minute's last bar: median {portfolio} s, "
              f"{len(lat['portfolio'])} minutes")  # fmt: skip
        print(f"   worst bar of each minute (ms): {[round(1000 * v) for v in lat['minute_max']]}")

    if not args.quick and "memory" in only:
        memory = resident_memory(2000, 3000)
        figures["rss_2000x3000_mib"] = memory["rss_mib"]
        figures["rss_2000x3000_peak_mib"] = memory["peak_mib"]
        baselines["rss_torch_and_trainer_loaded_mib"] = memory["torch_loaded_mib"]
        print(f"5. resident memory, 2,000 tickers x 3,000 minutes: {memory}")
    notes = (
        f"torch threads {threads}; quick={args.quick}. "
        + (
            "Quick: 2 trading days, original recipe 1 epoch (seconds extrapolated to 100), ours at most 4 "
            "epochs, latency with window 20. "
            if args.quick
            else ""
        )
        + "Hold-out MSE ratio: model/naive on relative errors over the last 20% (<1 beats naive). "
        "Latency: the trainer as its own process, minutes sent from before its cold start on; the CreateTime "
        "of a bar's last prediction (the trainer's publish) minus the bar's broker append time "
        "(LogAppendTime), and minus the bar's produce() call (latency_from_send, with the bar producer's "
        "20 ms linger); every forecast, and the model's alone (latency_model)."
    )
    result = {"name": "trainer", "figures": figures, "baselines": baselines, "ratios": ratios, "notes": notes}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
