"""The database killed (-9) in the middle of a write, then frozen (SIGSTOP) under a write while the sink is
asked to stop. The sink stays in its group (it keeps polling with its partitions paused), tells the truth
on /healthz and /metrics, stops within its bound, and loses or doubles nothing. On a FerretDB of its own."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from shared.schemas import BarV1
from testkit.bars import bar
from testkit.ports import free_port
from testkit.services import log_text
from testkit.stack import own_ferretdb
from testkit.waiting import wait_until
from tests.integration.fault_support import FaultCase, metric, stored_bar_count
from tests.integration.sink_support import bar_messages, produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def bars(tickers: int, minutes: range) -> list[BarV1]:
    return [bar(f"D{t}", minute) for minute in minutes for t in range(tickers)]


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def health(port: int) -> dict[str, Any]:
    return dict(json.loads(get(port, "/healthz")[1]))


def test_database_killed_mid_write_then_frozen_under_a_stopping_sink(
    fault: FaultCase, tmp_path: Path
) -> None:
    with own_ferretdb(tmp_path / "ferretdb") as ferret:
        port = free_port()
        settings = fault.settings(
            # The socket timeout is longer than the stop bound, which must still hold.
            mongo={"uri": ferret.uri, "timeout_s": 2, "socket_timeout_s": 60},
            sink={"batch_max": 300, "batch_ms": 200, "write_stall_s": 3},
            # The outage below lasts longer than the session timeout: the sink must keep polling.
            kafka={"max_poll_interval_ms": 10_000, "session_timeout_ms": 6_000},
            common={"stop_timeout_s": 10},
        )
        first, second = bars(30, range(100)), bars(30, range(100, 130))
        log_file = fault.log("sink")
        produce(settings, bar_messages(first))
        with (
            fault.database(settings) as db,
            fault.service("sink", settings, PORTFOLIO_SINK_HTTP_PORT=str(port)) as sink,
        ):
            wait_until(lambda: stored_bar_count(db) >= 300, 60, "the first batches")

            # 1. kill -9 in the middle of the backlog, back after more than max.poll.interval.ms.
            ferret.kill()
            down_at = time.monotonic()
            wait_until(
                lambda: health(port)["checks"]["mongodb"] is False, 30, "/healthz to report the database"
            )
            assert get(port, "/healthz")[0] == 503
            wait_until(
                lambda: metric(get(port, "/metrics")[1], "portfolio_consumer_lag") > 0, 15, "lag shown"
            )
            time.sleep(max(0.0, 14 - (time.monotonic() - down_at)))
            ferret.start()
            back_at = time.monotonic()
            wait_until(lambda: stored_bar_count(db) >= len(first), 120, "every bar after the restart")
            after_kill = time.monotonic() - back_at
            text = log_text(log_file)
            assert "partitions lost" not in text and "partitions revoked" not in text, "left the group"
            assert health(port)["ready"] is True

            # 2. The database frozen under a write; SIGTERM must still stop the sink within its bound.
            ferret.pause()
            produce(settings, bar_messages(second))
            wait_until(lambda: health(port)["checks"]["writes"] is False, 30, "/healthz to report the stall")
            in_flight = metric(get(port, "/metrics")[1], "portfolio_write_in_flight_seconds")
            assert in_flight >= settings.sink.write_stall_s
            sink.send_signal(signal.SIGTERM)
            asked = time.monotonic()
            code = sink.wait(settings.common.stop_timeout_s + 5)
            stop_s = time.monotonic() - asked
            ferret.resume()
            assert stop_s <= settings.common.stop_timeout_s + 2, stop_s

        restarted = time.monotonic()
        with fault.database(settings) as db, fault.service("sink", settings, "again"):
            wait_until(
                lambda: stored_bar_count(db) >= len(first) + len(second), 120, "every bar after the freeze"
            )
            after_freeze = time.monotonic() - restarted
            time.sleep(1)
            lost, doubled = fault.every_bar_once(db, first + second)
    fault.report(
        "database kill -9 mid-write, back after 14 s",
        "sink paused its partitions and kept polling (max.poll.interval.ms 10 s not overrun), "
        "/healthz 503, lag shown",
        after_kill,
        lost,
        doubled,
    )
    fault.report(
        "database SIGSTOP under a write, then SIGTERM to the sink",
        f"/healthz 503 (writes) after {settings.sink.write_stall_s:.0f} s; "
        f"sink exited {code} in {stop_s:.1f} s (bound {settings.common.stop_timeout_s:.0f} s), "
        "batch uncommitted; "
        "recovery = restarted sink caught up",
        after_freeze,
        lost,
        doubled,
    )
