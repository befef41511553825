"""The dashboard tests' case: what is stored before it starts, the service itself on a free port, and the
ways a test talks to it (the read API, the event stream, bars and forecasts published to Kafka)."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from services.sink.writes import bar_document, prediction_document
from shared.kafka import ReliableProducer, ensure_topics
from shared.layout import dump_json, item_id
from shared.mongo import BARS, LATEST, PREDICTIONS, database, make_client
from shared.schemas import BarV1, PredictionV1, encode
from shared.settings import Settings
from testkit.ports import free_port
from testkit.services import log_text, service_process
from testkit.waiting import wait_until

SettingsFactory = Callable[..., Settings]


class DashboardCase:
    """One test's dashboard on its own topics and database."""

    def __init__(self, settings_factory: SettingsFactory, tmp_path: Path) -> None:
        self.port = free_port()
        self.settings = settings_factory(dashboard={"port": self.port})
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "dashboard.log"
        self._exit = ExitStack()
        self.process: subprocess.Popen[bytes] | None = None
        ensure_topics(self.settings, self.settings.kafka.topics())

    def store(
        self, bars: Sequence[BarV1], predictions: Sequence[PredictionV1], open_bars: Sequence[BarV1] = ()
    ) -> None:
        """As the sink stores them: settled items in history, ``open_bars`` in progress in ``latest``."""
        with make_client(self.settings) as client:
            db = database(client, self.settings)
            if bars:
                db[BARS].insert_many([{"_id": item_id(b.ticker, b.ts)} | bar_document(b, None) for b in bars])
            if predictions:
                db[PREDICTIONS].insert_many(
                    [{"_id": f"{item_id(p.ticker, p.ts)}|{p.horizon_min}"} | prediction_document(p, None)
                     for p in predictions]
                )  # fmt: skip
            if open_bars:
                items = [bar_document(b, None) for b in open_bars]
                db[LATEST].insert_one({"_id": "bars|0", "kind": BARS, "open": dump_json(items)})

    def start(self, **env: str) -> None:
        extra = {"PORTFOLIO_DASHBOARD_GROUP_ID": f"{self.settings.sink.group_id}-dashboard"} | env
        self.process = self._exit.enter_context(
            service_process(
                "dashboard", self.settings, self.log, PORTFOLIO_DASHBOARD_PORT=str(self.port), **extra
            )
        )
        wait_until(
            self._ready, 60, "the dashboard's feed to be assigned its partitions", process=self.process
        )

    def _ready(self) -> bool:
        try:
            return bool(self.get("/api/health")[1]["dashboard"]["ready"])
        except OSError:
            return False

    def get(self, path: str) -> tuple[int, Any]:
        """(status, decoded JSON body) of ``GET path``; 4xx and 5xx answers too."""
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def raw(self, path: str) -> tuple[int, str, bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as response:
                return response.status, response.headers["Content-Type"], response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers["Content-Type"], error.read()

    def publish(self, bars: Sequence[BarV1] = (), predictions: Sequence[PredictionV1] = ()) -> None:
        producer = ReliableProducer(self.settings, client_id="test-dashboard")
        for bar in bars:
            producer.produce(self.settings.kafka.bars_topic, encode(bar), key=bar.ticker)
        for prediction in predictions:
            producer.produce(self.settings.kafka.predictions_topic, encode(prediction), key=prediction.ticker)
        producer.flush()

    def logged(self) -> str:
        return log_text(self.log) + log_text(self.log.with_suffix(".err"))

    def close(self) -> None:
        self._exit.close()


def dashboard_case(settings_factory: SettingsFactory, tmp_path: Path) -> Iterator[DashboardCase]:
    case = DashboardCase(settings_factory, tmp_path)
    try:
        yield case
    finally:
        case.close()
