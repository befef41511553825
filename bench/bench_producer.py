"""Producer throughput and cycle time for 500 synthetic tickers against the local broker.

* bars/s through the producer's own path (generate bars, validate, detect revisions, encode v1 JSON,
  ReliableProducer.produce + flush) against a bare confluent-kafka loop producing the same bytes with the
  same client settings, measured in the same run;
* the cycle time of the producer's own work (fetch excluded) on live cycles, 10 s of wall clock apart.

Run: ``.venv/bin/python -m bench.bench_producer [--quick]`` (needs the local stack: ``make stack-up``).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from services.producer.app import ProducerLoop
from services.producer.cycle import prepare
from services.producer.metrics import ProducerMetrics
from services.producer.revisions import RevisionTracker
from services.producer.sources.synthetic import SyntheticSource, floor_minute
from shared.kafka import ReliableProducer, client_config, ensure_topics
from shared.lifecycle import StopFlag
from shared.ops import Health
from shared.settings import Settings, load_settings

TICKERS = 500


def _warm(producer: Producer | ReliableProducer, topic: str) -> None:
    """Connect and get the idempotent producer id before timing: both sides start warm."""
    producer.produce(topic, b"{}", b"warm-up")
    producer.flush(30)


def _producer_path(
    producer: ReliableProducer, source: SyntheticSource, topic: str, minutes: int, now: datetime
) -> tuple[float, list[tuple[str, bytes]]]:
    """Seconds to publish ``minutes`` of 500 tickers through our path; the messages it produced."""
    tracker = RevisionTracker()
    started = time.perf_counter()
    start = floor_minute(now) - timedelta(minutes=minutes)
    bars = source.bars(start, floor_minute(now), now)
    prepared = prepare(bars, floor_minute(now), tracker, source.name)
    for i, (key, value) in enumerate(prepared.messages):
        producer.produce(topic, value, key=key)
        if i % 10_000 == 9_999:
            producer.poll(0)
    left = producer.flush(60)
    elapsed = time.perf_counter() - started
    assert left == 0, f"{left} undelivered"
    return elapsed, prepared.messages


def _bare_producer(settings: Settings) -> Producer:
    """A bare confluent-kafka producer with the same client settings as ReliableProducer."""
    config = client_config(settings) | {
        "client.id": "bench-bare",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
    }
    return Producer(config)


def _bare_loop(producer: Producer, topic: str, messages: list[tuple[str, bytes]]) -> float:
    """Seconds for the bare producer to send the same bytes (the canonical produce/poll(0)/flush loop)."""
    started = time.perf_counter()
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value, key.encode())
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(60)
    elapsed = time.perf_counter() - started
    assert left == 0
    return elapsed


def _cycle_times(settings: Settings, topic: str, cycles: int, now: datetime) -> tuple[list[float], int]:
    """Seconds of ProducerLoop.publish per live cycle (fetch excluded), 10 s apart; bars per cycle."""
    tickers = [f"S{i:03d}" for i in range(TICKERS)]
    source = SyntheticSource(tickers, seed=7)
    producer = ReliableProducer(settings, client_id="bench-cycles")
    loop = ProducerLoop(
        settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"bars_topic": topic})}),
        source,
        producer,
        ProducerMetrics(),
        Health("kafka", "last_cycle"),
        StopFlag(),
    )
    # Warm state as after a backfill of 30 minutes.
    for fetch in source.backfill(30, now):
        loop.publish(fetch)
    producer.flush(60)
    times, published = [], 0
    for i in range(cycles):
        moment = now + timedelta(seconds=10 * (i + 1))
        since = loop.closed_before or floor_minute(moment)
        oldest_open = loop.tracker.oldest_open()
        if oldest_open is not None and oldest_open < since:
            since = oldest_open
        loop.tracker.forget_before(since)
        fetch = source.fetch(since, moment)
        started = time.perf_counter()
        prepared = loop.publish(fetch)
        times.append(time.perf_counter() - started)
        published += len(prepared.messages)
        producer.poll(0)
    producer.flush(60)
    return times, published // max(cycles, 1)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench_producer", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer bars and cycles (under ~30 s)")
    args = parser.parse_args(argv)
    minutes, repeats, cycles = (10, 3, 12) if args.quick else (120, 5, 60)

    settings = load_settings(common={"log_file": None})
    topic = f"bench-producer-{uuid.uuid4().hex[:8]}"
    ensure_topics(settings, [topic])
    # Start mid-minute so cycles see the minute in progress fill and close (revisions).
    now = floor_minute(datetime.now(UTC)) + timedelta(seconds=5)
    try:
        ours_producer = ReliableProducer(settings, client_id="bench-producer")
        bare_producer = _bare_producer(settings)
        _warm(ours_producer, topic)
        _warm(bare_producer, topic)
        source = SyntheticSource([f"S{i:03d}" for i in range(TICKERS)], seed=7)
        # The day's paths are generated once a day in service; keep that out of the per-bar figure.
        source.bars(now - timedelta(minutes=minutes), now, now)
        ours, bare, n_bars = [], [], 0
        for _ in range(repeats):
            seconds, messages = _producer_path(ours_producer, source, topic, minutes, now)
            ours.append(seconds)
            bare.append(_bare_loop(bare_producer, topic, messages))
            n_bars = len(messages)
        times, per_cycle = _cycle_times(settings, topic, cycles, now)
    finally:
        AdminClient(client_config(settings)).delete_topics([topic])

    ours_rate = n_bars / statistics.median(ours)
    bare_rate = n_bars / statistics.median(bare)
    cycle_ms = [t * 1000 for t in times]
    figures = {
        "producer_path_bars_per_s_median": round(ours_rate),
        "cycle_ms_median_500_tickers": round(statistics.median(cycle_ms), 2),
        "cycle_ms_p99_500_tickers": round(float(np.percentile(cycle_ms, 99)), 2),
        "bars_per_cycle_median": per_cycle,
        "bars_per_run": n_bars,
    }
    baselines = {"bare_confluent_kafka_bars_per_s_median": round(bare_rate)}
    ratios = {"producer_path_vs_bare_kafka": round(ours_rate / bare_rate, 3)}
    notes = (
        f"{TICKERS} synthetic tickers, {minutes} minutes per run, median of {repeats} runs each; "
        f"{cycles} live cycles 10 s apart (fetch excluded: validate, revisions, encode, produce). "
        "Same broker, same client settings (idempotent, acks=all, linger 20 ms, lz4), same bytes."
    )
    print(f"producer path : {ours_rate:10,.0f} bars/s  (median of {repeats}, {n_bars} bars per run)")
    print(f"bare producer : {bare_rate:10,.0f} bars/s  (same bytes, same run)")
    print(f"ratio         : {ours_rate / bare_rate:10.3f}")
    print(
        f"cycle (fetch excluded), {TICKERS} tickers: median {figures['cycle_ms_median_500_tickers']} ms, "
        f"p99 {figures['cycle_ms_p99_500_tickers']} ms, ~{per_cycle} bars per cycle"
    )
    return {"name": "producer", "figures": figures, "baselines": baselines, "ratios": ratios, "notes": notes}


if __name__ == "__main__":
    main()
