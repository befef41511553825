"""The whole pipeline as a user runs it: `portfolio run` on the synthetic market, real Kafka and database."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.kafka import make_consumer, subscribe
from shared.mongo import BARS, PORTFOLIO, PREDICTIONS, database, make_client
from shared.schemas import decode_prediction
from shared.settings import PORTFOLIO_SERIES, Settings
from testkit.ports import free_port
from testkit.services import cli, service_env, start_service
from testkit.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TICKERS = ["AAPL", "MSFT", "NVDA"]


def processes_with(marker: str) -> list[int]:
    """Pids whose environment holds ``marker``: the services started for this test, and nothing else."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def check_services(ports: dict[str, int]) -> None:
    """Every service is ready with its metrics, and the dashboard answers with every ticker and forecasts."""
    for name, port in ports.items():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert json.loads(response.read())["ready"] is True, name
        if name != "dashboard":
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                assert "portfolio_" in response.read().decode(), name
    dashboard = ports["dashboard"]
    with urllib.request.urlopen(f"http://127.0.0.1:{dashboard}/api/tickers", timeout=5) as response:
        assert {t["ticker"] for t in json.loads(response.read())} == set(TICKERS)
    url = f"http://127.0.0.1:{dashboard}/api/predictions?ticker=AAPL"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert json.loads(response.read())["predictions"]


def test_synthetic_market_flows_to_bars_portfolio_and_predictions_then_stops_cleanly(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    ports = {name: free_port() for name in ("producer", "sink", "trainer", "dashboard")}
    settings = settings_factory()
    env = service_env(settings, tmp_path / "data.log") | {
        "PORTFOLIO_TICKERS": ",".join(TICKERS),
        "PORTFOLIO_SOURCE": "synthetic",
        "PORTFOLIO_DOWNLOAD_PERIOD_S": "2",
        "PORTFOLIO_BACKFILL_MINUTES": "240",
        "PORTFOLIO_CHECKPOINT_STORE": "volume",
        "PORTFOLIO_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        # A smaller network than the default so the test's cold start fits a busy 2-core CI machine.
        "PORTFOLIO_LSTM_LAYERS": "2",
        "PORTFOLIO_LSTM_UNITS": "16",
        "PORTFOLIO_WINDOW_MIN": "30",
        "PORTFOLIO_MAX_EPOCHS": "5",
        "PORTFOLIO_PRODUCER_HTTP_PORT": str(ports["producer"]),
        "PORTFOLIO_SINK_HTTP_PORT": str(ports["sink"]),
        "PORTFOLIO_TRAINER_HTTP_PORT": str(ports["trainer"]),
        "PORTFOLIO_DASHBOARD_PORT": str(ports["dashboard"]),
    }
    marker = f"PORTFOLIO_MONGODB_DB={settings.mongo.db}"
    runner = start_service(
        ["run", "--refresh", "2", "--log-dir", str(tmp_path / "logs")],
        env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with make_client(settings) as client:
            db = database(client, settings)

            def every_ticker_has(collection: str, query: Mapping[str, object] | None = None) -> bool:
                return set(db[collection].distinct("ticker", query or {})) >= set(TICKERS)

            wait_until(lambda: every_ticker_has(BARS), 90, "bars for every ticker", every=1, process=runner)
            wait_until(
                lambda: db[PORTFOLIO].count_documents({}) >= 200,
                90,
                "merged portfolio rows",
                every=1,
                process=runner,
            )
            # Not only the naive stand-in published before a model exists: the trained model's forecasts.
            trained = {"model_version": {"$ne": "naive-warmup"}}
            wait_until(
                lambda: every_ticker_has(PREDICTIONS, trained),
                240,
                "model predictions for every ticker",
                every=1,
                process=runner,
            )

            # Every default horizon is forecast and stored (the synthetic market's session is the UTC day:
            # a horizon whose target would pass midnight is not forecast, so near midnight fewer are due).
            now = datetime.now(UTC)
            left = 24 * 60 - (now.hour * 60 + now.minute)
            due = {h for h in settings.trainer.horizons if h + 5 < left}
            wait_until(
                lambda: set(db[PREDICTIONS].distinct("horizon_min", trained)) >= due,
                120,
                f"the model's predictions at every horizon of {sorted(due)} minutes",
                every=1,
                process=runner,
            )

            # The merged portfolio holds each ticker's close under close.<TICKER>, never NaN.
            row = db[PORTFOLIO].find_one(sort=[("ts", -1)])
            assert row is not None
            assert set(row["close"]) <= set(TICKERS)
            assert not any(isinstance(v, float) and math.isnan(v) for v in row["close"].values())

            check_services(ports)

            # Predictions are on the topic too, valid v1 messages for every ticker and the portfolio's value.
            series = {*TICKERS, PORTFOLIO_SERIES}
            consumer = make_consumer(settings, f"{settings.kafka.predictions_topic}-reader", client_id="test")
            subscribe(consumer, [settings.kafka.predictions_topic])
            seen: set[str] = set()
            deadline = time.monotonic() + 30
            while not seen >= series and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is not None and not msg.error():
                    prediction = decode_prediction(msg.value())
                    assert prediction.ts > prediction.based_on_ts
                    seen.add(prediction.ticker)
            consumer.close()
            assert seen == series
    finally:
        if runner.poll() is None:
            runner.send_signal(signal.SIGINT)
        output, _ = runner.communicate(timeout=120)
    assert runner.returncode == 0, output
    assert "dashboard exit 0, producer exit 0, trainer exit 0, sink exit 0" in output
    assert f"dashboard: http://127.0.0.1:{ports['dashboard']}/" in output
    assert processes_with(marker) == [], "a service outlived portfolio run"

    report = tmp_path / "report.html"
    rendered = subprocess.run(
        cli("report", "--hours", "8", "--out", str(report)),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rendered.returncode == 0, rendered.stderr
    page = report.read_text()
    assert page.count("data:image/png;base64,") >= 2
    for ticker in TICKERS:
        assert ticker in page
