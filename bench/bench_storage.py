"""Storage cost per bar against the size of the stored history (issue 9).

For 0, 100k and 1M stored bars (500 tickers, seeded with big ``insert_many`` batches, portfolio rows
too) drive a live stream of 500 tickers for 30 simulated minutes, each minute's bar revised 5 times
then final, through the sink's write path (``SinkRepository.write``) in batches of the sink's default
size (5,000 messages), as fast as it takes them. The closes each batch publishes come back in the next
batch, as they do through the closes topic. Printed per history size: messages/s, p50/p99 batch write
time, and the checks that every bar and row landed. Same run, as baselines: today's design before
issue 9 (``bench/original_storage.py``) on the same stream at 100k stored bars, time-boxed; bare
``insert_many`` of as many documents as the stream has messages (the ceiling); and the trainer's
history load at the largest size, one range query against the old two-queries-per-ticker loader
(time-boxed and extrapolated).

Run: ``python -m bench.bench_storage [--quick]`` against the local stack (``make stack-up``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.database import Database

from bench.original_storage import load_history_original, write_original
from services.sink.batch import DecodedBatch
from services.sink.portfolio import decode_close
from services.sink.repository import SinkRepository
from services.trainer.stores.history import recent_bars
from shared.layout import item_id, minute_id, portfolio_rows
from shared.mongo import BARS, PORTFOLIO, ensure_indexes, make_client
from shared.schemas import BarV1
from shared.settings import load_settings
from testkit.bars import synthetic_bar

TICKERS = [f"T{t:03d}" for t in range(500)]
LIVE = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
REVISIONS = 5
BATCH = 5_000
PARTITIONS = 6
Document = dict[str, Any]


def price(t: int, minute: int, rev: int = 0) -> float:
    return round(50.0 + t + (minute % 17) / 10 + rev / 100, 4)


def history_docs(count: int, *, old_layout: bool = False) -> Iterator[Document]:
    minutes = count // len(TICKERS)
    for m in range(minutes):
        ts = LIVE - timedelta(minutes=minutes - m)
        for t, ticker in enumerate(TICKERS):
            p = price(t, m)
            doc = {"ticker": ticker, "ts": ts, "open": p, "high": p + 0.5, "low": p - 0.5, "close": p}
            doc |= {"volume": 100, "source": "synthetic", "rev": 5, "final": True, "ingested_at": LIVE}
            yield doc if old_layout else {"_id": item_id(ticker, ts)} | doc


def seed(db: Database[Document], count: int, *, old_layout: bool = False) -> float:
    started = time.perf_counter()
    ensure_indexes(db, (BARS, PORTFOLIO))
    chunk: list[Document] = []
    for doc in history_docs(count, old_layout=old_layout):
        chunk.append(doc)
        if len(chunk) == 20_000:
            db[BARS].insert_many(chunk, ordered=False)
            chunk = []
    if chunk:
        db[BARS].insert_many(chunk, ordered=False)
    minutes = count // len(TICKERS)
    rows = []
    for m in range(minutes):
        ts = LIVE - timedelta(minutes=minutes - m)
        row: Document = {"ts": ts, "close": {k: price(t, m) for t, k in enumerate(TICKERS)}}
        rows.append(row if old_layout else {"_id": minute_id(ts), "rev": dict.fromkeys(TICKERS, 5)} | row)
    for i in range(0, len(rows), 200):
        db[PORTFOLIO].insert_many(rows[i : i + 200], ordered=False)
    return time.perf_counter() - started


def live_stream(minutes: int) -> list[BarV1]:
    bars = []
    for m in range(minutes):
        for rev in range(REVISIONS + 1):
            for t, ticker in enumerate(TICKERS):
                ts = LIVE + timedelta(minutes=m)
                final = rev == REVISIONS
                p = price(t, m, rev)
                bars.append(synthetic_bar(ticker, ts, p, rev=rev, final=final, volume=100 + rev, spread=0.5))
    return bars


def partition_of(ticker: str) -> int:
    return zlib.crc32(ticker.encode()) % PARTITIONS


def drive_new(db: Database[Document], stream: list[BarV1]) -> dict[str, float]:
    published: list[tuple[bytes, bytes]] = []
    repository = SinkRepository(db, lambda closes: published.extend((k.encode(), v) for k, v in closes))
    times = []
    started = time.perf_counter()
    for i in range(0, len(stream) + BATCH, BATCH):  # one more batch: the last closes come back
        chunk = stream[i : i + BATCH]
        closes = [(zlib.crc32(k) % PARTITIONS, decode_close(v)) for k, v in published]
        batch = DecodedBatch(bars=chunk, closes=closes)
        batch.bar_partitions = {b.ticker: partition_of(b.ticker) for b in chunk}
        published = []
        t = time.perf_counter()
        repository.write(batch)
        times.append(time.perf_counter() - t)
    return summarize(len(stream), time.perf_counter() - started, times)


def drive_original(db: Database[Document], stream: list[BarV1], budget_s: float) -> dict[str, float]:
    """Today's design on the same batches until ``budget_s`` runs out."""
    times: list[float] = []
    done, started = 0.0, time.perf_counter()
    while done < len(stream) and time.perf_counter() - started < budget_s:
        t = time.perf_counter()
        chunk = stream[int(done) : int(done) + BATCH]
        share = write_original(db, chunk, deadline=started + budget_s)
        times.append(time.perf_counter() - t)
        done += share * len(chunk)
    return summarize(round(done), time.perf_counter() - started, times) | {"messages_done": round(done)}


