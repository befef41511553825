"""What the fault suite reads back and asserts, in one place.

These few helpers are the only code of the fault suite that reads the database, and they read as users
do, through ``shared.layout``: bars still in progress live in the ``latest`` collection, and portfolio
rows reach ``portfolio`` only once their minute is ten minutes behind (until then they fill in ``latest``).
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Message
from pymongo.database import Database

from shared.kafka import client_config
from shared.layout import open_items
from shared.layout import portfolio_rows as layout_portfolio_rows
from shared.mongo import BARS, database, make_client
from shared.schemas import BarV1
from shared.settings import Settings
from testkit.kafka import headers_of
from testkit.services import service_process

BarKey = tuple[str, datetime]
FAULT_ROWS: list[tuple[str, str, str, int, int]] = []
SettingsFactory = Callable[..., Settings]


@contextmanager
def database_of(settings: Settings) -> Iterator[Database[dict[str, Any]]]:
    """The test's database, to read back what the services wrote."""
    with make_client(settings) as client:
        yield database(client, settings)


BAR_FIELDS = ("ticker", "ts", "rev", "open", "high", "low", "close", "volume")
EVER = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2300, 1, 1, tzinfo=UTC))


def stored_bars(db: Any) -> list[dict[str, Any]]:
    """Every stored bar as ``{ticker, ts, rev, open, high, low, close, volume}``: history (duplicates
    kept) and the bars still in progress in ``latest`` that history lacks, as the readers see them."""
    history = list(db[BARS].find({}, {"_id": 0} | dict.fromkeys(BAR_FIELDS, 1)))
    keys = {(doc["ticker"], doc["ts"]) for doc in history}
    in_progress = [
        {k: doc[k] for k in BAR_FIELDS}
        for doc in open_items(db, BARS)
        if (doc["ticker"], doc["ts"]) not in keys
    ]
    return history + in_progress


def stored_bar_count(db: Any) -> int:
    return len(stored_bars(db))


def portfolio_rows(db: Any) -> dict[datetime, dict[str, float]]:
    """The portfolio as ``{minute: {ticker: close}}``, read as the report reads it."""
    rows: dict[datetime, dict[str, float]] = {}
    for row in layout_portfolio_rows(db, *EVER):
        assert row["ts"] not in rows, f"portfolio row {row['ts']} stored twice"
        rows[row["ts"]] = dict(row.get("close", {}))
    return rows


def newest(bars: Iterable[BarV1]) -> dict[BarKey, BarV1]:
    """The newest revision of each (ticker, minute): what must be stored."""
    best: dict[BarKey, BarV1] = {}
    for bar in bars:
        key = (bar.ticker, bar.ts)
        if key not in best or bar.rev >= best[key].rev:
            best[key] = bar
    return best


def outer_merge(bars: dict[BarKey, BarV1]) -> dict[datetime, dict[str, float]]:
    """The rows of the bars: every bar's close joins its row, at the latest ``PORTFOLIO_SINK_SETTLE_S``
    after its last message (bounded staleness, ``services/sink/settling.py``)."""
    rows: dict[datetime, dict[str, float]] = {}
    for (ticker, ts), bar in bars.items():
        rows.setdefault(ts, {})[ticker] = bar.close
    return rows


def lost_and_doubled(db: Any, expected: dict[BarKey, BarV1]) -> tuple[int, int]:
    counts = Counter((doc["ticker"], doc["ts"]) for doc in stored_bars(db))
    lost = sum(1 for key in expected if key not in counts)
    doubled = sum(n - 1 for n in counts.values() if n > 1)
    return lost, doubled


def rows_differ(got: dict[datetime, dict[str, float]], want: dict[datetime, dict[str, float]]) -> str:
    """What is wrong with the portfolio, short enough to read in a failure."""
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    wrong = [
        f"{ts:%H:%M} lacks {sorted(set(want[ts]) - set(got[ts]))[:5]} "
        f"extra {sorted(set(got[ts]) - set(want[ts]))[:5]} "
        f"differs {[t for t in want[ts] if t in got[ts] and got[ts][t] != want[ts][t]][:5]}"
        for ts in sorted(set(want) & set(got))
        if got[ts] != want[ts]
    ]
    return (
        f"{len(missing)} rows missing {[f'{t:%H:%M}' for t in missing[:5]]}, "
        f"{len(extra)} extra {[f'{t:%H:%M}' for t in extra[:5]]}, {len(wrong)} wrong: {wrong[:5]}"
    )


