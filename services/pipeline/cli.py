"""``portfolio run``: producer, sink, trainer and dashboard as processes, a live view, a clean Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Self

from rich.console import Console
from rich.live import Live

from services.pipeline import supervisor, view
from shared.cli import EXIT_BAD_SETTINGS, settings_for
from shared.kafka import ensure_topics, wait_for_kafka
from shared.lifecycle import StopFlag
from shared.mongo import database, make_client, wait_for_mongodb
from shared.settings import Settings

logger = logging.getLogger("pipeline")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portfolio run", description=__doc__)
    parser.add_argument(
        "--duration", type=float, default=0, help="stop by itself after this many seconds (0: never)"
    )
    parser.add_argument(
        "--refresh", type=float, default=None, help="seconds between view updates (default: 2)"
    )
    parser.add_argument("--log-dir", type=Path, default=Path("logs"), help="each service's output goes here")
    args = parser.parse_args(argv)
    settings = settings_for("run")
    if settings is None:
        return EXIT_BAD_SETTINGS
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s pipeline: %(message)s", stream=sys.stderr
    )
    stop = StopFlag().install()
    console = Console(stderr=False)
    live_view = console.is_terminal

    if not wait_for_kafka(settings, stop, timeout=15):
        print(
            f"portfolio run: Kafka at {settings.kafka.bootstrap_servers} does not answer; start it with "
            "`make stack-up` (or run `make run`)",
            file=sys.stderr,
        )
        return 1
    client = make_client(settings)
    if not wait_for_mongodb(client, stop, timeout=15):
        print(
            "portfolio run: the database does not answer; start it with `make stack-up` (or `make run`)",
            file=sys.stderr,
        )
        return 1
    # Topics exist with all their partitions before any consumer subscribes or producer writes.
    ensure_topics(settings, settings.kafka.topics())

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    ports = {
        "producer": settings.producer.http_port,
        "sink": settings.sink.http_port,
        "trainer": settings.trainer.http_port,
        "dashboard": settings.dashboard.port,
    }
    children = {name: supervisor.start(name, env, args.log_dir) for name in supervisor.START_ORDER}
    print(dashboard_url(settings, args.log_dir), flush=True)
    db = database(client, settings)
    refresh = args.refresh or min(2.0, settings.common.download_period_s)
    deadline = time.monotonic() + args.duration if args.duration else None
    title = f"portfol.io · source={settings.producer.source} · {len(settings.common.tickers)} tickers"
    crashed: list[str] = []
    try:
        with Live(console=console, auto_refresh=False, transient=False) if live_view else _NoLive() as live:
            while not stop.wait(refresh):
                snapshot = view.gather(db, list(settings.common.tickers), children, ports)
                if live_view:
                    live.update(view.render(snapshot, title), refresh=True)
                else:
                    print(view.status_line(snapshot), flush=True)
                crashed = [name for name, child in children.items() if child.exit_code not in (None, 0)]
                if crashed:
                    logger.error("%s exited unexpectedly; see %s", ", ".join(crashed), args.log_dir)
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
    finally:
        print(
            "stopping: dashboard, producer, then trainer, then sink (each flushes and commits)...",
            file=sys.stderr,
        )
        codes = supervisor.stop_all(children)
        client.close()
    print("stopped: " + ", ".join(f"{name} exit {code}" for name, code in codes.items()), file=sys.stderr)
    return 1 if crashed or any(codes.values()) else 0


def dashboard_url(settings: Settings, log_dir: Path) -> str:
    """The line that tells where the page is (a port chosen at start is in the dashboard's log)."""
    host, port = settings.dashboard.host, settings.dashboard.port
    if port == 0:
        return f"dashboard: a free port is chosen at start; its URL is in {log_dir / 'dashboard.log'}"
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 (compared, not bound)
    return f"dashboard: http://{shown}:{port}/"


class _NoLive:
    """Stands in for rich's Live when stdout is not a terminal (logs, CI): status lines instead."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, *args: object, **kwargs: object) -> None:
        return None