def summarize(messages: int, elapsed: float, times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "messages_per_s": round(messages / elapsed, 1),
        "batch_p50_s": round(statistics.median(times), 3),
        "batch_p99_s": round(p99, 3),
    }


def bare_insert_many(db: Database[Document], count: int) -> float:
    docs = [
        {
            "_id": f"X{i % 500:03d}|{i}",
            "ticker": f"X{i % 500:03d}",
            "ts": LIVE + timedelta(days=30, minutes=i // 500),
        }
        | {"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1, "rev": 0, "final": True}
        for i in range(count)
    ]
    started = time.perf_counter()
    for i in range(0, count, BATCH):
        db[BARS].insert_many(docs[i : i + BATCH], ordered=False)
    return count / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_storage", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="0 and 10k stored bars, 5 live minutes")
    parser.add_argument("--original-budget-s", type=float, default=None, help="time box of the baseline")
    parser.add_argument("--sizes", default="", help="stored-bar counts, comma-separated (default 0,100k,1M)")
    args = parser.parse_args(argv)
    sizes = [0, 10_000] if args.quick else [0, 100_000, 1_000_000]
    if args.sizes:
        sizes = [int(n) for n in args.sizes.split(",")]
    live_minutes = 5 if args.quick else 30
    stream = live_stream(live_minutes)
    budget = args.original_budget_s or (20.0 if args.quick else 90.0)
    settings = load_settings(common={"log_file": None})
    unique = uuid.uuid4().hex[:8]
    figures: dict[str, Any] = {"stream_messages": len(stream)}
    baselines: dict[str, Any] = {}
    checks: list[str] = []
    with make_client(settings, socketTimeoutMS=None) as client:
        for size in sizes:
            db = client[f"bench_storage_{unique}_{size}"]
            try:
                seed_s = seed(db, size)
                run = drive_new(db, stream)
                bars = db[BARS].estimated_document_count()
                rows = len(portfolio_rows(db, LIVE - timedelta(days=30), LIVE + timedelta(days=1)))
                expected = (
                    size + len(TICKERS) * (len(stream) // len(TICKERS) // (REVISIONS + 1)),
                    size // 500,
                )
                live_minutes = len(stream) // len(TICKERS) // (REVISIONS + 1)
                ok = bars == expected[0] and rows == expected[1] + live_minutes
                checks.append(f"{size}: bars {bars} rows {rows} {'ok' if ok else 'MISMATCH'}")
                label = f"{size // 1000}k" if size else "empty"
                figures[f"messages_per_s_{label}"] = run["messages_per_s"]
                figures[f"batch_p50_s_{label}"] = run["batch_p50_s"]
                figures[f"batch_p99_s_{label}"] = run["batch_p99_s"]
                figures[f"seed_s_{label}"] = round(seed_s, 1)
                baselines[f"bare_insert_many_docs_per_s_{label}"] = round(
                    bare_insert_many(db, len(stream)), 1
                )
                print(f"{label}: {run} seed {seed_s:.1f} s; {checks[-1]}", flush=True)
                if size == sizes[-1]:
                    started = time.perf_counter()
                    count = sum(1 for _ in recent_bars(db, TICKERS, 3_000))
                    figures["history_load_s_new"] = round(time.perf_counter() - started, 1)
                    figures["history_bars_loaded"] = count
                    started, done = time.perf_counter(), 0
                    while done < len(TICKERS) and time.perf_counter() - started < budget:
                        load_history_original(db, TICKERS[done : done + 1], 3_000)
                        done += 1
                    per_ticker = (time.perf_counter() - started) / done
                    baselines["history_load_s_original_extrapolated"] = round(per_ticker * len(TICKERS), 1)
                    baselines["history_load_original_tickers_measured"] = done
                    print(
                        f"history load: new {figures['history_load_s_new']} s, "
                        f"original ~{per_ticker * len(TICKERS):.0f} s",
                        flush=True,
                    )
            finally:
                client.drop_database(db.name)
        original_size = sizes[1] if len(sizes) > 1 else sizes[-1]
        db = client[f"bench_storage_{unique}_original"]
        try:
            seed(db, original_size, old_layout=True)
            original = drive_original(db, stream, budget)
            print(f"original design at {original_size}: {original}", flush=True)
        finally:
            client.drop_database(db.name)
    label = f"{original_size // 1000}k"
    baselines[f"original_messages_per_s_{label}"] = original["messages_per_s"]
    baselines[f"original_batch_p99_s_{label}"] = original["batch_p99_s"]
    baselines["original_messages_measured"] = original["messages_done"]
    big = f"{sizes[-1] // 1000}k"
    result: dict[str, Any] = {
        "name": "storage",
        "figures": figures,
        "baselines": baselines,
        "ratios": {
            f"messages_per_s_empty_over_{big}": round(
                figures["messages_per_s_empty"] / figures[f"messages_per_s_{big}"], 2
            ),
            f"batch_p99_{big}_over_empty": round(
                figures[f"batch_p99_s_{big}"] / figures["batch_p99_s_empty"], 2
            ),
            f"new_over_original_at_{label}": round(
                figures[f"messages_per_s_{label}"] / original["messages_per_s"], 1
            ),
        },
        "notes": (
            f"{len(stream)} messages: {len(TICKERS)} tickers x {live_minutes} minutes x ({REVISIONS} "
            f"revisions + final), batches of {BATCH}, through SinkRepository.write (no Kafka: the storage "
            "path alone; closes fed back one batch later as the closes topic does). Checks: "
            + "; ".join(checks)
            + f". Original design time-boxed to {budget:.0f} s. History load: all tickers' last 3,000 "
            "minutes; the original loader measured on the first tickers within the same box, extrapolated."
        ),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
