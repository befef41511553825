"""The broker killed (-9) and then frozen (SIGSTOP 30 s) while the producer publishes and the sink
writes: both wait it out, and every bar is stored once with its values. On a Kafka of the test's own."""

from __future__ import annotations

import csv
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.schemas import BarV1
from testkit.bars import synthetic_bar
from testkit.services import log_text
from testkit.stack import own_kafka
from testkit.waiting import wait_until
from tests.integration.fault_support import FaultCase, dead_letters, stored_bar_count

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TICKERS = [f"R{i}" for i in range(10)]
MINUTES = 100
# 30 replayed minutes a wall minute: the producer publishes for ~200 s, through both faults, with room for a
# broker restart that takes 30 s on a loaded machine.
SPEED = "30"
START = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


def recording(path: Path) -> list[BarV1]:
    bars = []
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["ticker", "ts", "open", "high", "low", "close", "volume"])
        for minute in range(MINUTES):
            for i, ticker in enumerate(TICKERS):
                ts = START + timedelta(minutes=minute)
                b = synthetic_bar(
                    ticker, ts, 50.0 + i + minute / 8, final=True, volume=100 + minute, source="replay"
                )
                writer.writerow(
                    [ticker, f"{ts:%Y-%m-%dT%H:%M:%SZ}", b.open, b.high, b.low, b.close, b.volume]
                )
                bars.append(b)
    return bars


def grows_within(db: object, timeout: float) -> float:
    """Seconds until one more bar is stored."""
    started, before = time.monotonic(), stored_bar_count(db)
    wait_until(lambda: stored_bar_count(db) > before, timeout, "writes to resume", every=0.1)
    return time.monotonic() - started


def test_broker_killed_and_frozen_while_producer_and_sink_run(fault: FaultCase, tmp_path: Path) -> None:
    bars = recording(tmp_path / "bars.csv")
    with own_kafka(tmp_path / "kafka") as kafka:
        settings = fault.settings(
            kafka={"bootstrap_servers": kafka.bootstrap},
            common={"tickers": TICKERS},
            sink={"batch_max": 200, "batch_ms": 200},
        )
        producer_env = {
            "PORTFOLIO_SOURCE": "replay",
            "PORTFOLIO_REPLAY_FILE": str(tmp_path / "bars.csv"),
            "PORTFOLIO_REPLAY_SPEED": SPEED,
            "PORTFOLIO_BACKFILL_MINUTES": "0",
            "PORTFOLIO_DOWNLOAD_PERIOD_S": "1",
        }
        with (
            fault.database(settings) as db,
            fault.service("sink", settings) as sink,
            fault.service("producer", settings, **producer_env) as producer,
        ):
            wait_until(lambda: stored_bar_count(db) >= 150, 90, "the first bars")

            kafka.kill()
            time.sleep(3)
            kafka.start()
            after_kill = grows_within(db, 90)
            lost_after_kill = log_text(fault.log("sink")).count("partitions lost")
            wait_until(lambda: stored_bar_count(db) >= 450, 90, "bars after the restart")
            assert stored_bar_count(db) < len(bars) - 100, "the producer finished before the freeze"

            kafka.pause()
            time.sleep(30)
            kafka.resume()
            after_freeze = grows_within(db, 90)
            lost_after_freeze = log_text(fault.log("sink")).count("partitions lost") - lost_after_kill

            wait_until(lambda: stored_bar_count(db) >= len(bars), 120, "every bar")
            time.sleep(2)
            assert sink.poll() is None and producer.poll() is None, "a service exited"
            lost, doubled = fault.every_bar_once(db, bars, compare_rev=False)
        assert dead_letters(settings, idle_s=2) == []

    def group(lost_events: int) -> str:
        return "sink lost its partitions and rejoined" if lost_events else "sink kept its partitions"

    fault.report(
        "broker kill -9, restarted 3 s later",
        f"producer queued and re-sent; {group(lost_after_kill)}; measured from the broker answering again",
        after_kill,
        lost,
        doubled,
    )
    fault.report(
        "broker SIGSTOP 30 s", f"producer queued; {group(lost_after_freeze)}", after_freeze, lost, doubled
    )
