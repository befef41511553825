"""A trainer restart against the stored history (issue 19): time from start to the first model forecast of
every ticker, with a checkpoint written before checkpoints carried series (the history read in full, as
every restart did) and with one that carries them (only the bars stored after it read).

Seeds ``--bars`` stored bars (``--tickers`` tickers, one final bar a minute each) in a fresh database on the
local stack, trains a tiny network on them in process (not timed), checkpoints it ``--gap`` minutes
before the newest stored bar, then times for each kind of checkpoint: decode and restore it, read the
history (the loop's one range query for all tickers) or the gap (``restart.catch_up``), and forecast
every ticker. Both read from the same collection, and FerretDB scans it whole for either query: what
differs is how many bars come back and are ingested.

Run: ``python -m bench.bench_restart [--bars 50000]`` against the local stack (``make stack-up``).
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np

from services.trainer.forecaster.core import Forecaster
from services.trainer.forecaster.records import NAIVE_VERSION, Config
from services.trainer.model.series import to_minute
from services.trainer.restart import catch_up, load_history
from services.trainer.stores.checkpoints import from_bytes, to_bytes
from shared.mongo import BARS, make_client
from shared.settings import load_settings

START = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
CONFIG = Config(layers=1, units=8, window=10, max_epochs=2, batch_size=256, history=3_000, update_steps=0)


def closes(tickers: int, minutes: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return 50.0 * np.exp(np.cumsum(0.001 * rng.standard_normal((minutes, tickers)), axis=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=50_000)
    parser.add_argument("--tickers", type=int, default=100)
    parser.add_argument("--gap", type=int, default=10, help="minutes stored after the checkpoint")
    args = parser.parse_args()
    names = [f"T{t:03d}" for t in range(args.tickers)]
    minutes = args.bars // args.tickers
    prices = closes(args.tickers, minutes)
    settings = load_settings()
    with make_client(settings, socketTimeoutMS=None) as client:
        db = client[f"bench_restart_{uuid.uuid4().hex[:8]}"]
        try:
            started = time.perf_counter()
            docs = [
                {"ticker": t, "ts": START + timedelta(minutes=m), "close": float(prices[m, j]), "rev": 0}
                for m in range(minutes)
                for j, t in enumerate(names)
            ]
            for i in range(0, len(docs), 10_000):
                db[BARS].insert_many(docs[i : i + 10_000], ordered=False)
            seeded = time.perf_counter() - started
            trained = Forecaster(CONFIG)
            for m in range(minutes - args.gap):
                for j, t in enumerate(names):
                    trained.ingest(t, to_minute(START) + m, float(prices[m, j]))
            trained.train_cycle()
            state = trained.state()
            assert state is not None
            with_series = to_bytes(state)
            without = to_bytes({k: v for k, v in state.items() if k not in ("series", "ranges")})
            out = {"stored_bars": len(docs), "tickers": args.tickers, "gap_minutes": args.gap,
                   "seed_s": round(seeded, 1), "checkpoint_mb": {"before": len(without) / 1e6,
                   "after": len(with_series) / 1e6}}  # fmt: skip
            for kind, blob in (("before", without), ("after", with_series)):
                started = time.perf_counter()
                restarted = Forecaster(CONFIG)
                saved = from_bytes(blob)
                assert restarted.restore(saved)
                restored = time.perf_counter() - started
                if kind == "after":
                    read = catch_up(db, restarted, int(saved["series"]["reached"]))
                else:
                    read = load_history(db, restarted, names, CONFIG.history)
                read_s = time.perf_counter() - started - restored
                forecasts = restarted.forecast(names)
                seconds = time.perf_counter() - started
                assert {f.ticker for f in forecasts if f.model_version != NAIVE_VERSION} == set(names)
                out[kind] = {"bars_read": read, "restore_s": round(restored, 2), "read_s": round(read_s, 2),
                             "to_first_model_forecast_s": round(seconds, 2)}  # fmt: skip
            print(json.dumps(out, indent=2))
        finally:
            client.drop_database(db.name)


if __name__ == "__main__":
    main()
