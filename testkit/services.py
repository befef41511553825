"""The one service launcher: ``python -m shared.cli <command>`` as a child process, on a test's (or a
benchmark's) settings passed through the environment, with its log file, stopped or killed on the way out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from shared.lifecycle import StopFlag
from shared.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str) -> list[str]:
    """The command line of ``portfolio <args>`` with this interpreter."""
    return [sys.executable, "-m", "shared.cli", *args]


def service_env(settings: Settings, log_file: Path | None, **extra: str) -> dict[str, str]:
    """The environment of this process without its ``PORTFOLIO_*`` variables, plus those that make a service
    run on ``settings`` (its broker, database, topics, groups, timeouts; ops endpoints on ephemeral ports),
    logging to ``log_file``; ``extra`` wins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTFOLIO_")}
    env |= {
        "PORTFOLIO_KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "PORTFOLIO_MONGODB_URI": settings.mongo.uri,
        "PORTFOLIO_MONGODB_DB": settings.mongo.db,
        "PORTFOLIO_BARS_TOPIC": settings.kafka.bars_topic,
        "PORTFOLIO_PREDICTIONS_TOPIC": settings.kafka.predictions_topic,
        "PORTFOLIO_DLQ_TOPIC": settings.kafka.dlq_topic,
        "PORTFOLIO_SINK_GROUP_ID": settings.sink.group_id,
        "PORTFOLIO_TRAINER_GROUP_ID": settings.trainer.group_id,
        "PORTFOLIO_TICKERS": ",".join(settings.common.tickers),
        "PORTFOLIO_SINK_BATCH_MAX": str(settings.sink.batch_max),
        "PORTFOLIO_SINK_BATCH_MS": str(settings.sink.batch_ms),
        "PORTFOLIO_SINK_SETTLE_S": str(settings.sink.settle_s),
        "PORTFOLIO_KAFKA_SESSION_TIMEOUT_MS": str(settings.kafka.session_timeout_ms),
        "PORTFOLIO_KAFKA_MAX_POLL_INTERVAL_MS": str(settings.kafka.max_poll_interval_ms),
        "PORTFOLIO_STOP_TIMEOUT_S": str(settings.common.stop_timeout_s),
        "PORTFOLIO_SINK_WRITE_STALL_S": str(settings.sink.write_stall_s),
        "PORTFOLIO_PRODUCER_HTTP_PORT": "0",
        "PORTFOLIO_SINK_HTTP_PORT": "0",
        "PORTFOLIO_TRAINER_HTTP_PORT": "0",
        "PORTFOLIO_DASHBOARD_GROUP_ID": settings.dashboard.group_id,
        "PORTFOLIO_DASHBOARD_PORT": str(settings.dashboard.port),
        "PORTFOLIO_LOG_FILE": "" if log_file is None else str(log_file),
        "PYTHONPATH": str(REPO),
    }
    return env | extra


def start_service(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: Path = REPO,
    stdout: int | IO[Any] | None = subprocess.DEVNULL,
    stderr: int | IO[Any] | None = subprocess.DEVNULL,
    text: bool = False,
) -> subprocess.Popen[Any]:
    """``portfolio <args>`` started with exactly ``env``."""
    return subprocess.Popen(cli(*args), cwd=cwd, env=dict(env), stdout=stdout, stderr=stderr, text=text)


def stop_service(process: subprocess.Popen[Any], timeout: float, sig: int = signal.SIGTERM) -> None:
    """Ask a still running process to stop with ``sig``; kill -9 it if it is not gone in ``timeout`` s."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@contextmanager
def service_process(
    command: str, settings: Settings, log_file: Path, **extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``portfolio <command>`` on ``settings`` (``service_env``), its stderr in ``<log_file>.err``;
    stopped with SIGTERM (or already killed) on the way out, killed if it outlives its stop bound."""
    with log_file.with_suffix(".err").open("ab") as err:
        process: subprocess.Popen[bytes] = start_service(
            [command], service_env(settings, log_file, **extra), stderr=err
        )
    try:
        yield process
    finally:
        stop_service(process, settings.common.stop_timeout_s + 10)


def log_text(log_file: Path) -> str:
    """What a service logged so far ("" before its log file exists)."""
    return log_file.read_text(encoding="utf-8") if log_file.exists() else ""


class ServiceThread:
    """A service's ``run(stop)`` on a thread of the test's own process, where the test can reach into it;
    :meth:`shutdown` stops it and fails the test if it did not end or ended with an error."""

    def __init__(self, run: Callable[[StopFlag], None]) -> None:
        self.stop = StopFlag()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(run,), daemon=True)
        self.thread.start()

    def _run(self, run: Callable[[StopFlag], None]) -> None:
        try:
            run(self.stop)
        except BaseException as exc:  # noqa: BLE001 (kept for shutdown() to fail the test with, not lost)
            self.error = exc

    def shutdown(self) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive() and self.error is None
