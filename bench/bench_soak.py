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
  The database commands that scan ``bars`` and ``portfolio`` on FerretDB (find, delete, update, counted by
  a command listener) and, at the end, the seconds one scan of each takes at the size stored: what bounds
  the catch-up there is scans x seconds per scan;
* restart: a real sink process started on the stored database with one new minute of 500 final bars
  waiting in Kafka, seconds to the log line of the first batch that stored bars; the trainer's restart in
  process (``bench_restart``'s "after" path: decode and restore a checkpoint holding every ticker's series,
  read the bars stored after it, forecast every ticker with the model), seconds to the first model forecast;
* bytes on disk per stored bar and per portfolio row (``collStats``).

Run: ``python -m bench.bench_soak [--quick]`` against the local stack. The issue's sizes are the defaults
(1M bars with a portfolio row per stored minute, 5 trading days: ``--stored-bars 1950000`` for 10; a
60-minute outage; a 390-minute backfill).
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
import uuid
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import monitoring
from pymongo.database import Database

from bench.bench_restart import CONFIG
from bench.bench_storage import LIVE, PARTITIONS, TICKERS, partition_of, price, seed, summarize
from services.sink.batch import DecodedBatch
from services.sink.portfolio import decode_close
from services.sink.repository import SinkRepository
from services.trainer.forecaster.core import Forecaster
from services.trainer.forecaster.records import NAIVE_VERSION
from services.trainer.model.series import to_minute
from services.trainer.restart import catch_up as trainer_catch_up
from services.trainer.stores.checkpoints import from_bytes, to_bytes
from shared.kafka import ReliableProducer, ensure_topics
from shared.layout import open_collection
from shared.mongo import BARS, PORTFOLIO, ensure_indexes, make_client
from shared.schemas import BarV1, encode
from shared.settings import Settings, load_settings
from testkit.bars import synthetic_bar
from testkit.services import log_text, service_process

BATCH = 5_000
SETTLE_S = 60.0
Document = dict[str, Any]
SCANNING = ("find", "delete", "update", "aggregate", "count")
NOTHING = {"ts": {"$lt": datetime(2000, 1, 1, tzinfo=UTC)}}  # matches no document: one bare scan


