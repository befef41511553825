"""SIGTERM ends ``portfolio producer`` with exit 0 and every produced bar delivered."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.kafka import make_consumer
from shared.schemas import decode_bar
from shared.settings import Settings
from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_sigterm_flushes_everything_produced_and_exits_0(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory()
    log_file = tmp_path / "producer.log"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),
        "PORTFOLIO_SOURCE": "synthetic",
        "PORTFOLIO_TICKERS": "AAPL,MSFT,GOOGL,AMZN",
        "PORTFOLIO_BACKFILL_MINUTES": "390",
        "PORTFOLIO_DOWNLOAD_PERIOD_S": "1",
        "PORTFOLIO_BARS_TOPIC": settings.kafka.bars_topic,
        "PORTFOLIO_PREDICTIONS_TOPIC": settings.kafka.predictions_topic,
        "PORTFOLIO_DLQ_TOPIC": settings.kafka.dlq_topic,
        "PORTFOLIO_KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "PORTFOLIO_LOG_FILE": str(log_file),
        "PORTFOLIO_PRODUCER_HTTP_PORT": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "producer"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = log_file.read_text() if log_file.exists() else ""
            if text.count(" cycle tickers=4 ") >= 2:
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.2)
        else:
            pytest.fail("no producer cycle within 60 s")
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