def assert_every_bar_once_with_newest_values(
    db: Any, sent: Iterable[BarV1], compare_rev: bool = True, rows_within_s: float = 120.0
) -> None:
    """Each bar sent stored exactly once with its newest values; the portfolio is their outer merge.

    Rows are written by the owner of their minute on the closes topic: one hop after the bars, and on a
    loaded machine a backlog of closes can take a while. So the rows are waited for first (up to
    ``rows_within_s``), which also leaves every bar write time to land before the bars are checked."""
    expected = newest(sent)
    want = outer_merge(expected)
    deadline = time.monotonic() + rows_within_s
    while portfolio_rows(db) != want and time.monotonic() < deadline:
        time.sleep(0.5)
    docs = stored_bars(db)
    keys = Counter((doc["ticker"], doc["ts"]) for doc in docs)
    assert not [k for k, n in keys.items() if n > 1], "bars stored twice"
    assert set(keys) == set(expected), (
        f"{len(set(expected) - set(keys))} bars lost, {len(set(keys) - set(expected))} extra"
    )
    for doc in docs:
        bar = expected[(doc["ticker"], doc["ts"])]
        values = (bar.open, bar.high, bar.low, bar.close, bar.volume)
        assert (doc["open"], doc["high"], doc["low"], doc["close"], doc["volume"]) == values, doc
        if compare_rev:
            assert doc["rev"] == bar.rev, doc
    rows = portfolio_rows(db)
    assert rows == want, rows_differ(rows, want)


def dead_letters(
    settings: Settings, idle_s: float = 3.0, timeout: float = 120.0, expected: int = 0
) -> list[Message]:
    """Everything committed on the dead-letter topic (read_committed), read until idle for ``idle_s``
    once at least ``expected`` came: a transaction a killed sink left open hides what follows it until
    the broker aborts it (``transaction.timeout.ms``), and a loaded machine can pause longer than
    ``idle_s``; a duplicate would arrive with the rest and be counted."""
    consumer = Consumer(
        client_config(settings)
        | {
            "group.id": f"{settings.kafka.dlq_topic}-check-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([settings.kafka.dlq_topic])
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline and (len(got) < expected or time.monotonic() - last < idle_s):
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.append(msg)
                last = time.monotonic()
            elif not consumer.assignment():
                last = time.monotonic()  # not yet assigned: idle time starts once it reads
    finally:
        consumer.close()
    return got


def dead_letter_origins(messages: Iterable[Message]) -> Counter[tuple[str, int, int]]:
    """How many times each original (topic, partition, offset) was dead-lettered."""
    origins: Counter[tuple[str, int, int]] = Counter()
    for msg in messages:
        headers = headers_of(msg)
        origins[
            (headers["dlq.topic"].decode(), int(headers["dlq.partition"]), int(headers["dlq.offset"]))
        ] += 1
    return origins


def metric(text: str, name: str) -> float:
    """One unlabelled sample from a Prometheus text page."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def report_fault(fault: str, what: str, recovery_s: float | None, lost: int, doubled: int) -> None:
    """One row of the fault table printed at the end of the run (``tests/integration/conftest.py``)."""
    recovery = "-" if recovery_s is None else f"{recovery_s:.1f} s"
    FAULT_ROWS.append((fault, what, recovery, lost, doubled))
    print(f"FAULT | {fault} | {what} | {recovery} | lost {lost} | doubled {doubled}")  # noqa: T201 (the run's table)


@dataclass
class FaultCase:
    """One fault test's set-up and closing checks (the ``fault`` fixture, ``conftest.py``): its settings,
    its services with their logs in the test's folder, the check that every bar sent is stored once with
    its newest values, and its row of the fault table."""

    make_settings: SettingsFactory
    folder: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def settings(self, **overrides: Mapping[str, Any]) -> Settings:
        """Settings on the test's own topics and database; ``overrides`` may point them at a Kafka or
        FerretDB of the test's own."""
        return self.make_settings(**overrides)

    def log(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    @contextmanager
    def service(
        self, command: str, settings: Settings, log: str | None = None, **extra: str
    ) -> Iterator[subprocess.Popen[bytes]]:
        """``portfolio <command>`` on ``settings``, logging to ``<log or command>.log`` in the test's
        folder; stopped (or found killed) on the way out."""
        with service_process(command, settings, self.log(log or command), **extra) as process:
            self.started.append(process)
            yield process

    def database(self, settings: Settings) -> AbstractContextManager[Database[dict[str, Any]]]:
        return database_of(settings)

    def every_bar_once(self, db: Any, sent: Iterable[BarV1], compare_rev: bool = True) -> tuple[int, int]:
        """The closing check: every bar sent stored once with its newest values, the portfolio their outer
        merge (``assert_every_bar_once_with_newest_values``); then (lost, doubled) for the fault table."""
        sent = list(sent)
        assert_every_bar_once_with_newest_values(db, sent, compare_rev=compare_rev)
        return lost_and_doubled(db, newest(sent))

    def report(
        self, fault: str, what: str, recovery_s: float | None, lost: int = 0, doubled: int = 0
    ) -> None:
        report_fault(fault, what, recovery_s, lost, doubled)

    def close(self) -> None:
        """The closing check of every fault test: no service it started outlived it."""
        running = [process.args for process in self.started if process.poll() is None]
        assert not running, f"still running after the test: {running}"
