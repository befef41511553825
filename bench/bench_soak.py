"""Soak (issue 19): the sink's write path with a long history stored, beside the same workload on an empty
database, in one run.

For each database (empty, and seeded with ``--stored-bars`` bars of 500 tickers plus a portfolio row per
stored minute) through ``SinkRepository.write`` in batches of 5,000 (the closes each batch publishes come
back in the next batch, as through the closes topic; the wall clock the sink settles by is simulated):

* live: ``--live-min`` minutes of 500 tickers, each minute revised 5 times then final: msgs/s, p99 batch;
* catch-up: an outage of ``--outage-min`` minutes (each ticker-minute once in progress, once final), then
  a producer restart's backfill of ``--backfill-min`` minutes ending at the live edge, 10% of its values
  revised (the rest republished with the very values, a higher ``rev``): msgs/s, and how long after the
  backlog's end the history is complete (the idle bound plus the settling sweep's write);
* bytes on disk per stored bar and per portfolio row (``collStats``).

Not measured here: the restart of the sink and the trainer processes (time to the first new bar stored
and to the first prediction published). Run: ``python -m bench.bench_soak [--quick]`` against the local
stack. The issue's sizes are the defaults (1M bars; 60-minute outage; 390-minute backfill).
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.database import Database

from bench.bench_storage import LIVE, PARTITIONS, TICKERS, partition_of, price, seed, summarize
from services.sink.batch import DecodedBatch
from services.sink.portfolio import decode_close
from services.sink.repository import SinkRepository
from shared.layout import open_collection
from shared.mongo import BARS, PORTFOLIO, ensure_indexes, make_client
from shared.schemas import BarV1
from shared.settings import load_settings
from testkit.bars import synthetic_bar

BATCH = 5_000
SETTLE_S = 60.0
Document = dict[str, Any]


class Clock:
    """The wall time the repository stamps and settles by: real time, plus what the bench skips ahead."""

    def __init__(self) -> None:
        self.skipped = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.skipped


class Driver:
    def __init__(self, db: Database[Document]) -> None:
        self.clock = Clock()
        self.published: list[tuple[bytes, bytes]] = []
        self.repository = SinkRepository(db, self._deliver, now=self.clock, settle_s=SETTLE_S)

    def _deliver(self, closes: Any) -> None:
        self.published.extend((k.encode(), v) for k, v in closes)

    def write(self, bars: list[BarV1], *, sweep: bool = False) -> float:
        closes = [(zlib.crc32(k) % PARTITIONS, decode_close(v)) for k, v in self.published]
        self.published = []
        batch = DecodedBatch(bars=bars, closes=closes)
        batch.bar_partitions = {b.ticker: partition_of(b.ticker) for b in bars}
        if sweep:
            everything = set(range(PARTITIONS))
            batch.sweep = {BARS: everything, PORTFOLIO: everything}
        started = time.perf_counter()
        self.repository.write(batch)
        return time.perf_counter() - started

    def run(self, stream: list[BarV1]) -> dict[str, float]:
        started = time.perf_counter()
        # One more batch than the stream fills: the last closes come back.
        times = [self.write(stream[i : i + BATCH]) for i in range(0, len(stream) + BATCH, BATCH)]
        return summarize(len(stream), time.perf_counter() - started, times)

    def settle_after_idle(self) -> float:
        """Seconds from the backlog's end until history is complete: the idle half of the bound (skipped
        here, not slept), then sweeps until nothing is in progress (closes come back one sweep later)."""
        self.clock.skipped += timedelta(seconds=SETTLE_S / 2)
        spent = 0.0
        for _ in range(3):
            spent += self.write([], sweep=True)
        return round(SETTLE_S / 2 + spent, 2)


def bar_at(
    t: int, minute: int, rev: int, *, final: bool, revised: bool = False, stored_minutes: int = 0
) -> BarV1:
    """Ticker ``t``'s bar of ``minute`` (after LIVE; before it, the seeded history's values)."""
    seeded = minute < 0 and stored_minutes + minute >= 0
    p = price(t, stored_minutes + minute) if seeded else price(t, minute, 0 if final else rev)
    p += 0.5 if revised else 0.0
    ts = LIVE + timedelta(minutes=minute)
    return synthetic_bar(TICKERS[t], ts, p, rev=rev, final=final, volume=100, spread=0.5)


def live(start: int, minutes: int) -> list[BarV1]:
    return [
        bar_at(t, m, rev, final=rev == 5)
        for m in range(start, start + minutes)
        for rev in range(6)
        for t in range(len(TICKERS))
    ]


def catch_up(start: int, outage: int, backfill: int, stored_minutes: int) -> list[BarV1]:
    """The outage's messages in order, then the backfill of the last ``backfill`` minutes (a restarted
    producer: higher ``rev``, 10% of the values changed)."""
    backlog = [
        bar_at(t, m, rev, final=rev == 1)
        for m in range(start, start + outage)
        for rev in range(2)
        for t in range(len(TICKERS))
    ]
    end = start + outage
    backlog += [
        bar_at(
            t,
            m,
            1_000,
            final=True,
            revised=zlib.crc32(f"{t}|{m}".encode()) % 10 == 0,
            stored_minutes=stored_minutes,
        )
        for m in range(end - backfill, end)
        for t in range(len(TICKERS))
    ]
    return backlog


def bytes_per_document(db: Database[Document], name: str) -> float:
    stats = db.command("collStats", name)
    count = stats.get("count") or 1
    return round(float(stats.get("storageSize") or stats.get("size") or 0) / count, 1)


def soak(db: Database[Document], stored: int, args: argparse.Namespace) -> dict[str, Any]:
    ensure_indexes(db)
    seed(db, stored)  # minutes before LIVE; the live feed starts at LIVE
    driver = Driver(db)
    figures: dict[str, Any] = {"stored_bars": stored}
    figures["live"] = driver.run(live(0, args.live_min))
    started = time.perf_counter()
    stored_minutes = stored // len(TICKERS)
    backlog = catch_up(args.live_min, args.outage_min, args.backfill_min, stored_minutes)
    figures["catch_up"] = driver.run(backlog) | {"messages": len(backlog)}
    figures["catch_up"]["history_complete_after_s"] = driver.settle_after_idle()
    figures["catch_up"]["wall_s"] = round(time.perf_counter() - started, 1)
    end = args.live_min + args.outage_min
    minutes = stored_minutes + end + max(0, args.backfill_min - end - stored_minutes)
    in_progress = sum(db[open_collection(k)].count_documents({}) for k in (BARS, PORTFOLIO))
    figures["checks"] = {
        "bars": db[BARS].count_documents({}),
        "bars_expected": len(TICKERS) * minutes,
        "portfolio_rows": db[PORTFOLIO].count_documents({}),
        "portfolio_rows_expected": minutes,
        "in_progress_left": in_progress,
        # Every backfilled bar outranks what was stored; the ones with the very values count as replays.
        "backfilled_rev_stored": db[BARS].count_documents({"rev": 1_000}),
    }
    figures["bytes_per_bar"] = bytes_per_document(db, BARS)
    figures["bytes_per_portfolio_row"] = bytes_per_document(db, PORTFOLIO)
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_soak", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="20k bars stored, 3 live, 10 outage, 30 backfill"
    )
    parser.add_argument("--stored-bars", type=int, default=1_000_000)
    parser.add_argument("--live-min", type=int, default=30)
    parser.add_argument("--outage-min", type=int, default=60)
    parser.add_argument("--backfill-min", type=int, default=390)
    args = parser.parse_args(argv)
    if args.quick:
        args.stored_bars, args.live_min, args.outage_min, args.backfill_min = 20_000, 3, 10, 30
    settings = load_settings(common={"log_file": None})
    unique = uuid.uuid4().hex[:8]
    runs: dict[str, Any] = {}
    with make_client(settings, socketTimeoutMS=None) as client:
        for label, stored in (("empty", 0), ("stored", args.stored_bars)):
            db = client[f"bench_soak_{unique}_{label}"]
            try:
                runs[label] = soak(db, stored, args)
                print(label, json.dumps(runs[label]), flush=True)
            finally:
                client.drop_database(db.name)
    live_ratio = runs["empty"]["live"]["messages_per_s"] / runs["stored"]["live"]["messages_per_s"]
    result = {
        "name": "soak",
        "figures": runs,
        "ratios": {"live_messages_per_s_empty_over_stored": round(live_ratio, 2)},
        "goals": {
            "live_ratio_at_most_1_5": live_ratio <= 1.5,
            "catch_up_at_least_2000_msgs_per_s": runs["stored"]["catch_up"]["messages_per_s"] >= 2_000,
            "history_complete_within_60_s": runs["stored"]["catch_up"]["history_complete_after_s"] <= 60,
        },
        "sizes": vars(args),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