class Scans(monitoring.CommandListener):
    """Commands that read or change stored documents, by collection: each one a full scan on FerretDB."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in SCANNING:
            self.counts[str(event.command.get(event.command_name))] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


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
        # Batches that met stored documents: each cost a find and a delete per history collection before
        # late items were gathered across batches (the baseline the scan counts compare with).
        self.late_batches = 0
        self.repository = SinkRepository(db, self._deliver, now=self.clock, settle_s=SETTLE_S)

    def _deliver(self, closes: Any) -> None:
        self.published.extend((k.encode(), v) for k, v in closes)

    def write(self, bars: list[BarV1], *, sweep: bool = False) -> float:
        closes = [(zlib.crc32(k) % PARTITIONS, decode_close(v)) for k, v in self.published]
        self.published = []
        # As the sink's loop marks it: a batch short of the maximum means the backlog is drained.
        batch = DecodedBatch(bars=bars, closes=closes, caught_up=len(bars) < BATCH)
        batch.bar_partitions = {b.ticker: partition_of(b.ticker) for b in bars}
        if sweep:
            everything = set(range(PARTITIONS))
            batch.sweep = {BARS: everything, PORTFOLIO: everything}
        started = time.perf_counter()
        outcome = self.repository.write(batch)
        self.late_batches += outcome.late_gathered > 0
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


def seconds_per_scan(db: Database[Document], name: str) -> float:
    started = time.perf_counter()
    db[name].find_one(NOTHING)
    return round(time.perf_counter() - started, 2)


def soak(db: Database[Document], stored: int, args: argparse.Namespace, scans: Scans) -> dict[str, Any]:
    ensure_indexes(db)
    started = time.perf_counter()
    seed(db, stored)  # minutes before LIVE; the live feed starts at LIVE
    figures: dict[str, Any] = {"stored_bars": stored, "seed_s": round(time.perf_counter() - started, 1)}
    driver = Driver(db)
    figures["live"] = driver.run(live(0, args.live_min))
    started = time.perf_counter()
    stored_minutes = stored // len(TICKERS)
    backlog = catch_up(args.live_min, args.outage_min, args.backfill_min, stored_minutes)
    scans.counts.clear()
    driver.late_batches = 0
    figures["catch_up"] = driver.run(backlog) | {"messages": len(backlog)}
    figures["catch_up"]["batches_with_late_items"] = driver.late_batches
    figures["catch_up"]["history_complete_after_s"] = driver.settle_after_idle()
    figures["catch_up"]["wall_s"] = round(time.perf_counter() - started, 1)
    figures["catch_up"]["scans"] = {k: scans.counts[k] for k in (BARS, PORTFOLIO)}
    figures["per_scan_s"] = {k: seconds_per_scan(db, k) for k in (BARS, PORTFOLIO)}
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
    if args.restart and stored:  # the restarts' goal is at the size stored; the empty run skips them
        figures["restart"] = {
            "sink_to_first_bar_stored_s": restart_sink(db.name, end + 1),
            "trainer_to_first_model_forecast_s": restart_trainer(db, end),
        }
    return figures


def restart_sink(db_name: str, minute: int) -> float | None:
    """A sink process started on the database, one minute of 500 final bars waiting for it in Kafka (its
    own topics and group): seconds from the start to the log line of its first batch that stored bars."""
    unique = uuid.uuid4().hex[:8]
    settings = load_settings(
        common={"log_file": None},
        kafka={
            "bars_topic": f"bench-soak-{unique}.bars",
            "predictions_topic": f"bench-soak-{unique}.predictions",
            "dlq_topic": f"bench-soak-{unique}.dlq",
        },
        mongo={"db": db_name},
        sink={"group_id": f"bench-soak-{unique}-sink", "settle_s": SETTLE_S},
    )
    produce_minute(settings, minute)
    with tempfile.TemporaryDirectory() as tmp:
        log_file = Path(tmp) / "sink.log"
        started = time.perf_counter()
        with service_process("sink", settings, log_file):
            while time.perf_counter() - started < 600:
                if re.search(r"bars_inserted=[1-9]", log_text(log_file)):
                    return round(time.perf_counter() - started, 1)
                time.sleep(0.2)
    return None


def produce_minute(settings: Settings, minute: int) -> None:
    ensure_topics(settings, settings.kafka.topics())
    producer = ReliableProducer(settings, client_id="bench-soak-feed")
    for t in range(len(TICKERS)):
        bar = bar_at(t, minute, 0, final=True)
        producer.produce(settings.kafka.bars_topic, encode(bar), key=bar.ticker)
    producer.flush(60)


def restart_trainer(db: Database[Document], end: int, gap: int = 10) -> float:
    """``bench_restart``'s restart from a checkpoint with series against this database: a tiny model of
    every ticker trained (not timed) on 200 minutes that end ``gap`` minutes before the newest stored,
    then restore, the bars after it read (one ranged read: on FerretDB a scan of ``bars``), a forecast of
    every ticker; seconds to the first model forecast."""
    trained = Forecaster(CONFIG)
    reached = to_minute(LIVE) + end - gap
    for minute in range(reached - 200, reached + 1):
        for t, ticker in enumerate(TICKERS):
            trained.ingest(ticker, minute, price(t, minute % 997))
    trained.train_cycle()
    state = trained.state()
    assert state is not None
    blob = to_bytes(state)
    started = time.perf_counter()
    restarted = Forecaster(CONFIG)
    saved = from_bytes(blob)
    assert restarted.restore(saved)
    trainer_catch_up(db, restarted, int(saved["series"]["reached"]))
    forecasts = restarted.forecast(list(TICKERS))
    assert any(f.model_version != NAIVE_VERSION for f in forecasts)
    return round(time.perf_counter() - started, 1)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_soak", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="20k bars stored, 3 live, 10 outage, 30 backfill"
    )
    parser.add_argument("--stored-bars", type=int, default=1_000_000)
    parser.add_argument("--live-min", type=int, default=30)
    parser.add_argument("--outage-min", type=int, default=60)
    parser.add_argument("--backfill-min", type=int, default=390)
    parser.add_argument("--no-restart", dest="restart", action="store_false", help="skip the restarts")
    args = parser.parse_args(argv)
    if args.quick:
        args.stored_bars, args.live_min, args.outage_min, args.backfill_min = 20_000, 3, 10, 30
    settings = load_settings(common={"log_file": None})
    unique = uuid.uuid4().hex[:8]
    runs: dict[str, Any] = {}
    scans = Scans()
    with make_client(settings, socketTimeoutMS=None, event_listeners=[scans]) as client:
        for label, stored in (("empty", 0), ("stored", args.stored_bars)):
            db = client[f"bench_soak_{unique}_{label}"]
            try:
                runs[label] = soak(db, stored, args, scans)
                print(label, json.dumps(runs[label]), flush=True)
            finally:
                client.drop_database(db.name)
    live_ratio = runs["empty"]["live"]["messages_per_s"] / runs["stored"]["live"]["messages_per_s"]
    stored_run = runs["stored"]
    # What bounds the catch-up on FerretDB: its scans, each at the cost of one at the size stored.
    scan_bound = sum(
        stored_run["catch_up"]["scans"][k] * stored_run["per_scan_s"][k] for k in (BARS, PORTFOLIO)
    )
    result = {
        "name": "soak",
        "figures": runs,
        "ratios": {"live_messages_per_s_empty_over_stored": round(live_ratio, 2)},
        "catch_up_scans_x_seconds_per_scan": round(scan_bound, 1),
        "goals": {
            "live_ratio_at_most_1_5": live_ratio <= 1.5,
            "catch_up_at_least_2000_msgs_per_s": runs["stored"]["catch_up"]["messages_per_s"] >= 2_000,
            "history_complete_within_60_s": runs["stored"]["catch_up"]["history_complete_after_s"] <= 60,
        }
        | {
            f"{name}_within_60_s": seconds is not None and seconds <= 60
            for name, seconds in stored_run.get("restart", {}).items()
        },
        "sizes": vars(args),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
