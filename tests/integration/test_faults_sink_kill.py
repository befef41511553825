"""kill -9 of the sink in the middle of a backlog of tens of thousands of messages, poison among them:
the restarted sink writes every bar once with its newest values and dead-letters each poison once."""

from __future__ import annotations

import signal
import time

import pytest

from shared.schemas import BarV1, encode
from testkit.bars import bar
from testkit.poison import poison
from testkit.services import log_text
from testkit.waiting import wait_until
from tests.integration.fault_support import (
    FaultCase,
    dead_letter_origins,
    dead_letters,
    newest,
    stored_bar_count,
)
from tests.integration.sink_support import produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Many tickers over few minutes: FerretDB updates each existing portfolio row with a scan, so the cost of
# a replay grows with the minutes a batch touches, not with the bars.
TICKERS, MINUTES = 200, 100


def backlog() -> tuple[list[BarV1], list[tuple[str | None, bytes | None]]]:
    """20,000 bars, a revision of every tenth right behind it, and a poison message every 2,000."""
    bars: list[BarV1] = []
    messages: list[tuple[str | None, bytes | None]] = []
    for minute in range(MINUTES):
        for t in range(TICKERS):
            revisions = [bar(f"T{t}", minute)]
            if (minute * TICKERS + t) % 10 == 0:
                revisions.append(bar(f"T{t}", minute, rev=1))
            for b in revisions:
                bars.append(b)
                messages.append((b.ticker, encode(b)))
            if (minute * TICKERS + t) % 2_000 == 1_999:
                messages.append((f"P{len(messages)}", poison(revisions[-1], volume="lots")))
    return bars, messages


def test_sink_killed_mid_backlog_restarts_and_writes_every_bar_once(fault: FaultCase) -> None:
    # Default batches (5,000). A 10 s session timeout: the killed member's partitions are handed over
    # after it instead of the default 45 s, which would otherwise dominate the recovery time measured.
    settings = fault.settings(kafka={"session_timeout_ms": 10_000})
    bars, messages = backlog()
    poison_count = sum(1 for key, _ in messages if key and key.startswith("P"))
    produce(settings, messages)  # type: ignore[arg-type]
    expected = newest(bars)
    with fault.database(settings) as db:
        first_log = fault.log("first")
        with fault.service("sink", settings, "first") as first:
            # Killed as soon as its first batch is written, whatever the load: the log says so at once,
            # while counting the stored bars takes seconds and could let the sink finish the backlog.
            wait_until(lambda: "wrote batch" in log_text(first_log), 180, "the first batch", every=0.1)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        at_kill = stored_bar_count(db)
        assert at_kill < len(expected), "killed too late to test a replay"
        restarted = time.monotonic()
        with fault.service("sink", settings, "second"):
            # Each count reads every bar: not too often, the sink shares the machine's two cores.
            wait_until(
                lambda: stored_bar_count(db) >= len(expected), 300, "every bar after the restart", every=1
            )
            recovery = time.monotonic() - restarted
            # Waits for the portfolio rows (a hop after the bars) before it checks the bars.
            lost, doubled = fault.every_bar_once(db, bars)
    origins = dead_letter_origins(dead_letters(settings, expected=poison_count))
    assert len(origins) == poison_count and max(origins.values()) == 1, origins
    fault.report(
        f"sink kill -9 mid-backlog ({len(messages):,} messages, {poison_count} poison)",
        f"killed with {at_kill:,} of {len(expected):,} bars stored; restarted sink replayed the rest",
        recovery,
        lost,
        doubled,
    )
