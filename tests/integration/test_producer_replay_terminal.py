"""``portfolio producer`` replaying a hostile recording, as a user runs it: what reaches the terminal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.conftest import REPO
from tests.integration.test_producer_sources import read_bars
from tests.unit.producer.test_recording import HEADER, hostile_recording, write

pytestmark = pytest.mark.integration


def producer_command(settings: Settings, recording: Path, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTFOLIO_")}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "PORTFOLIO_SOURCE": "replay",
            "PORTFOLIO_REPLAY_FILE": str(recording),
            "PORTFOLIO_REPLAY_SPEED": "0",
            "PORTFOLIO_TICKERS": "AAPL,MSFT",
            "PORTFOLIO_BACKFILL_MINUTES": "5",
            "PORTFOLIO_BARS_TOPIC": settings.kafka.bars_topic,
            "PORTFOLIO_KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "PORTFOLIO_PRODUCER_HTTP_PORT": "0",
            "PORTFOLIO_LOG_FILE": "",
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "producer"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_hostile_recording_is_replayed_with_no_warning_text_on_the_terminal(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory(common={"tickers": "AAPL,MSFT"})
    recording, bad_lines = hostile_recording(tmp_path / "hostile.csv")
    producer = producer_command(settings, recording, tmp_path)
    try:
        got = read_bars(settings, until=lambda bars: len(bars) >= 40, timeout=60)
    finally:
        producer.send_signal(signal.SIGTERM)
        out, err = producer.communicate(timeout=60)

    assert producer.returncode == 0, err
    assert len(got) == 40
    terminal = out + err
    assert "Warning" not in terminal and "warnings.warn" not in terminal, terminal
    assert "Traceback" not in terminal, terminal
    for reason in bad_lines:
        assert f"({reason})" in terminal


def test_an_unusable_recording_exits_2_with_our_message_and_no_traceback(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory(common={"tickers": "AAPL,MSFT"})
    recording = write(tmp_path / "future.csv", [HEADER, "2300-01-01T00:00:00Z,AAPL,1,2,0.5,1,10"])
    producer = producer_command(settings, recording, tmp_path)
    out, err = producer.communicate(timeout=60)

    assert producer.returncode == 2
    assert f"{recording}: no usable rows for AAPL, MSFT (rows skipped: 1 time_out_of_range)" in err
    assert "Traceback" not in out + err and "Out of bounds" not in out + err
