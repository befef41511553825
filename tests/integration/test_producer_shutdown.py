"""SIGTERM ends ``portfolio producer`` with exit 0 and every produced bar delivered."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.kafka import make_consumer
from shared.schemas import decode_bar
from shared.settings import Settings
from testkit.services import log_text, service_env, start_service
from testkit.waiting import wait_until

pytestmark = pytest.mark.integration


def test_sigterm_flushes_everything_produced_and_exits_0(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory()
    log_file = tmp_path / "producer.log"
    env = service_env(settings, log_file) | {
        "PORTFOLIO_SOURCE": "synthetic",
        "PORTFOLIO_TICKERS": "AAPL,MSFT,GOOGL,AMZN",
        "PORTFOLIO_BACKFILL_MINUTES": "390",
        "PORTFOLIO_DOWNLOAD_PERIOD_S": "1",
    }
    process = start_service(
        ["producer"], env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until(
            lambda: log_text(log_file).count(" cycle tickers=4 ") >= 2,
            60,
            "two producer cycles",
            every=0.2,
            process=process,
        )
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    log = log_file.read_text()
    assert "received SIGTERM" in log
    flushed = re.search(r"flushed: delivered=(\d+) undelivered=(\d+)", log)
    assert flushed, log[-2000:]
    delivered, undelivered = int(flushed[1]), int(flushed[2])
    assert undelivered == 0
    published = int(re.search(r"stopping: published=(\d+)", log)[1])  # type: ignore[index]
    assert delivered == published >= 4 * 390 * 0.95

    consumer = make_consumer(settings, f"{settings.kafka.bars_topic}-counter", client_id="test-counter")
    consumer.subscribe([settings.kafka.bars_topic])
    count = 0
    deadline = time.monotonic() + 60
    try:
        while count < published and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            decode_bar(msg.value())
            count += 1
        # Nothing beyond what the producer said it published.
        extra = consumer.poll(2.0)
    finally:
        consumer.close()
    assert count == published
    assert extra is None
